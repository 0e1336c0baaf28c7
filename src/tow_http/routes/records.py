"""Knowledge records over HTTP: create, read, update, list, search, references and lookup (SPEC §4, §7)."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from tow_core import knowledge, semantic_search
from tow_core.access import Scope, ScopeKind
from tow_core.errors import InvalidInput
from tow_core.knowledge import RecordChange, Workspace
from tow_core.records import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    MEMORY_TYPES,
    SNAPSHOT_TYPES,
    TICKET_TYPES,
    DisplayId,
    Record,
    RecordQuery,
    RecordSummary,
    RecordType,
    SearchHit,
)
from tow_core.semantic_search import SearchMode
from tow_http.context import Services, SignedIn
from tow_http.shapes import DISPLAY_ID, MAX_SAFE_INTEGER, NOT_BLANK, Body, Id, Strict, Title, Version

Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=200, description="page size (1–200)")]
Cursor = Annotated[str | None, QueryParameter(name="cursor", description="from the previous page's next_cursor")]
Types = Annotated[list[RecordType] | None, QueryParameter(name="type", description="repeat to allow several")]
Statuses = Annotated[list[str] | None, QueryParameter(name="status", description="repeat to allow several")]
Mode = Annotated[
    SearchMode | None,
    QueryParameter(name="mode", description="keyword | semantic | hybrid (default: hybrid with AI configured, "
                   "else keyword)"),
]
ProjectKey = Annotated[
    str | None, QueryParameter(name="project", description="a project key: only that project's records")
]


class ScopeIn(Strict):
    kind: ScopeKind
    id: Id | None = None  # required for every kind but organisation


def _fields_schema(*types: str) -> dict[str, Any]:
    """The JSON Schema of `fields` for these record types (records.FIELD_SPECS): which names a record takes
    depends on its type, so a name of another type is a 422 naming it; each value's own bounds are here."""
    def one_of(*values: str) -> dict[str, Any]:
        return {"type": "string", "enum": list(values)}

    def integer(low: int, high: int = MAX_SAFE_INTEGER) -> dict[str, Any]:
        return {"type": "integer", "minimum": low, "maximum": high}

    def nullable(schema: dict[str, Any]) -> dict[str, Any]:
        return {"oneOf": [schema, {"type": "null"}]}

    labels = {"type": "array", "maxItems": 50, "items": {"type": "string", "maxLength": 64, "pattern": NOT_BLANK}}
    text = {"type": "string", "maxLength": 20_000}
    by_type = {
        "memory": {"memory_type": one_of(*MEMORY_TYPES), "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                   "importance": integer(1, 5), "tags": labels,
                   "source_references": {"type": "array", "items": {"type": "string", "pattern": DISPLAY_ID}},
                   "valid_from": nullable({"type": "string", "format": "date-time"}),
                   "valid_until": nullable({"type": "string", "format": "date-time"}),
                   "superseded_by": nullable({"type": "string", "maxLength": 40})},
        "doc": {"parent_id": nullable(integer(1)), "tags": labels},
        "ticket": {"ticket_type": one_of(*TICKET_TYPES), "priority": integer(1, 4), "assignee_id": nullable(integer(1)),
                   "labels": labels, "due_date": nullable({"type": "string", "format": "date"}),
                   "parent_id": nullable(integer(1))},
        "decision": {name: text for name in ("context", "decision", "consequences", "alternatives")},
        "risk": {"severity": integer(1, 5), "likelihood": integer(1, 5), "mitigation": text,
                 "owner_id": nullable(integer(1))},
        "snapshot": {"snapshot_type": one_of(*SNAPSHOT_TYPES),
                     "generated_by": nullable({"type": "string", "maxLength": 200})},
    }
    properties = {name: schema for kind in types for name, schema in by_type[kind].items()}
    return {"properties": properties, "additionalProperties": False}


def memory_fields() -> dict[str, Any]:
    return _fields_schema("memory")


FIELDS_DESCRIPTION = ("Type-specific fields: memory (memory_type required), doc, ticket, decision, risk, snapshot "
                      "(snapshot_type required); see SPEC §4.")
Fields = Annotated[dict[str, Any], msgspec.Meta(description=FIELDS_DESCRIPTION, extra_json_schema={
    "extra": _fields_schema("memory", "doc", "ticket", "decision", "risk", "snapshot")})]


class ScopeOut(msgspec.Struct):
    kind: str
    id: int


class RecordIn(Strict):
    type: RecordType
    scope: ScopeIn
    title: Title
    body: Body = ""
    fields: Fields = msgspec.field(default_factory=dict)


class RecordPatch(Strict):
    version: Version | msgspec.UnsetType = msgspec.UNSET
    title: Title | msgspec.UnsetType = msgspec.UNSET
    body: Body | msgspec.UnsetType = msgspec.UNSET
    status: str | msgspec.UnsetType = msgspec.UNSET
    fields: Fields | msgspec.UnsetType = msgspec.UNSET
    scope: ScopeIn | msgspec.UnsetType = msgspec.UNSET


class RecordOut(msgspec.Struct):
    id: int
    display_id: str
    type: str
    organisation_id: int
    scope: ScopeOut
    title: str
    body: str
    status: str
    author_id: int | None
    created_at: datetime
    updated_at: datetime
    version: int
    fields: dict[str, Any]


class SummaryOut(msgspec.Struct):
    display_id: str
    type: str
    title: str
    status: str
    scope: ScopeOut


class RecordPageOut(msgspec.Struct):
    items: list[RecordOut]
    next_cursor: str | None


class CountOut(msgspec.Struct):
    count: int


class SearchHitOut(msgspec.Struct):
    display_id: str
    type: str
    title: str
    status: str
    scope: ScopeOut
    snippet_html: str
    rank: float


class SearchPageOut(msgspec.Struct):
    mode: str  # the mode that answered
    items: list[SearchHitOut]
    next_cursor: str | None
    fallback_reason: str | None = None  # why semantic/hybrid was answered by keyword search


def scope_out(scope: Scope) -> ScopeOut:
    return ScopeOut(scope.kind.value, scope.ref_id)


def record_out(record: Record) -> RecordOut:
    return RecordOut(
        record.id, str(record.display_id), record.type.value, record.organisation_id, scope_out(record.scope),
        record.title, record.body, record.status, record.author_id, record.created_at, record.updated_at,
        record.version, dict(record.fields),
    )


def summary_out(summary: RecordSummary) -> SummaryOut:
    return SummaryOut(str(summary.display_id), summary.type.value, summary.title, summary.status,
                      scope_out(summary.scope))


def snippet_html(snippet: str) -> str:
    """Escape user text first, then turn the store's highlight markers into <mark> tags."""
    return html.escape(snippet).replace(HIGHLIGHT_START, "<mark>").replace(HIGHLIGHT_END, "</mark>")


def hit_out(hit: SearchHit) -> SearchHitOut:
    s = hit.summary
    return SearchHitOut(str(s.display_id), s.type.value, s.title, s.status, scope_out(s.scope),
                        snippet_html(hit.snippet), hit.rank)


def workspace(signed_in: SignedIn, org_id: int) -> Workspace:
    return Workspace(signed_in.records, signed_in.directory, signed_in.principal, org_id, history=signed_in.history)


def record_query(ws: Workspace, types: list[RecordType] | None, statuses: list[str] | None,
                 project: str | None) -> RecordQuery:
    return RecordQuery(frozenset(types or ()), frozenset(statuses or ()), knowledge.project_filter(ws, project))


def expected_version(request: Request, data: RecordPatch) -> int:
    """The version the editor loaded: ``If-Match: "3"`` or ``"version": 3`` in the body."""
    header = request.headers.get("if-match")
    if header:
        try:
            return int(header.removeprefix("W/").strip('"'))
        except ValueError as exc:
            raise InvalidInput("If-Match must be the record's version, e.g. \"3\"", field="If-Match") from exc
    if data.version is msgspec.UNSET:
        raise InvalidInput("send the version you loaded (body `version` or If-Match) so edits never "
                           "overwrite each other silently", field="version")
    return data.version


def with_etag(record: Record, status_code: int = 200) -> Response[RecordOut]:
    return Response(record_out(record), status_code=status_code, headers={"ETag": f'"{record.version}"'})


BASE = "/organisations/{org_id:int}"


@post(
    f"{BASE}/records",
    summary="Create a record",
    description="Types: memory, doc, ticket, decision, risk, snapshot. `scope` is {kind: organisation|group|"
    "project|user, id}; you need write access to it (on an **open** project every member can write). "
    "Type-specific `fields` are validated by name (e.g. ticket: ticket_type, priority 1–4, assignee_id, labels, "
    "due_date, parent_id). Tickets get their project's key (APP-42) or TKT-n; others MEM/DOC/DEC/RSK/SNP-n. "
    "Display IDs written in the title or body become references.",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
)
def create_record(org_id: int, data: JSONBody[RecordIn], signed_in: NamedDependency[SignedIn]) -> Response[RecordOut]:
    ws = workspace(signed_in, org_id)
    ws.require_member()
    scope, project = knowledge.resolve_scope(ws, data.scope.kind, data.scope.id)
    record = knowledge.create_record(
        ws, record_type=data.type, scope=scope, project=project, title=data.title, body=data.body, fields=data.fields
    )
    return with_etag(record, HTTP_201_CREATED)


@get(
    f"{BASE}/records",
    summary="List records you can read",
    description="Newest first, filtered by type, status and project (`project=KEY`; absent = all projects), "
    "with cursor pagination. Only records you can read are ever counted or returned.",
    sync_to_thread=True,
)
def list_records(
    org_id: int, signed_in: NamedDependency[SignedIn], types: Types = None, statuses: Statuses = None,
    project: ProjectKey = None, cursor: Cursor = None, limit: Limit = 50,
) -> RecordPageOut:
    ws = workspace(signed_in, org_id)
    ws.require_member()
    page = knowledge.list_records(ws, record_query(ws, types, statuses, project), cursor=cursor, limit=limit)
    return RecordPageOut([record_out(r) for r in page.items], page.next_cursor)


@get(f"{BASE}/records/count", summary="Count records you can read (same filters as the list)", sync_to_thread=True)
def count_records(
    org_id: int, signed_in: NamedDependency[SignedIn], types: Types = None, statuses: Statuses = None,
    project: ProjectKey = None,
) -> CountOut:
    ws = workspace(signed_in, org_id)
    ws.require_member()
    return CountOut(knowledge.count_records(ws, record_query(ws, types, statuses, project)))


@get(
    f"{BASE}/records/{{display_id:str}}",
    summary="Get a record by display ID",
    description="404 when it does not exist or you cannot read it. The `ETag` is its version.",
    sync_to_thread=True,
)
def get_record(org_id: int, display_id: str, signed_in: NamedDependency[SignedIn]) -> Response[RecordOut]:
    return with_etag(knowledge.get_record(workspace(signed_in, org_id), DisplayId.parse(display_id)))


@patch(
    f"{BASE}/records/{{display_id:str}}",
    summary="Update a record",
    description="Send the version you loaded (`If-Match: \"3\"` or `version`); if someone saved since, 409 names "
    "the current version and nothing changes. Status moves follow the type's lifecycle. Moving to another "
    "`scope` needs write access to both scopes. A snapshot's text is editable only before activation.",
    sync_to_thread=True,
)
def update_record(
    org_id: int, display_id: str, data: JSONBody[RecordPatch], request: Request, signed_in: NamedDependency[SignedIn]
) -> Response[RecordOut]:
    ws = workspace(signed_in, org_id)
    ws.require_member()
    version = expected_version(request, data)
    scope = None if data.scope is msgspec.UNSET else knowledge.resolve_scope(ws, data.scope.kind, data.scope.id)
    change = RecordChange(
        title=None if data.title is msgspec.UNSET else data.title,
        body=None if data.body is msgspec.UNSET else data.body,
        status=None if data.status is msgspec.UNSET else data.status,
        fields=None if data.fields is msgspec.UNSET else data.fields,
        scope=scope,
    )
    return with_etag(knowledge.update_record(ws, DisplayId.parse(display_id), expected_version=version, change=change))


@get(
    f"{BASE}/records/{{display_id:str}}/backlinks",
    summary="Records that cite this one",
    description="Only citing records you can read are listed.",
    sync_to_thread=True,
)
def record_backlinks(org_id: int, display_id: str, signed_in: NamedDependency[SignedIn]) -> list[SummaryOut]:
    return [summary_out(s) for s in knowledge.backlinks(workspace(signed_in, org_id), DisplayId.parse(display_id))]


@get(
    f"{BASE}/records/{{display_id:str}}/references",
    summary="Records this one cites",
    description="Only cited records you can read are listed: citing APP-7 reveals nothing about APP-7 to "
    "someone who cannot read it.",
    sync_to_thread=True,
)
def record_references(org_id: int, display_id: str, signed_in: NamedDependency[SignedIn]) -> list[SummaryOut]:
    return [summary_out(s) for s in knowledge.references(workspace(signed_in, org_id), DisplayId.parse(display_id))]


@get(
    f"{BASE}/search",
    summary="Search: keyword, semantic or hybrid",
    description="Searches every record type you can read — the permission filter runs inside the same SQL "
    "statement as the ranking — following `project` and `status`/`type` filters, best first.\n\n"
    "`mode`: `keyword` is PostgreSQL full-text search (title weighs more than body; pageable with `cursor`); "
    "`semantic` ranks by embedding similarity (docs are split into overlapping chunks; a record ranks by its "
    "nearest chunk; `rank` is the cosine similarity); `hybrid` fuses both rankings by reciprocal rank (k = 60; "
    "`rank` is the fused score). Semantic and hybrid answer one page of the top `limit` (no cursor). Default: "
    "`hybrid` when an embedding model is configured, else `keyword`.\n\n"
    "When semantic or hybrid cannot run, the answer is keyword search and says why: `mode` is `keyword` and "
    "`fallback_reason` is `ai_not_configured` (no OPENAI_API_KEY), `embeddings_not_ready` (nothing embedded yet "
    "with the configured model) or `embedding_unavailable` (the provider failed, is rate limiting, refused the "
    "key or is no longer in `ai.approved_providers`). Records changed in the last "
    "moments may not be embedded yet (`tow embeddings status` shows the backlog); a deleted, moved or no longer "
    "readable record is never returned. `snippet_html` is escaped text with matched words in `<mark>`.",
    sync_to_thread=True,
)
def search(
    org_id: int, signed_in: NamedDependency[SignedIn], services: NamedDependency[Services], q: str,
    types: Types = None, statuses: Statuses = None, project: ProjectKey = None, cursor: Cursor = None,
    limit: Limit = 20, mode: Mode = None,
) -> SearchPageOut:
    ws = workspace(signed_in, org_id)
    ws.require_member()
    result = semantic_search.search(ws, q, record_query(ws, types, statuses, project), mode=mode, cursor=cursor,
                                    limit=limit, embedder=services.embedding_model, index=signed_in.semantic)
    return SearchPageOut(result.mode.value, [hit_out(h) for h in result.hits], result.next_cursor,
                         result.fallback_reason.value if result.fallback_reason else None)


@get(
    f"{BASE}/lookup",
    summary="Resolve a display ID or title prefix",
    description="`q=APP-42` finds that record, `q=Onboard` records whose title starts with it; readable only.",
    sync_to_thread=True,
)
def lookup(org_id: int, q: str, signed_in: NamedDependency[SignedIn], limit: Limit = 20) -> list[SummaryOut]:
    return [summary_out(s) for s in knowledge.lookup(workspace(signed_in, org_id), q, limit=limit)]


records_router = Router(
    path="/api",
    route_handlers=[create_record, list_records, count_records, get_record, update_record, record_backlinks,
                    record_references, search, lookup],
    tags=["records"],
)
