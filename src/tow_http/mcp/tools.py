"""The MCP server's tools (issue 15), built with the official ``mcp`` SDK's ``MCPServer``.

Each tool is a front door like a JSON API handler: it decodes its arguments with the API's own shapes (so the
same input is refused the same way), calls ONE method of ONE use case object — the very ones the API's handlers
call — as the access token of the HTTP request (``tow_http.mcp.door`` puts its credential in
``REQUEST_CREDENTIAL``: a personal access token, or the single sign-on provider's) — and encodes the answer with
the API's response shapes. The token's user and restrictions apply exactly as on the API:
``Transactions.acting_as`` resolves the credential on every call, a token limited to one organisation gets
``not_found`` for any other, and the two writing tools ask as writers, which a ``read`` token (or a provider's
without the write scope) is refused (``token_read_only``). Tool errors name TOW's error code and message;
nothing else of an exception leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import replace
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from anyio import to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from tow_core.errors import InvalidInput, NotAuthenticated, TowError
from tow_core.records import DisplayId, RecordType
from tow_core.semantic_search import SearchMode
from tow_core.unit_of_work import ProviderTokenCredential, TokenCredential
from tow_core.use_cases.memory import MemoryReviewUseCases
from tow_core.use_cases.records import RecordUseCases
from tow_http.memory.shapes import DiffIn, diff_out, operation_in
from tow_http.records.shapes import RecordIn, RecordPageOut, SearchPageOut, hit_out, record_out, summary_out

# The checked credential of the request being served, asking to read (set by the door, read by every tool).
REQUEST_CREDENTIAL: ContextVar[TokenCredential | ProviderTokenCredential] = ContextVar("tow_mcp_request_credential")
T = TypeVar("T")

OrgId = Annotated[int, Field(ge=1, description="the organisation's id (GET /api/me lists yours)")]
DisplayIdArg = Annotated[str, Field(description="a record's display ID, e.g. DOC-7 or APP-42")]
Limit = Annotated[int, Field(ge=1, le=200, description="page size (1–200)")]
Types = Annotated[list[str] | None, Field(description="record types to keep: memory, doc, ticket, decision, risk, "
                                                      "snapshot")]
Scope = Annotated[dict[str, Any], Field(description='where it lives, as in the API: {"kind": "organisation"}, '
                                                    '{"kind": "project", "id": 3}, {"kind": "group", "id": 2} or '
                                                    '{"kind": "user", "id": <your user id>} (private)')]

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)


def _credential(*, writes: bool) -> TokenCredential | ProviderTokenCredential:
    credential = REQUEST_CREDENTIAL.get(None)
    if credential is None:  # the door always sets it; a tool reached some other way acts as nobody
        raise ToolError("not_authenticated: send a personal access token")
    return replace(credential, writes=writes)


async def _call(work: Callable[[], T]) -> T:
    """Runs the use case call on a worker thread (it opens its own unit of work); TOW's errors become tool errors
    a model can read."""
    try:
        return await to_thread.run_sync(work)
    except NotAuthenticated as exc:
        raise ToolError(f"{exc.code}: {exc.message}") from None
    except TowError as exc:
        where = f" (field `{exc.field}`)" if exc.field else ""
        raise ToolError(f"{exc.code}: {exc.message}{where}") from None


def _decode(value: object, shape: type[T]) -> T:
    """The API's request shapes decode tool arguments too: the same input is refused the same way."""
    try:
        return msgspec.convert(value, shape)
    except msgspec.ValidationError as exc:
        raise ToolError(f"invalid_input: {exc}") from None


def _display_id(text: str) -> DisplayId:
    try:
        return DisplayId.parse(text)
    except (InvalidInput, ValueError) as exc:
        raise ToolError(f"invalid_input: {text!r} is not a display ID such as DOC-7") from exc


def _types(names: list[str] | None) -> list[RecordType] | None:
    if names is None:
        return None
    try:
        return [RecordType(n) for n in names]
    except ValueError:
        raise ToolError(f"invalid_input: types must be among {', '.join(t.value for t in RecordType)}") from None


def _builtins(shape: object) -> dict[str, Any]:
    return msgspec.to_builtins(shape)


def _new_server(**options: Any) -> MCPServer:
    """``MCPServer(...)`` calls ``logging.basicConfig``; TOW's logging is the CLI's to set up (as with Litestar's,
    ``tow_http.app``), so the root logger is given a handler for that moment and the call changes nothing."""
    root, guard = logging.getLogger(), logging.NullHandler()
    root.addHandler(guard)
    try:
        return MCPServer(**options)
    finally:
        root.removeHandler(guard)


def build_mcp_server(records: RecordUseCases, memory: MemoryReviewUseCases) -> MCPServer:
    server = _new_server(
        name="tow", title="TOW", version="0.1.0",
        instructions="TOW is a company workspace of records (memory, docs, tickets, decisions, risks, snapshots) "
                     "in organisations and projects. You act as the person whose access token you hold and see "
                     "exactly what they may read. Search or list first, then get records by display ID. Changes "
                     "to memory are proposals (memory diffs) that a person reviews.",
        warn_on_duplicate_tools=True,
    )

    @server.tool(annotations=READ, description="Search the records you can read (keyword, semantic or hybrid; the "
                 "permission filter runs inside the same query as the ranking). Same rules as GET "
                 "/api/organisations/{org}/search.")
    async def search(organisation_id: OrgId, query: Annotated[str, Field(min_length=1, max_length=500)],
                     mode: Literal["keyword", "semantic", "hybrid"] | None = None, types: Types = None,
                     project: Annotated[str | None, Field(description="a project key, e.g. APP")] = None,
                     cursor: str | None = None, limit: Limit = 10) -> dict[str, Any]:
        chosen = None if mode is None else SearchMode(mode)
        credential = _credential(writes=False)
        result = await _call(lambda: records.search(credential, organisation_id, query, types=_types(types),
                                                    project=project, mode=chosen, cursor=cursor, limit=limit))
        return _builtins(SearchPageOut(result.mode.value, [hit_out(h) for h in result.hits], result.next_cursor,
                                       result.fallback_reason.value if result.fallback_reason else None))

    @server.tool(annotations=READ, description="One record by display ID, with its body and fields; not_found when "
                 "it does not exist or you cannot read it.")
    async def get_record(organisation_id: OrgId, display_id: DisplayIdArg) -> dict[str, Any]:
        credential, wanted = _credential(writes=False), _display_id(display_id)
        return _builtins(record_out(await _call(lambda: records.get(credential, organisation_id, wanted))))

    @server.tool(annotations=READ, description="The records you can read, newest change first, with cursor "
                 "pagination (pass next_cursor back as cursor).")
    async def list_records(organisation_id: OrgId, types: Types = None,
                           statuses: Annotated[list[str] | None, Field(description="e.g. active, open")] = None,
                           project: Annotated[str | None, Field(description="a project key, e.g. APP")] = None,
                           cursor: str | None = None, limit: Limit = 20) -> dict[str, Any]:
        credential = _credential(writes=False)
        page = await _call(lambda: records.list_records(credential, organisation_id, types=_types(types),
                                                        statuses=statuses, project=project, cursor=cursor,
                                                        limit=limit))
        return _builtins(RecordPageOut([record_out(r) for r in page.items], page.next_cursor))

    @server.tool(annotations=READ, description="The records citing this one (only those you can read).")
    async def backlinks(organisation_id: OrgId, display_id: DisplayIdArg) -> dict[str, Any]:
        credential, wanted = _credential(writes=False), _display_id(display_id)
        found = await _call(lambda: records.backlinks(credential, organisation_id, wanted))
        return {"items": [_builtins(summary_out(s)) for s in found]}

    @server.tool(annotations=WRITE, description="Propose a memory diff: a pending change to memory that people "
                 "with write access to its scope review (nothing in memory changes until approved). Operations "
                 'as in POST /api/organisations/{org}/memory-diffs, e.g. {"op": "create", "title": "...", '
                 '"body": "...", "fields": {"memory_type": "fact"}} or {"op": "update", "item": "MEM-3", '
                 '"base_version": 2, "body": "..."}. Needs a read_write token.')
    async def propose_memory_diff(organisation_id: OrgId, scope: Scope,
                                  operations: Annotated[list[dict[str, Any]], Field(min_length=1)],
                                  rationale: Annotated[str, Field(max_length=2000)] = "") -> dict[str, Any]:
        data = _decode({"scope": scope, "operations": operations, "rationale": rationale, "source": "manual"},
                       DiffIn)
        credential = _credential(writes=True)
        shown = await _call(lambda: memory.propose(credential, organisation_id, data.scope.kind, data.scope.id,
                                                   [operation_in(o) for o in data.operations],
                                                   rationale=data.rationale))
        return _builtins(diff_out(shown))

    @server.tool(annotations=WRITE, description="Create a ticket you may write in that scope, as POST "
                 '/api/organisations/{org}/records with "type": "ticket". Needs a read_write token.')
    async def create_ticket(organisation_id: OrgId, title: Annotated[str, Field(min_length=1, max_length=300)],
                            scope: Scope, body: str = "",
                            fields: Annotated[dict[str, Any] | None, Field(
                                description="ticket fields, e.g. {\"priority\": \"high\"}")] = None
                            ) -> dict[str, Any]:
        data = _decode({"type": "ticket", "scope": scope, "title": title, "body": body, "fields": fields or {}},
                       RecordIn)
        credential = _credential(writes=True)
        created = await _call(lambda: records.create(credential, organisation_id, record_type=data.type,
                                                     scope=(data.scope.kind, data.scope.id), title=data.title,
                                                     body=data.body, fields=data.fields))
        return _builtins(record_out(created))

    return server
