"""Scope pickers on page forms (organisation, group, project, private), shared by every area's pages."""

from __future__ import annotations

from collections.abc import Callable

from tow_core.access import Scope, ScopeKind
from tow_core.errors import InvalidInput
from tow_http.pages.web import Form, Shell


def scope_choices(shell: Shell) -> list[tuple[str, str]]:
    """Where a new record can go: value ("organisation", "project:3", "group:2", "user") and label."""
    choices = [("organisation", f"Organisation — {shell.org.name}")]
    choices += [(f"project:{p.id}", f"Project {p.key} — {p.name}") for p in shell.projects]
    choices += [(f"group:{g.id}", f"Group — {g.name}") for g in shell.groups if g.id in shell.own_group_ids]
    choices.append(("user", "Private — only you"))
    return choices


def default_scope(shell: Shell) -> str:
    return f"project:{shell.project.id}" if shell.project else "organisation"


def scope_namer(shell: Shell) -> Callable[[Scope], str]:
    """Names the scopes a page shows, from the groups and projects its frame already read."""
    groups = {g.id: g.name for g in shell.groups}
    projects = {p.id: p.key for p in shell.projects}

    def name(scope: Scope) -> str:
        if scope.kind is ScopeKind.ORGANISATION:
            return "Organisation"
        if scope.kind is ScopeKind.PROJECT:
            return f"Project {projects[scope.ref_id]}" if scope.ref_id in projects else "Project"
        if scope.kind is ScopeKind.GROUP:
            return f"Group {groups[scope.ref_id]}" if scope.ref_id in groups else "Group"
        return "Private"

    return name


def parse_scope(form: Form, user_id: int | None = None) -> tuple[str, int | None]:
    """The form's ``scope`` choice as (kind, id); "user" is the private scope of ``user_id``, the signed-in person
    (None: ``("user", None)``, for a use case that fills in who is signed in)."""
    raw = form.get("scope", "organisation")
    kind, _, ref = raw.partition(":")
    if kind == "user":
        return "user", user_id
    if kind == "organisation":
        return "organisation", None
    if not ref.isdecimal():
        raise InvalidInput("choose where the record goes", field="scope")
    return kind, int(ref)
