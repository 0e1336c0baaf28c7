"""Knowledge records over HTTP: create, read, update, list, search, references and lookup (SPEC §4, §7)."""

from __future__ import annotations

import msgspec
from litestar import Request, Response, Router, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED

from tow_core.records import DisplayId
from tow_core.unit_of_work import Credential
from tow_core.use_cases.records import RecordUseCases
from tow_http.records.shapes import (
    CountOut,
    Mode,
    ProjectKey,
    RecordIn,
    RecordOut,
    RecordPageOut,
    RecordPatch,
    SearchPageOut,
    Statuses,
    SummaryOut,
    Types,
    expected_version,
    hit_out,
    record_out,
    summary_out,
    with_etag,
)
from tow_http.shapes import Cursor, Limit

BASE = "/organisations/{org_id:int}"


@post(
    f"{BASE}/records",
    summary="Create a record",
    description="Types: memory, doc, ticket, decision, risk, snapshot. `scope` is {kind: organisation|group|"
    "project|user, id}; you need write access to it (on an **open** project every member can write). "
    "An organisation scope's `id`, if given, must be this organisation's (else 422, `field: scope_id`). "
    "Type-specific `fields` are validated by name (e.g. ticket: ticket_type, priority 1–4, assignee_id, labels, "
    "due_date, parent_id). Ids they name are checked (422 naming the field): a ticket's `assignee_id` and a "
    "risk's `owner_id` must be members of this organisation; each of a memory item's `source_references` must be "
    "a record you can read here — the same answer whether it does not exist or you may not read it. "
    "Tickets get their project's key (APP-42) or TKT-n; others MEM/DOC/DEC/RSK/SNP-n. "
    "Display IDs written in the title or body become references.",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
)
def create_record(org_id: int, data: JSONBody[RecordIn], caller: NamedDependency[Credential],
                  records: NamedDependency[RecordUseCases]) -> Response[RecordOut]:
    record = records.create(caller, org_id, record_type=data.type, scope=(data.scope.kind, data.scope.id),
                            title=data.title, body=data.body, fields=data.fields)
    return with_etag(record, HTTP_201_CREATED)


@get(
    f"{BASE}/records",
    summary="List records you can read",
    description="Newest first, filtered by type, status and project (`project=KEY`; absent = all projects), "
    "with cursor pagination. Only records you can read are ever counted or returned.",
    sync_to_thread=True,
)
def list_records(
    org_id: int, caller: NamedDependency[Credential], records: NamedDependency[RecordUseCases],
    types: Types = None, statuses: Statuses = None, project: ProjectKey = None, cursor: Cursor = None,
    limit: Limit = 50,
) -> RecordPageOut:
    page = records.list_records(caller, org_id, types=types, statuses=statuses, project=project, cursor=cursor,
                                limit=limit)
    return RecordPageOut([record_out(r) for r in page.items], page.next_cursor)


@get(f"{BASE}/records/count", summary="Count records you can read (same filters as the list)", sync_to_thread=True)
def count_records(
    org_id: int, caller: NamedDependency[Credential], records: NamedDependency[RecordUseCases],
    types: Types = None, statuses: Statuses = None, project: ProjectKey = None,
) -> CountOut:
    return CountOut(records.count(caller, org_id, types=types, statuses=statuses, project=project))


@get(
    f"{BASE}/records/{{display_id:str}}",
    summary="Get a record by display ID",
    description="404 when it does not exist or you cannot read it. The `ETag` is its version.",
    sync_to_thread=True,
)
def get_record(org_id: int, display_id: str, caller: NamedDependency[Credential],
               records: NamedDependency[RecordUseCases]) -> Response[RecordOut]:
    return with_etag(records.get(caller, org_id, DisplayId.parse(display_id)))


@patch(
    f"{BASE}/records/{{display_id:str}}",
    summary="Update a record",
    description="Send the version you loaded (`If-Match: \"3\"` or `version`); if someone saved since, 409 names "
    "the current version and nothing changes. Status moves follow the type's lifecycle. Moving to another "
    "`scope` needs write access to both scopes. A snapshot's text is editable only before activation. Ids the "
    "update adds to `fields` are checked as on create (`assignee_id`, `owner_id`: members; `source_references`: "
    "records you can read; 422 naming the field); ids kept from before are not checked again.",
    sync_to_thread=True,
)
def update_record(
    org_id: int, display_id: str, data: JSONBody[RecordPatch], request: Request,
    caller: NamedDependency[Credential], records: NamedDependency[RecordUseCases],
) -> Response[RecordOut]:
    version = expected_version(request, data)
    record = records.update(
        caller, org_id, DisplayId.parse(display_id), version=version,
        title=None if data.title is msgspec.UNSET else data.title,
        body=None if data.body is msgspec.UNSET else data.body,
        status=None if data.status is msgspec.UNSET else data.status,
        fields=None if data.fields is msgspec.UNSET else data.fields,
        scope=None if data.scope is msgspec.UNSET else (data.scope.kind, data.scope.id),
    )
    return with_etag(record)


@get(
    f"{BASE}/records/{{display_id:str}}/backlinks",
    summary="Records that cite this one",
    description="Only citing records you can read are listed.",
    sync_to_thread=True,
)
def record_backlinks(org_id: int, display_id: str, caller: NamedDependency[Credential],
                     records: NamedDependency[RecordUseCases]) -> list[SummaryOut]:
    return [summary_out(s) for s in records.backlinks(caller, org_id, DisplayId.parse(display_id))]


@get(
    f"{BASE}/records/{{display_id:str}}/references",
    summary="Records this one cites",
    description="Only cited records you can read are listed: citing APP-7 reveals nothing about APP-7 to "
    "someone who cannot read it.",
    sync_to_thread=True,
)
def record_references(org_id: int, display_id: str, caller: NamedDependency[Credential],
                      records: NamedDependency[RecordUseCases]) -> list[SummaryOut]:
    return [summary_out(s) for s in records.references(caller, org_id, DisplayId.parse(display_id))]


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
    "readable record is never returned. `snippet_html` is escaped text with matched words in `<mark>`.\n\n"
    "A display ID in `q` (`SEC-1`, `doc-12`) names a record: if you can read it and it passes the filters it "
    "comes first (`rank` 1.0) and is not repeated below; a keyword page may then hold up to five items more than "
    "`limit`. A query of only stop words or punctuation matches no word: the answer is empty (but for named "
    "records) with a `hint` saying what to search for — not an error.",
    sync_to_thread=True,
)
def search(
    org_id: int, caller: NamedDependency[Credential], records: NamedDependency[RecordUseCases], q: str,
    types: Types = None, statuses: Statuses = None, project: ProjectKey = None, cursor: Cursor = None,
    limit: Limit = 20, mode: Mode = None,
) -> SearchPageOut:
    result = records.search(caller, org_id, q, types=types, statuses=statuses, project=project, mode=mode,
                            cursor=cursor, limit=limit)
    return SearchPageOut(result.mode.value, [hit_out(h) for h in result.hits], result.next_cursor,
                         result.fallback_reason.value if result.fallback_reason else None, result.hint)


@get(
    f"{BASE}/lookup",
    summary="Resolve a display ID or title prefix",
    description="`q=APP-42` finds that record, `q=APP-` (a prefix and its dash) the records of that prefix, highest "
                "number first, and `q=Onboard` records whose title starts with it; readable only. The editor's "
                "reference completion (`DOC-`, `[[title`) asks this.",
    sync_to_thread=True,
)
def lookup(org_id: int, q: str, caller: NamedDependency[Credential], records: NamedDependency[RecordUseCases],
           limit: Limit = 20) -> list[SummaryOut]:
    return [summary_out(s) for s in records.lookup(caller, org_id, q, limit=limit)]


records_router = Router(
    path="/api",
    route_handlers=[create_record, list_records, count_records, get_record, update_record, record_backlinks,
                    record_references, search, lookup],
    tags=["records"],
)
