"""Memory diffs over HTTP: propose, list, read, approve and reject reviewed changes to memory (SPEC §4)."""

from __future__ import annotations

from litestar import Router, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from tow_core import knowledge, memory_review
from tow_core.records import DisplayId
from tow_http.context import SignedIn, in_unit_of_work
from tow_http.memory.shapes import (
    RULES,
    DiffIn,
    DiffOut,
    DiffPageOut,
    ReviewIn,
    Statuses,
    desk,
    diff_out,
    operation_in,
    summary_out,
)
from tow_http.shapes import Cursor, Limit

# --- routes ------------------------------------------------------------------------------------------

BASE = "/organisations/{org_id:int}/memory-diffs"


@post(BASE, summary="Propose a memory diff", description=RULES, status_code=HTTP_201_CREATED, sync_to_thread=True)
@in_unit_of_work
def propose_diff(org_id: int, data: JSONBody[DiffIn], signed_in: NamedDependency[SignedIn]) -> DiffOut:
    d = desk(signed_in, org_id)
    scope, project = knowledge.resolve_scope(d.ws, data.scope.kind, data.scope.id)
    view = memory_review.propose_diff(
        d, scope=scope, project=project, operations=[operation_in(o) for o in data.operations],
        source=data.source, source_id=None if data.source_id is None else DisplayId.parse(data.source_id),
        rationale=data.rationale,
    )
    return diff_out(view)


@get(
    BASE,
    summary="List memory diffs you can read",
    description="The review queue: pending first, then newest first, filtered by `status` (repeat for several), "
    "with cursor pagination. Only diffs whose scope you can read are returned or counted.",
    sync_to_thread=True,
)
@in_unit_of_work
def list_diffs(
    org_id: int, signed_in: NamedDependency[SignedIn], statuses: Statuses = None, cursor: Cursor = None,
    limit: Limit = 50,
) -> DiffPageOut:
    page = memory_review.list_diffs(desk(signed_in, org_id), frozenset(statuses or ()), cursor=cursor, limit=limit)
    return DiffPageOut([summary_out(d) for d in page.items], page.next_cursor)


@get(f"{BASE}/{{diff_id:int}}", summary="A memory diff with before/after", description=RULES, sync_to_thread=True)
@in_unit_of_work
def get_diff(org_id: int, diff_id: int, signed_in: NamedDependency[SignedIn]) -> DiffOut:
    return diff_out(memory_review.get_diff(desk(signed_in, org_id), diff_id))


@post(
    f"{BASE}/{{diff_id:int}}/approve",
    summary="Approve a pending memory diff",
    description=RULES,
    status_code=HTTP_200_OK,
    sync_to_thread=True,
)
@in_unit_of_work
def approve_diff(
    org_id: int, diff_id: int, signed_in: NamedDependency[SignedIn], data: JSONBody[ReviewIn | None] = None
) -> DiffOut:
    note = data.note if data is not None else ""
    return diff_out(memory_review.approve_diff(desk(signed_in, org_id), diff_id, now=signed_in.now, note=note))


@post(
    f"{BASE}/{{diff_id:int}}/reject",
    summary="Reject a pending memory diff",
    description="Nothing in memory changes; the reviewer, time and optional `note` are recorded. Same access "
    "rules as approval.\n" + RULES,
    status_code=HTTP_200_OK,
    sync_to_thread=True,
)
@in_unit_of_work
def reject_diff(
    org_id: int, diff_id: int, signed_in: NamedDependency[SignedIn], data: JSONBody[ReviewIn | None] = None
) -> DiffOut:
    note = data.note if data is not None else ""
    return diff_out(memory_review.reject_diff(desk(signed_in, org_id), diff_id, now=signed_in.now, note=note))


memory_diffs_router = Router(
    path="/api",
    route_handlers=[propose_diff, list_diffs, get_diff, approve_diff, reject_diff],
    tags=["memory diffs"],
)
