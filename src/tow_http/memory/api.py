"""Memory diffs over HTTP: propose, list, read, approve and reject reviewed changes to memory (SPEC §4)."""

from __future__ import annotations

from litestar import Router, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from tow_core.records import DisplayId
from tow_core.unit_of_work import Credential
from tow_core.use_cases.memory import MemoryReviewUseCases
from tow_http.memory.shapes import (
    RULES,
    DiffIn,
    DiffOut,
    DiffPageOut,
    ReviewIn,
    Statuses,
    diff_out,
    operation_in,
    summary_out,
)
from tow_http.shapes import Cursor, Limit

# --- routes ------------------------------------------------------------------------------------------

BASE = "/organisations/{org_id:int}/memory-diffs"


@post(BASE, summary="Propose a memory diff", description=RULES, status_code=HTTP_201_CREATED, sync_to_thread=True)
def propose_diff(org_id: int, data: JSONBody[DiffIn], caller: NamedDependency[Credential],
                 memory: NamedDependency[MemoryReviewUseCases]) -> DiffOut:
    operations = [operation_in(o) for o in data.operations]
    source_id = None if data.source_id is None else DisplayId.parse(data.source_id)
    return diff_out(memory.propose(caller, org_id, data.scope.kind, data.scope.id, operations, source=data.source,
                                   source_id=source_id, rationale=data.rationale))


@get(
    BASE,
    summary="List memory diffs you can read",
    description="The review queue: pending first, then newest first, filtered by `status` (repeat for several), "
    "with cursor pagination. Only diffs whose scope you can read are returned or counted.",
    sync_to_thread=True,
)
def list_diffs(
    org_id: int, caller: NamedDependency[Credential], memory: NamedDependency[MemoryReviewUseCases],
    statuses: Statuses = None, cursor: Cursor = None, limit: Limit = 50,
) -> DiffPageOut:
    page = memory.list_diffs(caller, org_id, frozenset(statuses or ()), cursor=cursor, limit=limit)
    return DiffPageOut([summary_out(d) for d in page.items], page.next_cursor)


@get(f"{BASE}/{{diff_id:int}}", summary="A memory diff with before/after", description=RULES, sync_to_thread=True)
def get_diff(org_id: int, diff_id: int, caller: NamedDependency[Credential],
             memory: NamedDependency[MemoryReviewUseCases]) -> DiffOut:
    return diff_out(memory.get(caller, org_id, diff_id))


@post(
    f"{BASE}/{{diff_id:int}}/approve",
    summary="Approve a pending memory diff",
    description=RULES,
    status_code=HTTP_200_OK,
    sync_to_thread=True,
)
def approve_diff(
    org_id: int, diff_id: int, caller: NamedDependency[Credential],
    memory: NamedDependency[MemoryReviewUseCases], data: JSONBody[ReviewIn | None] = None,
) -> DiffOut:
    note = data.note if data is not None else ""
    return diff_out(memory.approve(caller, org_id, diff_id, note=note))


@post(
    f"{BASE}/{{diff_id:int}}/reject",
    summary="Reject a pending memory diff",
    description="Nothing in memory changes; the reviewer, time and optional `note` are recorded. Same access "
    "rules as approval.\n" + RULES,
    status_code=HTTP_200_OK,
    sync_to_thread=True,
)
def reject_diff(
    org_id: int, diff_id: int, caller: NamedDependency[Credential],
    memory: NamedDependency[MemoryReviewUseCases], data: JSONBody[ReviewIn | None] = None,
) -> DiffOut:
    note = data.note if data is not None else ""
    return diff_out(memory.reject(caller, org_id, diff_id, note=note))


memory_diffs_router = Router(
    path="/api",
    route_handlers=[propose_diff, list_diffs, get_diff, approve_diff, reject_diff],
    tags=["memory diffs"],
)
