"""Memory diff review (SPEC §4): propose, list, read, approve and reject, as the API and the pages call them.
The rules are in ``tow_core.memory_review`` and ``tow_core.memory_diffs``; every diff returned is already
what its reader may see (``memory_review.shown``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tow_core import administration, knowledge, memory_review
from tow_core.live import LiveEvent
from tow_core.memory_diffs import DiffSource, DiffStatus, Operation
from tow_core.memory_review import DiffSummary, MemoryDesk, ShownDiff
from tow_core.records import DisplayId, Page
from tow_core.unit_of_work import Acting, Credential, Transactions
from tow_core.use_cases.frame import Framed, frame_of


@dataclass(frozen=True)
class DiffList:
    """The review queue page: one page of diffs and the cursor of the next."""

    diffs: list[DiffSummary]
    next_cursor: str | None


@dataclass(frozen=True)
class DiffPage:
    """One diff, with the names of the organisation's members (author and reviewer). ``needs_second_reviewer``:
    the caller proposed it and the organisation requires someone else to approve it."""

    diff: ShownDiff
    people: Mapping[int, str]
    needs_second_reviewer: bool = False


def _desk(acting: Acting, org_id: int) -> MemoryDesk:
    return MemoryDesk(acting.workspace(org_id), acting.stores.memory_diffs, acting.notifications())


def _reviewers_told(acting: Acting, diff: ShownDiff) -> ShownDiff:
    """A diff proposed or decided moves the inbox count of its scope's reviewers (``tow_core.live``)."""
    acting.stores.live.publish(LiveEvent.reviews_changed(diff.summary.scope))
    return diff


@dataclass(frozen=True)
class MemoryReviewUseCases:
    transactions: Transactions

    def propose(self, credential: Credential, org_id: int, scope_kind: str, scope_id: int | None,
                operations: Sequence[Operation], *, source: DiffSource = DiffSource.MANUAL,
                source_id: DisplayId | None = None, rationale: str = "", own_private_scope: bool = False
                ) -> ShownDiff:
        """A pending diff in the scope ``(scope_kind, scope_id)``. With ``own_private_scope`` a ``user`` scope
        without an id is the caller's own (the pages' "Private — only you")."""
        with self.transactions.acting_as(credential) as acting:
            if own_private_scope and scope_kind == "user" and scope_id is None:
                scope_id = acting.principal.user_id
            desk = _desk(acting, org_id)
            scope, project = knowledge.resolve_scope(desk.ws, scope_kind, scope_id)
            shown = memory_review.shown(memory_review.propose_diff(
                desk, scope=scope, project=project, operations=operations, source=source, source_id=source_id,
                rationale=rationale))
            return _reviewers_told(acting, shown)

    def list_diffs(self, credential: Credential, org_id: int, statuses: frozenset[DiffStatus] = frozenset(), *,
             cursor: str | None = None, limit: int = 50) -> Page[DiffSummary]:
        with self.transactions.acting_as(credential) as acting:
            found = memory_review.list_diffs(_desk(acting, org_id), statuses, cursor=cursor, limit=limit)
            return Page(tuple(DiffSummary.of(d) for d in found.items), found.next_cursor)

    def get(self, credential: Credential, org_id: int, diff_id: int) -> ShownDiff:
        with self.transactions.acting_as(credential) as acting:
            return memory_review.shown(memory_review.get_diff(_desk(acting, org_id), diff_id))

    def approve(self, credential: Credential, org_id: int, diff_id: int, *, note: str = "") -> ShownDiff:
        with self.transactions.acting_as(credential) as acting:
            return _reviewers_told(acting, memory_review.shown(memory_review.approve_diff(
                _desk(acting, org_id), diff_id, now=acting.now, note=note)))

    def reject(self, credential: Credential, org_id: int, diff_id: int, *, note: str = "") -> ShownDiff:
        with self.transactions.acting_as(credential) as acting:
            return _reviewers_told(acting, memory_review.shown(memory_review.reject_diff(
                _desk(acting, org_id), diff_id, now=acting.now, note=note)))

    # --- pages -------------------------------------------------------------------------------------

    def list_page(self, credential: Credential, org_id: int, project_key: str | None,
                  statuses: frozenset[DiffStatus], *, cursor: str | None, limit: int = 50) -> Framed[DiffList]:
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            found = memory_review.list_diffs(_desk(acting, org_id), statuses, cursor=cursor, limit=limit)
            return Framed(frame, DiffList([DiffSummary.of(d) for d in found.items], found.next_cursor))

    def diff_page(self, credential: Credential, org_id: int, project_key: str | None,
                  diff_id: int) -> Framed[DiffPage]:
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            desk = _desk(acting, org_id)
            diff = memory_review.shown(memory_review.get_diff(desk, diff_id))
            members = administration.list_members(acting.stores.directory, acting.principal, org_id=org_id)
            return Framed(frame, DiffPage(diff, {m.user_id: m.display_name for m in members},
                                          memory_review.needs_second_reviewer(desk.ws, diff.summary.author_id)))
