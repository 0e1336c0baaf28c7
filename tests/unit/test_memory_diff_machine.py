"""Memory diffs as a state machine over in-memory fakes: people propose diffs, edit items directly
(making proposals stale), approve and reject; the review rules and lifecycle invariants hold throughout.

The world: Ada owns Acme; Bob is a member; Vic is a member with a *viewer* grant on the restricted
project SEC (Bob has no grant). Items live in the organisation scope, in SEC, and in Bob's private scope.
Expected outcomes of approve/reject are predicted from the pure access policy and the items' versions,
and compared with what the use cases do. The fakes have no rollback, so "nothing changes on refusal"
is checked literally.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.fake_records import InMemoryMemoryDiffStore, InMemoryRecordStore
from tests.fakes import InMemoryDirectory
from tow_core import knowledge
from tow_core.access import OrgRole, ProjectRole, Scope, ScopeKind, Visibility, can_read_scope, can_write_scope
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound, TowError
from tow_core.identity import Project, ProjectStatus, WorkflowMode
from tow_core.knowledge import RecordChange, Workspace
from tow_core.memory_diffs import (
    ArchiveItems,
    CreateItem,
    DiffSource,
    DiffStatus,
    ItemRef,
    OutcomeResult,
    SupersedeItems,
    UpdateItem,
    stale_reason,
)
from tow_core.memory_review import (
    MemoryDesk,
    approve_diff,
    list_diffs,
    propose_diff,
    reject_diff,
)
from tow_core.records import RecordType

USERS = ("ada", "bob", "vic")
SCOPES = ("org", "sec", "bob")


class MemoryDiffMachine(RuleBasedStateMachine):
    @initialize()
    def world(self) -> None:
        self.ticks = itertools.count()
        clock = self.clock
        d = self.directory = InMemoryDirectory()
        self.ids = {name: d.add_user(f"{name}@example.com", name.title(), None, server_admin=False).id
                    for name in USERS}
        self.org = d.add_organisation("Acme", WorkflowMode.ORGANIZATION).id
        for name, role in (("ada", OrgRole.OWNER), ("bob", OrgRole.MEMBER), ("vic", OrgRole.MEMBER)):
            d.set_membership(self.org, self.ids[name], role)
        sec = d.add_project(Project(0, self.org, "SEC", "Sec", "", None, Visibility.RESTRICTED, ProjectStatus.ACTIVE))
        d.put_grant(sec.id, user_id=self.ids["vic"], group_id=None, role=ProjectRole.VIEWER)
        self.scopes = {"org": Scope.organisation(self.org), "sec": Scope.project(self.org, sec.id),
                       "bob": Scope.private(self.org, self.ids["bob"])}
        self.records = InMemoryRecordStore(d, clock)
        self.diffs = InMemoryMemoryDiffStore(d, clock)
        self.versions: dict[int, int] = {}
        self.decided: dict[int, object] = {}
        for scope in SCOPES:
            self.create_item(scope)

    def clock(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=next(self.ticks))

    def desk(self, user: str) -> MemoryDesk:
        principal = self.directory.principal(self.ids[user])
        return MemoryDesk(Workspace(self.records, self.directory, principal, self.org), self.diffs)

    def can(self, user: str, scope: Scope, *, write: bool) -> bool:
        principal = self.directory.principal(self.ids[user])
        return (can_write_scope if write else can_read_scope)(principal, scope, knowledge.project_access_of(
            self.desk(user).ws, scope))

    def owner_of(self, scope: Scope) -> str:
        return "bob" if scope.kind is ScopeKind.USER else "ada"

    # --- rules ------------------------------------------------------------------------------------

    @rule(scope=st.sampled_from(SCOPES))
    def create_item(self, scope: str) -> None:
        s = self.scopes[scope]
        knowledge.create_record(self.desk(self.owner_of(s)).ws, record_type=RecordType.MEMORY, scope=s,
                                project=knowledge.project_access_of(self.desk("ada").ws, s),
                                title=f"fact {len(self.records.rows)}", fields={"memory_type": "fact"})

    @rule(data=st.data())
    def edit_item_directly(self, data) -> None:
        """A direct edit: what makes a pending proposal stale."""
        items = sorted(self.records.rows.values(), key=lambda r: r.id)
        proposed = {i for d in self.diffs.rows.values() if d.status is DiffStatus.PENDING for i in d.changed_ids}
        targeted = [r for r in items if r.display_id in proposed]
        item = data.draw(st.sampled_from(targeted if targeted and data.draw(st.integers(0, 3)) else items))
        change = {"active": data.draw(st.sampled_from([RecordChange(title=f"{item.title}!"),
                                                       RecordChange(status="archived")])),
                  "archived": RecordChange(status="active"),
                  "superseded": RecordChange(body="history note")}[item.status]
        knowledge.update_record(self.desk(self.owner_of(item.scope)).ws, item.display_id,
                                expected_version=item.version, change=change)

    @rule(data=st.data())
    def edit_what_a_pending_diff_targets_then_approve(self, data) -> None:
        """Direct edits to some (or none, or all) items a pending diff changes, then its approval by the
        owner: reaches the approved / partially applied / all-stale outcomes far more often than chance."""
        pending = sorted(i for i, d in self.diffs.rows.items() if d.status is DiffStatus.PENDING)
        if not pending:
            return
        diff_id = data.draw(st.sampled_from(pending))
        by_display_id = {r.display_id: r for r in self.records.rows.values()}
        for display_id in data.draw(st.lists(st.sampled_from(self.diffs.rows[diff_id].changed_ids or (None,)),
                                             unique=True)):
            item = by_display_id.get(display_id)
            if item is not None:
                change = RecordChange(status="active") if item.status == "archived" else RecordChange(body="edited")
                knowledge.update_record(self.desk(self.owner_of(item.scope)).ws, display_id,
                                        expected_version=item.version, change=change)
        self.approve_one(diff_id, "ada")

    @rule(data=st.data(), user=st.sampled_from(("ada", "ada", "bob", "vic")), scope=st.sampled_from(("org", "sec")))
    def propose(self, data, user: str, scope: str) -> None:
        operations = self.draw_operations(data, user)
        before = dict(self.records.rows), dict(self.diffs.rows)
        try:
            view = propose_diff(self.desk(user), scope=self.scopes[scope], operations=operations,
                                project=knowledge.project_access_of(self.desk(user).ws, self.scopes[scope]),
                                source=DiffSource.CHAT, rationale="because")
        except (NotFound, AccessDenied, Conflict, InvalidInput):
            assert (self.records.rows, self.diffs.rows) == before
            return
        diff = view.diff
        assert diff.status is DiffStatus.PENDING and diff.author_id == self.ids[user] and not diff.outcomes
        assert self.can(user, diff.scope, write=True)
        for op in diff.operations:  # based on what the proposer could read, as it was
            assert stale_reason(op, view.readable_items) is None
        assert self.records.rows == before[0]

    def draw_operations(self, data, user: str) -> list:
        """Mostly sensible proposals (readable, active, current items), sometimes not."""
        items = sorted(self.records.rows.values(), key=lambda r: r.id)
        if data.draw(st.integers(0, 9)):
            items = [r for r in items if r.status == "active" and self.can(user, r.scope, write=False)]
        operations, named = [], set()
        for index in range(data.draw(st.integers(1, 4))):
            kind = data.draw(st.sampled_from(("create", "update", "supersede", "archive")))
            free = [r for r in items if r.display_id not in named]
            if kind == "create" or not free:
                operations.append(CreateItem(f"new {index}", fields={"memory_type": "decision"}))
                continue
            target = data.draw(st.sampled_from(free))
            named.add(target.display_id)
            version = target.version if data.draw(st.integers(0, 9)) else max(1, target.version - 1)
            ref = ItemRef(target.display_id, version)
            if kind == "update":
                operations.append(UpdateItem(ref, title=f"{target.title} (revised)", fields={"importance": 4}))
            elif kind == "archive":
                operations.append(ArchiveItems((ref,)))
            else:
                creates = [i for i, op in enumerate(operations) if isinstance(op, CreateItem)]
                others = [r for r in items if r.display_id not in named]
                if creates and (not others or data.draw(st.booleans())):
                    by = data.draw(st.sampled_from(creates))
                elif others:
                    by = data.draw(st.sampled_from(others)).display_id
                    named.add(by)
                else:
                    by = target.display_id  # refused: an item cannot replace itself
                operations.append(SupersedeItems((ref,), by))
        return operations

    def pick_diff(self, data):
        """Mostly a pending diff: deciding one twice is checked, but is not the interesting case."""
        pending = sorted(i for i, d in self.diffs.rows.items() if d.status is DiffStatus.PENDING)
        candidates = pending if pending and data.draw(st.integers(0, 4)) else sorted(self.diffs.rows)
        return data.draw(st.sampled_from(candidates)) if candidates else None

    def expected_refusal(self, user: str, diff_id: int) -> type[TowError] | None:
        """What a review must be refused with, predicted from the pure policy (order as the rules say)."""
        diff = self.diffs.rows[diff_id]
        if not self.can(user, diff.scope, write=False):
            return NotFound
        if not self.can(user, diff.scope, write=True):
            return AccessDenied
        if diff.status is not DiffStatus.PENDING:
            return Conflict
        items = self.current(diff)
        if any(not self.can(user, item.scope, write=False) for item in items.values()):
            return NotFound
        if any(not self.can(user, items[i].scope, write=True) for i in diff.changed_ids):
            return AccessDenied
        return None

    def current(self, diff):
        by_display_id = {r.display_id: r for r in self.records.rows.values()}
        return {i: by_display_id[i] for i in diff.referenced_ids}

    @rule(data=st.data(), user=st.sampled_from(("ada", "ada", "bob", "vic")))
    def approve(self, data, user: str) -> None:
        diff_id = self.pick_diff(data)
        if diff_id is not None:
            self.approve_one(diff_id, user)

    def approve_one(self, diff_id: int, user: str) -> None:
        diff = self.diffs.rows[diff_id]
        refusal = self.expected_refusal(user, diff_id)
        items = self.current(diff)
        stale = {i: stale_reason(op, items) for i, op in enumerate(diff.operations) if not isinstance(op, CreateItem)}
        if refusal is None and len(stale) == len(diff.operations) and all(stale.values()):
            refusal = Conflict
        before = dict(self.records.rows), dict(self.diffs.rows)
        try:
            decided = approve_diff(self.desk(user), diff_id, now=self.clock()).diff
        except TowError as error:
            assert type(error) is refusal, (error, refusal)
            assert (self.records.rows, self.diffs.rows) == before  # nothing changes
            return
        assert refusal is None
        assert decided.reviewer_id == self.ids[user] and decided.decided_at is not None
        assert decided.status is (DiffStatus.PARTIALLY_APPLIED if any(stale.values()) else DiffStatus.APPROVED)
        for outcome in decided.outcomes:
            op = diff.operations[outcome.index]
            expected = OutcomeResult.STALE if stale.get(outcome.index) else OutcomeResult.APPLIED
            assert outcome.result is expected
            for ref in op.targets:
                was = items[ref.display_id]
                now = self.records.rows[was.id]
                assert now.version == was.version + 1 if expected is OutcomeResult.APPLIED else now == was
            if isinstance(op, SupersedeItems) and expected is OutcomeResult.APPLIED:
                assert all(self.records.rows[items[r.display_id].id].status == "superseded" for r in op.targets)
            if isinstance(op, CreateItem):
                created = next(r for r in self.records.rows.values() if r.display_id == outcome.display_ids[0])
                assert created.status == "active" and created.scope == diff.scope
                assert created.id not in before[0]

    @rule(data=st.data(), user=st.sampled_from(USERS))
    def reject(self, data, user: str) -> None:
        diff_id = self.pick_diff(data)
        if diff_id is None:
            return
        refusal = self.expected_refusal(user, diff_id)
        before = dict(self.records.rows), dict(self.diffs.rows)
        try:
            decided = reject_diff(self.desk(user), diff_id, now=self.clock(), note="no").diff
        except TowError as error:
            assert type(error) is refusal, (error, refusal)
            assert (self.records.rows, self.diffs.rows) == before
            return
        assert refusal is None
        assert decided.status is DiffStatus.REJECTED and decided.reviewer_id == self.ids[user]
        assert self.records.rows == before[0]  # a rejected diff changes no item

    # --- invariants -------------------------------------------------------------------------------

    @invariant()
    def decided_diffs_never_change_again(self) -> None:
        for diff_id, diff in self.diffs.rows.items():
            if diff_id in self.decided:
                assert diff == self.decided[diff_id]
            elif diff.status is not DiffStatus.PENDING:
                self.decided[diff_id] = diff

    @invariant()
    def statuses_match_outcomes(self) -> None:
        for diff in self.diffs.rows.values():
            results = [o.result for o in diff.outcomes]
            applied, stale = results.count(OutcomeResult.APPLIED), results.count(OutcomeResult.STALE)
            if diff.status is DiffStatus.APPROVED:
                assert applied == len(diff.operations) and stale == 0
            elif diff.status is DiffStatus.PARTIALLY_APPLIED:
                assert applied >= 1 and stale >= 1 and applied + stale == len(diff.operations)
            else:
                assert not results
            assert (diff.status is DiffStatus.PENDING) == (diff.decided_at is None)

    @invariant()
    def versions_only_move_forward_and_nothing_is_deleted(self) -> None:
        rows = self.records.rows
        assert set(self.versions) <= set(rows)
        assert all(rows[i].version >= v for i, v in self.versions.items())
        self.versions = {i: r.version for i, r in rows.items()}

    @invariant()
    def superseded_items_name_an_existing_replacement(self) -> None:
        display_ids = {str(r.display_id) for r in self.records.rows.values()}
        for item in self.records.rows.values():
            if item.status == "superseded" and item.fields.get("superseded_by"):
                assert item.fields["superseded_by"] in display_ids

    @invariant()
    def each_reader_lists_exactly_the_diffs_it_can_read(self) -> None:
        for user in USERS:
            listed = list_diffs(self.desk(user), limit=200).items
            assert {d.id for d in listed} == {d.id for d in self.diffs.rows.values()
                                               if self.can(user, d.scope, write=False)}
            pending = [d.status is DiffStatus.PENDING for d in listed]
            assert pending == sorted(pending, reverse=True)  # pending first


MemoryDiffMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow],
)
test_memory_diffs = MemoryDiffMachine.TestCase
