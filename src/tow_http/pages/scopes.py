"""Scope pickers on page forms (organisation, group, project, private), shared by every area's pages."""

from __future__ import annotations

from tow_core import administration
from tow_core.errors import InvalidInput
from tow_http.context import SignedIn
from tow_http.pages.web import Form, Shell


def scope_choices(signed_in: SignedIn, shell: Shell) -> list[tuple[str, str]]:
    """Where a new record can go: value ("organisation", "project:3", "group:2", "user") and label."""
    choices = [("organisation", f"Organisation — {shell.org.name}")]
    choices += [(f"project:{p.id}", f"Project {p.key} — {p.name}") for p in shell.projects]
    groups = administration.list_groups(signed_in.directory, signed_in.principal, org_id=shell.org.id)
    mine = signed_in.principal.group_ids
    choices += [(f"group:{g.id}", f"Group — {g.name}") for g in groups if g.id in mine]
    choices.append(("user", "Private — only you"))
    return choices


def default_scope(shell: Shell) -> str:
    return f"project:{shell.project.id}" if shell.project else "organisation"


def parse_scope(form: Form, signed_in: SignedIn) -> tuple[str, int | None]:
    raw = form.get("scope", "organisation")
    kind, _, ref = raw.partition(":")
    if kind == "user":
        return "user", signed_in.principal.user_id
    if kind == "organisation":
        return "organisation", None
    if not ref.isdecimal():
        raise InvalidInput("choose where the record goes", field="scope")
    return kind, int(ref)
