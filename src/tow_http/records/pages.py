"""Knowledge pages: memory, docs, tickets, decisions, risks and snapshots (SPEC §4), and keyword search
(§7). Every read and write goes through the same ``tow_core`` use cases as the JSON API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from markupsafe import Markup

from tow_core import docs, knowledge, semantic_search, tickets
from tow_core.errors import InvalidInput
from tow_core.records import (
    MEMORY_TYPES,
    SNAPSHOT_TYPES,
    TICKET_TYPES,
    TRANSITIONS,
    DisplayId,
    Record,
    RecordQuery,
    RecordType,
)
from tow_core.semantic_search import FallbackReason, SearchMode
from tow_http.context import Services, SignedIn, in_unit_of_work, workspace
from tow_http.pages.images import record_files
from tow_http.pages.markdown import render_markdown
from tow_http.pages.scopes import default_scope, parse_scope, scope_choices, scope_namer
from tow_http.pages.web import Form, member_names, page, redirect, shell_for
from tow_http.records.shapes import snippet_html

# URL section -> the record type it lists, its heading and a one-line description.
SECTIONS: dict[str, tuple[RecordType, str, str]] = {
    "memory": (RecordType.MEMORY, "Memory", "Durable facts, priorities and commitments, changed through reviewed "
               "memory diffs."),
    "docs": (RecordType.DOC, "Docs", "Pages in a tree, with revisions."),
    "tickets": (RecordType.TICKET, "Tickets", "Work to do, by status."),
    "decisions": (RecordType.DECISION, "Decisions", "What was decided, why, and what it means."),
    "risks": (RecordType.RISK, "Risks", "What could go wrong and how it is mitigated."),
    "snapshots": (RecordType.SNAPSHOT, "Snapshots", "Reviewed summaries; activating one supersedes the active "
                  "one of the same type and scope."),
}
SECTION_OF = {record_type: name for name, (record_type, _, _) in SECTIONS.items()}


@dataclass(frozen=True)
class FormField:
    """A type-specific field the create and edit forms offer (the core validates every value)."""

    name: str
    label: str
    choices: tuple[str, ...] = ()
    number: bool = False
    long_text: bool = False
    person: bool = False  # a member of the organisation (a user id); empty means nobody
    date: bool = False  # an ISO date (YYYY-MM-DD); empty means none
    labels: bool = False  # comma-separated short texts; empty means none

    @property
    def clearable(self) -> bool:
        """Fields whose empty input means "none" (and so clears them) rather than "leave as it is"."""
        return self.person or self.date or self.labels


FORM_FIELDS: dict[RecordType, tuple[FormField, ...]] = {
    RecordType.MEMORY: (FormField("memory_type", "Memory type", MEMORY_TYPES),
                        FormField("importance", "Importance (1–5)", number=True)),
    RecordType.DOC: (),
    RecordType.TICKET: (FormField("ticket_type", "Ticket type", TICKET_TYPES),
                        FormField("priority", "Priority (1 highest – 4)", number=True),
                        FormField("assignee_id", "Assignee", person=True),
                        FormField("due_date", "Due date", date=True),
                        FormField("labels", "Labels (comma-separated)", labels=True)),
    RecordType.DECISION: (FormField("consequences", "Consequences", long_text=True),
                          FormField("alternatives", "Alternatives considered", long_text=True)),
    RecordType.RISK: (FormField("severity", "Severity (1–5)", number=True),
                      FormField("likelihood", "Likelihood (1–5)", number=True),
                      FormField("mitigation", "Mitigation", long_text=True),
                      FormField("owner_id", "Owner", person=True)),
    RecordType.SNAPSHOT: (FormField("snapshot_type", "Snapshot type", SNAPSHOT_TYPES),),
}
TICKET_COLUMNS = ("backlog", "todo", "in_progress", "blocked", "in_review", "done")


def fields_from(form: Form, record_type: RecordType) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in FORM_FIELDS[record_type]:
        if spec.name not in form.values:
            continue
        raw = form.get(spec.name).strip()
        if spec.labels:
            values[spec.name] = [label.strip() for label in raw.split(",") if label.strip()]
        elif raw == "":
            if spec.clearable:
                values[spec.name] = None
        elif spec.person:
            values[spec.name] = form.integer(spec.name, spec.label)
        else:
            values[spec.name] = form.integer(spec.name, spec.label) if spec.number else raw
    return values


# --- scopes in forms ---------------------------------------------------------------------------


# --- lists -------------------------------------------------------------------------------------


def _list_page(request: Request, signed_in: SignedIn, org_id: int, section: str, project: str | None,
               status: str | None, cursor: str | None, view: str = "list") -> Response:
    if section not in SECTIONS:
        raise NotFoundException(f"no page {section}")
    record_type, heading, description = SECTIONS[section]
    shell = shell_for(signed_in, org_id, project, section)
    ws = workspace(signed_in, org_id)
    statuses = frozenset({status}) if status else frozenset()
    query = RecordQuery(frozenset({record_type}), statuses, shell.project.id if shell.project else None)
    limit = 200 if view == "board" else 50
    records = knowledge.list_records(ws, query, cursor=cursor, limit=limit)
    tree = docs.doc_tree(ws, signed_in.history.tree, shell.project.key if shell.project else None) \
        if record_type is RecordType.DOC else []
    columns = {c: [r for r in records.items if r.status == c] for c in TICKET_COLUMNS}
    return page(request, "records.html", shell=shell, section=section, heading=heading, description=description,
                record_type=record_type.value, records=records.items, next_cursor=records.next_cursor,
                status=status or "", statuses=list(TRANSITIONS[record_type]), view=view, columns=columns,
                tree=tree, fields=FORM_FIELDS[record_type], scopes=scope_choices(shell),
                people=_people(signed_in, org_id),
                default_scope=default_scope(shell), scope_name=scope_namer(shell))


@get("/o/{org_id:int}/{section:str}", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def record_list(request: Request, org_id: int, section: str, signed_in: NamedDependency[SignedIn],
                project: str | None = None, status: str | None = None, cursor: str | None = None,
                view: str = "list") -> Response:
    return _list_page(request, signed_in, org_id, section, project, status, cursor, view)


@post("/o/{org_id:int}/records", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def create_record(request: Request, org_id: int, form: NamedDependency[Form], signed_in: NamedDependency[SignedIn]
                  ) -> Response:
    ws = workspace(signed_in, org_id)
    record_type = _record_type(form.get("type"))
    scope, project = knowledge.resolve_scope(ws, *parse_scope(form, signed_in.principal.user_id))
    fields = fields_from(form, record_type)
    parent = form.integer("parent_id", "parent page")
    if record_type is RecordType.DOC and parent is not None:
        fields["parent_id"] = parent
    record = knowledge.create_record(ws, record_type=record_type, scope=scope, project=project,
                                     title=form.get("title"), body=form.get("body"), fields=fields)
    return redirect(request, _record_link(org_id, str(record.display_id), form.get("project")))


def _record_type(value: str) -> RecordType:
    try:
        return RecordType(value)
    except ValueError as exc:
        raise InvalidInput("unknown record type", field="type") from exc


def _record_link(org_id: int, display_id: str, project: str = "") -> str:
    suffix = f"?project={project}" if project else ""
    return f"/o/{org_id}/r/{display_id}{suffix}"


# --- one record --------------------------------------------------------------------------------


def _extras(signed_in: SignedIn, ws: knowledge.Workspace, record: Record) -> dict[str, Any]:
    display_id = record.display_id
    extras: dict[str, Any] = {
        "backlinks": knowledge.backlinks(ws, display_id), "references": knowledge.references(ws, display_id),
    }
    if record.type is RecordType.DOC:
        extras["crumbs"] = docs.breadcrumbs(ws, signed_in.history.tree, display_id)
        extras["revisions"] = docs.list_revisions(ws, signed_in.history.revisions, display_id, limit=20)
    if record.type is RecordType.TICKET:
        extras["comments"] = tickets.list_comments(ws, signed_in.history.comments, display_id)
        extras["activity"] = tickets.activity_log(ws, signed_in.history.activity, display_id)
        extras["links"] = tickets.list_links(ws, signed_in.history.links, display_id)
    return extras


def _people(signed_in: SignedIn, org_id: int) -> dict[int, str]:
    return member_names(signed_in, org_id)


@get("/o/{org_id:int}/r/{display_id:str}", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def record_page(request: Request, org_id: int, display_id: str, signed_in: NamedDependency[SignedIn],
                services: NamedDependency[Services], project: str | None = None, edit: bool = False) -> Response:
    ws = workspace(signed_in, org_id)
    record = knowledge.get_record(ws, DisplayId.parse(display_id))
    shell = shell_for(signed_in, org_id, project, SECTION_OF[record.type])
    return page(request, "record.html", shell=shell, record=record, editing=edit,
                next_statuses=sorted(TRANSITIONS[record.type][record.status]),
                fields=FORM_FIELDS[record.type], scopes=scope_choices(shell),
                scope_label=scope_namer(shell)(record.scope), people=_people(signed_in, org_id),
                section=SECTION_OF[record.type], heading=SECTIONS[SECTION_OF[record.type]][1],
                files=record_files(signed_in, services, org_id, record.display_id),
                uploads_enabled=services.upload_store is not None, **_extras(signed_in, ws, record))


def _version(form: Form) -> int:
    version = form.integer("version", "version")
    if version is None:
        raise InvalidInput("the form lost the version it was loaded at: reload the page", field="version")
    return version


@post("/o/{org_id:int}/r/{display_id:str}", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def save_record(request: Request, org_id: int, display_id: str, form: NamedDependency[Form],
                signed_in: NamedDependency[SignedIn]) -> Response:
    ws = workspace(signed_in, org_id)
    did = DisplayId.parse(display_id)
    current = knowledge.get_record(ws, did)
    change = knowledge.RecordChange(title=form.get("title"), body=form.get("body"),
                                    fields=fields_from(form, current.type) or None)
    knowledge.update_record(ws, did, expected_version=_version(form), change=change)
    return redirect(request, _record_link(org_id, display_id, form.get("project")))


@post("/o/{org_id:int}/r/{display_id:str}/status", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def change_status(request: Request, org_id: int, display_id: str, form: NamedDependency[Form],
                  signed_in: NamedDependency[SignedIn]) -> Response:
    ws = workspace(signed_in, org_id)
    change = knowledge.RecordChange(status=form.required("status"))
    knowledge.update_record(ws, DisplayId.parse(display_id), expected_version=_version(form), change=change)
    return redirect(request, _record_link(org_id, display_id, form.get("project")))


@post("/o/{org_id:int}/r/{display_id:str}/move", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def move_doc(request: Request, org_id: int, display_id: str, form: NamedDependency[Form],
             signed_in: NamedDependency[SignedIn]) -> Response:
    """Move a doc (with its sub-pages) to another scope; "Private" makes it private to you."""
    ws = workspace(signed_in, org_id)
    kind, ref = parse_scope(form, signed_in.principal.user_id)
    did = DisplayId.parse(display_id)
    if kind == "user":
        docs.make_private(ws, did, version=_version(form))
    else:
        docs.move_scope(ws, did, kind, ref, version=_version(form))
    return redirect(request, _record_link(org_id, display_id, form.get("project")))


@post("/o/{org_id:int}/r/{display_id:str}/comments", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def add_comment(request: Request, org_id: int, display_id: str, form: NamedDependency[Form],
                signed_in: NamedDependency[SignedIn]) -> Response:
    tickets.add_comment(workspace(signed_in, org_id), signed_in.history.comments, DisplayId.parse(display_id),
                        form.get("body"))
    return redirect(request, _record_link(org_id, display_id, form.get("project")) + "#comments")


@post("/o/{org_id:int}/r/{display_id:str}/links", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def add_link(request: Request, org_id: int, display_id: str, form: NamedDependency[Form],
             signed_in: NamedDependency[SignedIn]) -> Response:
    tickets.add_link(workspace(signed_in, org_id), signed_in.history.links, DisplayId.parse(display_id),
                     form.get("kind"), form.required("target", "the record to link"))
    return redirect(request, _record_link(org_id, display_id, form.get("project")) + "#links")


@post("/o/{org_id:int}/preview", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def preview(org_id: int, form: NamedDependency[Form], signed_in: NamedDependency[SignedIn]) -> Response:
    """The editor's live Markdown preview (HTMX): exactly what the page will show after saving."""
    workspace(signed_in, org_id)  # members only: NotFound otherwise
    html = render_markdown(form.get("body")) or "<p class=\"muted\">Nothing to preview yet.</p>"
    return Response(Markup(html), media_type="text/html")  # noqa: S704 - rendered with raw HTML escaped


# --- search ------------------------------------------------------------------------------------


FALLBACK_NOTICES = {
    FallbackReason.AI_NOT_CONFIGURED: "AI is not configured on this server, so these are keyword results: a server "
    "admin sets OPENAI_API_KEY to turn on semantic and hybrid search.",
    FallbackReason.EMBEDDINGS_NOT_READY: "Nothing has been embedded for semantic search yet, so these are keyword "
    "results (`tow embeddings status` shows the backlog).",
    FallbackReason.EMBEDDING_UNAVAILABLE: "The AI provider did not answer, so these are keyword results; try again "
    "in a moment.",
}


def _mode(value: str) -> SearchMode | None:
    try:
        return SearchMode(value) if value else None
    except ValueError as exc:
        raise InvalidInput("mode must be keyword, semantic or hybrid", field="mode") from exc


@get("/o/{org_id:int}/search", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def search_page(request: Request, org_id: int, signed_in: NamedDependency[SignedIn],
                services: NamedDependency[Services], q: str = "", project: str | None = None,
                cursor: str | None = None, mode: str = "") -> Response:
    """Keyword, semantic or hybrid search (default: hybrid with AI configured, else keyword), through the
    same use case as /api/.../search; when semantic search cannot run, the page says why."""
    shell = shell_for(signed_in, org_id, project, "search")
    hits, next_cursor, answered, notice = [], None, None, None
    if q.strip():
        ws = workspace(signed_in, org_id)
        query = RecordQuery(project_id=shell.project.id if shell.project else None)
        result = semantic_search.search(ws, q, query, mode=_mode(mode), cursor=cursor or None, limit=20,
                                        embedder=services.embedding_model, index=signed_in.semantic)
        hits = [(h, Markup(snippet_html(h.snippet))) for h in result.hits]  # noqa: S704 - escaped, then <mark>
        next_cursor, answered = result.next_cursor, result.mode.value
        notice = FALLBACK_NOTICES.get(result.fallback_reason) if result.fallback_reason else None
    return page(request, "search.html", shell=shell, q=q, hits=hits, next_cursor=next_cursor, mode=mode,
                answered=answered, notice=notice, ai_configured=services.embedding_model is not None,
                modes=[m.value for m in SearchMode], section_of={t.value: s for t, s in SECTION_OF.items()})


RECORD_PAGES = [record_list, create_record, record_page, save_record, change_status, move_doc, add_comment,
                add_link, preview, search_page]
