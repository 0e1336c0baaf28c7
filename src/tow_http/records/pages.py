"""Knowledge pages: memory, docs, tickets, decisions, risks and snapshots (SPEC §4), and keyword search
(§7). Every read and write goes through the same ``tow_core`` use cases as the JSON API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from markupsafe import Markup

from tow_core.errors import InvalidInput
from tow_core.records import (
    DISPLAY_ID_PATTERN,
    MEMORY_TYPES,
    SNAPSHOT_TYPES,
    TICKET_TYPES,
    TRANSITIONS,
    DisplayId,
    RecordType,
)
from tow_core.semantic_search import FallbackReason, SearchMode
from tow_core.unit_of_work import Credential
from tow_core.use_cases.docs import DocUseCases
from tow_core.use_cases.extraction import MemoryExtractionUseCases
from tow_core.use_cases.record_pages import RecordPageUseCases
from tow_core.use_cases.records import RecordUseCases
from tow_core.use_cases.tickets import TicketUseCases
from tow_http.config import Settings
from tow_http.pages.markdown import render_markdown
from tow_http.pages.scopes import default_scope, parse_scope, scope_choices, scope_namer
from tow_http.pages.web import Form, Shell, page, redirect
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


# --- lists -------------------------------------------------------------------------------------

Caller = NamedDependency[Credential]
Pages = NamedDependency[RecordPageUseCases]


@get("/o/{org_id:int}/{section:str}", sync_to_thread=True, include_in_schema=False)
def record_list(request: Request, org_id: int, section: str, caller: Caller, record_pages: Pages,
                project: str | None = None, status: str | None = None, cursor: str | None = None,
                view: str = "list", deleted: str = "") -> Response:
    """``deleted``: the doc just deleted from its page, to say so (only a well-formed display ID is shown)."""
    if section not in SECTIONS:
        raise NotFoundException(f"no page {section}")
    record_type, heading, description = SECTIONS[section]
    framed = record_pages.record_list(caller, org_id, project, record_type, status=status, cursor=cursor,
                                      limit=200 if view == "board" else 50)
    shell, found = Shell(framed.frame, section), framed.content
    columns = {c: [r for r in found.records if r.status == c] for c in TICKET_COLUMNS}
    return page(request, "records.html", shell=shell, section=section, heading=heading, description=description,
                record_type=record_type.value, records=found.records, next_cursor=found.next_cursor,
                status=status or "", statuses=list(TRANSITIONS[record_type]), view=view, columns=columns,
                tree=found.tree, fields=FORM_FIELDS[record_type], scopes=scope_choices(shell),
                people=found.people, default_scope=default_scope(shell), scope_name=scope_namer(shell),
                ai_configured=found.ai_configured, uploads_enabled=found.uploads_enabled,
                deleted=deleted if DISPLAY_ID_PATTERN.fullmatch(deleted) else "",
                snapshot_type_options=[(t, t.replace("_", " ").capitalize()) for t in SNAPSHOT_TYPES])


@post("/o/{org_id:int}/records", sync_to_thread=True, include_in_schema=False)
def create_record(request: Request, org_id: int, form: NamedDependency[Form], caller: Caller, record_pages: Pages
                  ) -> Response:
    record_type = _record_type(form.get("type"))
    scope = parse_scope(form)  # the private choice is the signed-in person's: the use case fills them in
    fields = fields_from(form, record_type)
    parent = form.integer("parent_id", "parent page")
    if record_type is RecordType.DOC and parent is not None:
        fields["parent_id"] = parent
    record = record_pages.create(caller, org_id, record_type=record_type, scope=scope, title=form.get("title"),
                                 body=form.get("body"), fields=fields)
    return redirect(request, _record_link(org_id, str(record.display_id), form.get("project")))


def _record_type(value: str) -> RecordType:
    try:
        return RecordType(value)
    except ValueError as exc:
        raise InvalidInput("unknown record type", field="type") from exc


def _list_link(org_id: int, section: str, project: str, **params: str) -> str:
    """A list page, keeping the picked project."""
    return f"/o/{org_id}/{section}?{urlencode({**params, **({'project': project} if project else {})})}"


def _record_link(org_id: int, display_id: str, project: str = "") -> str:
    suffix = f"?project={project}" if project else ""
    return f"/o/{org_id}/r/{display_id}{suffix}"


# --- one record --------------------------------------------------------------------------------

# the template asks whether each is defined
_EXTRAS = ("crumbs", "revisions", "comments", "activity", "links", "provenance")


@get("/o/{org_id:int}/r/{display_id:str}", sync_to_thread=True, include_in_schema=False)
def record_page(request: Request, org_id: int, display_id: str, caller: Caller, record_pages: Pages,
                settings: NamedDependency[Settings], project: str | None = None, edit: bool = False,
                upload_refused: str | None = None, extraction_run: int | None = None,
                edit_comment: int | None = None) -> Response:
    """``edit_comment``: the id of your comment to show as an edit form (without JavaScript too)."""
    framed = record_pages.record(caller, org_id, DisplayId.parse(display_id), project)
    view, record = framed.content, framed.content.record
    shell = Shell(framed.frame, SECTION_OF[record.type])
    extras = {name: getattr(view, name) for name in _EXTRAS if getattr(view, name) is not None}
    return page(request, "record.html", shell=shell, record=record, editing=edit,
                next_statuses=[s for s in TRANSITIONS[record.type] if s in TRANSITIONS[record.type][record.status]],
                fields=FORM_FIELDS[record.type], scopes=scope_choices(shell),
                scope_label=scope_namer(shell)(record.scope), people=view.people,
                section=SECTION_OF[record.type], heading=SECTIONS[SECTION_OF[record.type]][1],
                files=view.files, uploads_enabled=view.uploads_enabled, backlinks=view.backlinks,
                references=view.references, upload_max_bytes=settings.uploads.upload_max_bytes,
                upload_refused=upload_refused, extraction_enabled=view.extraction_enabled,
                extraction_queued=extraction_run, writable=view.writable, watching=view.watching,
                editing_comment=edit_comment, **extras)


def _version(form: Form) -> int:
    version = form.integer("version", "version")
    if version is None:
        raise InvalidInput("the form lost the version it was loaded at: reload the page", field="version")
    return version


@post("/o/{org_id:int}/r/{display_id:str}", sync_to_thread=True, include_in_schema=False)
def save_record(request: Request, org_id: int, display_id: str, form: NamedDependency[Form], caller: Caller,
                record_pages: Pages) -> Response:
    record_pages.save(caller, org_id, DisplayId.parse(display_id), version=_version(form), title=form.get("title"),
                      body=form.get("body"), fields_for=lambda record_type: fields_from(form, record_type) or None)
    return redirect(request, _record_link(org_id, display_id, form.get("project")))


@post("/o/{org_id:int}/r/{display_id:str}/extract", sync_to_thread=True, include_in_schema=False)
def extract_memory(request: Request, org_id: int, display_id: str, form: NamedDependency[Form], caller: Caller,
                   extraction: NamedDependency[MemoryExtractionUseCases]) -> Response:
    """The doc page's "Extract memory": queue the run, then back to the doc saying so."""
    run = extraction.extract(caller, org_id, DisplayId.parse(display_id)).run
    link = _record_link(org_id, display_id, form.get("project"))
    return redirect(request, f"{link}{'&' if '?' in link else '?'}extraction_run={run.id}")


@post("/o/{org_id:int}/r/{display_id:str}/status", sync_to_thread=True, include_in_schema=False)
def change_status(request: Request, org_id: int, display_id: str, form: NamedDependency[Form], caller: Caller,
                  records: NamedDependency[RecordUseCases]) -> Response:
    """The record page's status buttons and the board's "Move" (``back=board``: back to the board; its drag and
    drop, static/board.js, posts this same form)."""
    records.update(caller, org_id, DisplayId.parse(display_id), version=_version(form),
                   status=form.required("status"))
    if form.get("back") == "board":
        return redirect(request, _list_link(org_id, "tickets", form.get("project"), view="board"))
    return redirect(request, _record_link(org_id, display_id, form.get("project")))


@post("/o/{org_id:int}/r/{display_id:str}/move", sync_to_thread=True, include_in_schema=False)
def move_doc(request: Request, org_id: int, display_id: str, form: NamedDependency[Form], caller: Caller,
             record_pages: Pages) -> Response:
    """Move a doc (with its sub-pages) to another scope; "Private" makes it private to you."""
    record_pages.move_doc(caller, org_id, DisplayId.parse(display_id), parse_scope(form), version=_version(form))
    return redirect(request, _record_link(org_id, display_id, form.get("project")))


@post("/o/{org_id:int}/r/{display_id:str}/comments", sync_to_thread=True, include_in_schema=False)
def add_comment(request: Request, org_id: int, display_id: str, form: NamedDependency[Form], caller: Caller,
                tickets: NamedDependency[TicketUseCases]) -> Response:
    tickets.add_comment(caller, org_id, DisplayId.parse(display_id), form.get("body"))
    return redirect(request, _record_link(org_id, display_id, form.get("project")) + "#comments")


@get("/o/{org_id:int}/r/{display_id:str}/comments/{comment_id:int}", sync_to_thread=True, include_in_schema=False)
def comment_fragment(request: Request, org_id: int, display_id: str, comment_id: int, caller: Caller,
                     record_pages: Pages, project: str | None = None) -> Response:
    """One comment as the ticket page lists it, for static/live.js to append when someone else comments: read as
    the caller, 404 unless they read the ticket and it is one of its comments."""
    ticket = DisplayId.parse(display_id)
    view = record_pages.comment(caller, org_id, ticket, comment_id, project)
    return page(request, "_comment.html", c=view.comment, author=view.author_name, viewer_id=view.viewer_id,
                editing_comment=None, org_id=org_id, display_id=str(ticket),
                link=Shell.linker(org_id, view.project_key), project_key=view.project_key)


@post("/o/{org_id:int}/r/{display_id:str}/comments/{comment_id:int}", sync_to_thread=True, include_in_schema=False)
def edit_comment(request: Request, org_id: int, display_id: str, comment_id: int, form: NamedDependency[Form],
                 caller: Caller, tickets: NamedDependency[TicketUseCases]) -> Response:
    """Your own comment, rewritten (the same rule as ``PATCH .../comments/{id}``)."""
    tickets.edit_comment(caller, org_id, DisplayId.parse(display_id), comment_id, form.get("body"))
    return redirect(request, _record_link(org_id, display_id, form.get("project")) + f"#comment-{comment_id}")


@post("/o/{org_id:int}/r/{display_id:str}/comments/{comment_id:int}/delete", sync_to_thread=True,
      include_in_schema=False)
def delete_comment(request: Request, org_id: int, display_id: str, comment_id: int, form: NamedDependency[Form],
                   caller: Caller, tickets: NamedDependency[TicketUseCases]) -> Response:
    tickets.delete_comment(caller, org_id, DisplayId.parse(display_id), comment_id)
    return redirect(request, _record_link(org_id, display_id, form.get("project")) + "#comments")


@post("/o/{org_id:int}/r/{display_id:str}/delete", sync_to_thread=True, include_in_schema=False)
def delete_doc(request: Request, org_id: int, display_id: str, form: NamedDependency[Form], caller: Caller,
               docs: NamedDependency[DocUseCases]) -> Response:
    """Reached through the page's confirmation step; only docs are deleted (other records are archived)."""
    docs.delete(caller, org_id, DisplayId.parse(display_id))
    return redirect(request, _list_link(org_id, "docs", form.get("project"), deleted=display_id))


@post("/o/{org_id:int}/r/{display_id:str}/links", sync_to_thread=True, include_in_schema=False)
def add_link(request: Request, org_id: int, display_id: str, form: NamedDependency[Form], caller: Caller,
             tickets: NamedDependency[TicketUseCases]) -> Response:
    tickets.add_link(caller, org_id, DisplayId.parse(display_id), form.get("kind"),
                     form.required("target", "the record to link"))
    return redirect(request, _record_link(org_id, display_id, form.get("project")) + "#links")


@post("/o/{org_id:int}/preview", sync_to_thread=True, include_in_schema=False)
def preview(org_id: int, form: NamedDependency[Form], caller: Caller, record_pages: Pages) -> Response:
    """The editor's live Markdown preview (HTMX): exactly what the page will show after saving."""
    record_pages.allow_preview(caller, org_id)  # members only: NotFound otherwise
    html = render_markdown(form.get("body")) or "<p class=\"muted\">Nothing to preview yet.</p>"
    return Response(Markup(html), media_type="text/html")  # noqa: S704 - rendered with raw HTML escaped


@get("/o/{org_id:int}/doc-tree/{display_id:str}", sync_to_thread=True, include_in_schema=False)
def doc_branches(request: Request, org_id: int, display_id: str, caller: Caller, docs: NamedDependency[DocUseCases],
                 project: str | None = None) -> Response:
    """The sidebar's doc tree, one level on demand: the readable sub-pages of a readable doc, as list items
    (404 for a doc the caller cannot read, as for one that does not exist)."""
    key = project.strip().upper() if project else None
    branches = docs.branches(caller, org_id, key, DisplayId.parse(display_id))
    link = Shell.linker(org_id, key)
    return page(request, "_doc_branches.html", branches=branches, link=link)


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
def search_page(request: Request, org_id: int, caller: Caller, record_pages: Pages, q: str = "",
                project: str | None = None, cursor: str | None = None, mode: str = "") -> Response:
    """Keyword, semantic or hybrid search (default: hybrid with AI configured, else keyword), through the
    same use case as /api/.../search; when semantic search cannot run, the page says why."""
    framed = record_pages.search(caller, org_id, project, q, mode=_mode(mode) if q.strip() else None,
                                 cursor=cursor or None)
    result = framed.content.result
    hits, next_cursor, answered, notice = [], None, None, None
    if result is not None:
        hits = [(h, Markup(snippet_html(h.snippet))) for h in result.hits]  # noqa: S704 - escaped, then <mark>
        next_cursor, answered = result.next_cursor, result.mode.value
        notice = FALLBACK_NOTICES.get(result.fallback_reason) if result.fallback_reason else None
    return page(request, "search.html", shell=Shell(framed.frame, "search"), q=q, hits=hits, next_cursor=next_cursor,
                mode=mode, answered=answered, notice=notice, ai_configured=framed.content.ai_configured,
                problem=framed.content.problem, hint=result.hint if result is not None else None,
                modes=[m.value for m in SearchMode], section_of={t.value: s for t, s in SECTION_OF.items()})


RECORD_PAGES = [record_list, create_record, record_page, save_record, extract_memory, change_status, move_doc,
                add_comment, comment_fragment, edit_comment, delete_comment, delete_doc, add_link, preview,
                doc_branches, search_page]
