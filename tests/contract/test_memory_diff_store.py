"""The ``MemoryDiffStore`` port's behaviour, against its in-memory fake (``InMemoryMemoryDiffStore``) and
``PgMemoryDiffStore`` on a real PostgreSQL: diffs stored and read back whole, read only by readers of
their scope (SPEC §2), decided once (SPEC §4: pending → approved / rejected / partially_applied), and
listed pending first in keyset pages.

The world is built through the ``Directory`` port. On PostgreSQL each test runs in one transaction that
is rolled back (so every diff of a test has the same ``created_at``: order falls back to the id).
"""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.fake_records import InMemoryMemoryDiffStore
from tests.fakes import InMemoryDirectory
from tow_adapters.postgres.agent_runs import PgAgentRuns
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.memory_diffs import PgMemoryDiffStore
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_core.access import OrgRole, ProjectRole, Scope, Visibility
from tow_core.agent_runs import new_run
from tow_core.errors import Conflict, InvalidInput
from tow_core.identity import Project, ProjectStatus, WorkflowMode
from tow_core.memory_diffs import (
    ArchiveItems,
    CreateItem,
    DiffSource,
    DiffStatus,
    ItemRef,
    NewMemoryDiff,
    OperationOutcome,
    OutcomeResult,
    SupersedeItems,
    UpdateItem,
)
from tow_core.records import DisplayId

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MISSING = 10**12


def mem(number: int) -> DisplayId:
    return DisplayId("MEM", number)


# Every kind of operation, with values that survive the adapter's JSON (lists, not tuples, in fields).
OPERATIONS = (
    CreateItem("Ship weekly", "We ship on Fridays.", {"memory_type": "commitment", "tags": ["release"]}),
    UpdateItem(ItemRef(mem(3), 2), title="Ship fortnightly", fields={"importance": 4}),
    UpdateItem(ItemRef(mem(4), 1), body=""),
    SupersedeItems((ItemRef(mem(1), 1), ItemRef(mem(2), 3)), 0),
    SupersedeItems((ItemRef(mem(5), 1),), mem(6)),
    ArchiveItems((ItemRef(mem(7), 5),)),
)


@pytest.fixture(scope="module")
def diffs_engine(embedded_postgres):
    embedded_postgres.ensure_database("memory_diff_contract")
    engine = create_engine(embedded_postgres.url("memory_diff_contract"), PoolOptions(pool_size=2, max_overflow=1))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()


class Org:
    """An organisation with an admin, alice (granted the restricted project APP), bob (not) and an outsider."""

    def __init__(self, directory, diffs, runs=None) -> None:
        self.directory, self.diffs, self.runs = directory, diffs, runs
        self.id = self.organisation("acme")
        self.admin, self.alice, self.bob, self.outsider = (self.user(name) for name in ("admin", "alice", "bob", "out"))
        for user, role in ((self.admin, OrgRole.ADMIN), (self.alice, OrgRole.MEMBER), (self.bob, OrgRole.MEMBER)):
            directory.set_membership(self.id, user, role)
        self.app = directory.add_project(Project(0, self.id, "APP", "App", "", None, Visibility.RESTRICTED,
                                                 ProjectStatus.ACTIVE)).id
        directory.put_grant(self.app, user_id=self.alice, group_id=None, role=ProjectRole.VIEWER)

    def organisation(self, name: str) -> int:
        return self.directory.add_organisation(name, WorkflowMode.ORGANIZATION).id

    def user(self, name: str) -> int:
        return self.directory.add_user(f"{name}-{time.monotonic_ns()}@example.com", name, None,
                                       server_admin=False).id

    def new(self, *, scope: Scope | None = None, operations=OPERATIONS, rationale: str = "from the weekly doc",
            author: int | None = None) -> NewMemoryDiff:
        return NewMemoryDiff(self.id, scope or Scope.organisation(self.id), DiffSource.DOC, DisplayId("DOC", 7),
                             rationale, author or self.alice, tuple(operations))

    def propose(self, **kw):
        return self.diffs.add(self.new(**kw))

    def agent_run(self, *, owner: int) -> int:
        """An agent run's id: one stored in PostgreSQL (the diff's agent_run_id references it); any in the fake."""
        if self.runs is None:
            return 4242
        return self.runs.create(new_run("memory_extraction", owner_id=owner, organisation_id=self.id,
                                        project_id=None, input={"source": "doc", "record_id": 1}), now=T).id


@pytest.fixture(params=["fake", "postgres"])
def org(request) -> Org:
    if request.param == "fake":
        directory = InMemoryDirectory()
        return Org(directory, InMemoryMemoryDiffStore(directory))
    conn = request.getfixturevalue("diffs_engine").connect()
    transaction = conn.begin()
    request.addfinalizer(conn.close)
    request.addfinalizer(transaction.rollback)
    return Org(PgDirectory(conn), PgMemoryDiffStore(conn), PgAgentRuns(conn))


def ids(page) -> list[int]:
    return [d.id for d in page.items]


# --- writes and reads ----------------------------------------------------------------------------------


def test_a_diff_is_stored_whole_and_read_back_pending(org):
    new = org.new()
    diff = org.diffs.add(new)
    assert (diff.organisation_id, diff.scope, diff.source, diff.source_id, diff.rationale, diff.author_id) == (
        org.id, Scope.organisation(org.id), DiffSource.DOC, DisplayId("DOC", 7), "from the weekly doc", org.alice)
    assert diff.operations == OPERATIONS
    assert diff.status is DiffStatus.PENDING and diff.created_at.tzinfo is not None
    assert (diff.reviewer_id, diff.decided_at, diff.review_note, diff.outcomes) == (None, None, "", ())
    assert org.diffs.readable(org.bob, org.id, diff.id) == diff == org.diffs.for_update(org.id, diff.id)
    manual = org.diffs.add(replace(new, source=DiffSource.MANUAL, source_id=None, author_id=None,
                                   operations=OPERATIONS[:1]))
    assert (manual.source, manual.source_id, manual.author_id) == (DiffSource.MANUAL, None, None)
    assert manual.id > diff.id


def test_a_diff_proposed_by_an_agent_run_names_the_run_wherever_it_is_read(org):
    """A memory extraction's diff: its author is the run's owner, and the run is kept beside it."""
    run_id = org.agent_run(owner=org.alice)
    diff = org.diffs.add(replace(org.new(), agent_run_id=run_id))
    assert diff.agent_run_id == run_id and org.diffs.for_update(org.id, diff.id).agent_run_id == run_id
    assert org.diffs.readable(org.bob, org.id, diff.id).agent_run_id == run_id
    [listed] = org.diffs.list_pending_writable(org.bob, org.id, None, limit=10)
    assert listed.agent_run_id == run_id and org.propose().agent_run_id is None


def test_a_diff_is_read_only_by_readers_of_its_scope_and_locked_whoever_asks(org):
    shared = org.propose()
    in_app = org.propose(scope=Scope.project(org.id, org.app))
    bobs = org.propose(scope=Scope.private(org.id, org.bob), author=org.bob)
    other_org = org.organisation("other")
    assert org.diffs.readable(org.outsider, org.id, shared.id) is None
    assert org.diffs.readable(org.admin, other_org, shared.id) is None and org.diffs.for_update(other_org,
                                                                                                shared.id) is None
    assert org.diffs.readable(org.alice, org.id, in_app.id) == in_app
    assert org.diffs.readable(org.bob, org.id, in_app.id) is None
    assert org.diffs.readable(org.bob, org.id, bobs.id) == bobs
    for reader in (org.admin, org.alice):  # private means private: not even organisation admins
        assert org.diffs.readable(reader, org.id, bobs.id) is None
    assert org.diffs.for_update(org.id, bobs.id) == bobs  # the caller authorises
    assert org.diffs.readable(org.admin, org.id, MISSING) is None and org.diffs.for_update(org.id, MISSING) is None


@pytest.mark.parametrize("bad", ["scope-of-another-organisation", "no-operations", "missing-author"])
def test_add_refuses_what_the_schema_refuses_and_keeps_nothing(org, bad):
    new = {"scope-of-another-organisation": lambda: replace(org.new(), scope=Scope.organisation(org.id + 1)),
           "no-operations": lambda: org.new(operations=()),
           "missing-author": lambda: org.new(author=MISSING)}[bad]()
    with pytest.raises(InvalidInput) as refused:
        org.diffs.add(new)
    if bad == "scope-of-another-organisation":
        assert refused.value.field == "scope"
    assert org.diffs.list_readable(org.admin, org.id, frozenset(), cursor=None, limit=10).items == ()


# --- decisions -----------------------------------------------------------------------------------------


def test_a_diff_is_decided_once(org):
    diff = org.propose()
    outcomes = [OperationOutcome(0, OutcomeResult.APPLIED, None, (mem(8),)),
                OperationOutcome(1, OutcomeResult.STALE, "MEM-3 changed since the proposal", ())]
    decided = diff.decide(reviewer_id=org.admin, at=T, note="most of it", outcomes=outcomes)
    assert decided.status is DiffStatus.PARTIALLY_APPLIED
    assert org.diffs.save_decision(decided) == decided == org.diffs.readable(org.bob, org.id, diff.id)
    with pytest.raises(Conflict) as refused:  # decided meanwhile: never decided again
        org.diffs.save_decision(diff.decide(reviewer_id=org.admin, at=T, note="no"))
    assert refused.value.field == "status"
    assert org.diffs.for_update(org.id, diff.id) == decided
    rejected = org.diffs.save_decision(org.propose().decide(reviewer_id=org.bob, at=T, note="not true"))
    assert (rejected.status, rejected.reviewer_id, rejected.review_note, rejected.outcomes) == (
        DiffStatus.REJECTED, org.bob, "not true", ())
    approved = org.propose().decide(reviewer_id=org.admin, at=T, note="",
                                    outcomes=[OperationOutcome(i, OutcomeResult.APPLIED) for i in range(6)])
    assert org.diffs.save_decision(approved).status is DiffStatus.APPROVED


def test_save_decision_stores_only_the_decision_and_only_in_the_diffs_organisation(org):
    diff = org.propose()
    decided = diff.decide(reviewer_id=org.admin, at=T, note="no")
    for elsewhere in (replace(decided, organisation_id=org.organisation("other")), replace(decided, id=MISSING)):
        with pytest.raises(Conflict):
            org.diffs.save_decision(elsewhere)
    assert org.diffs.for_update(org.id, diff.id) == diff  # still pending
    tampered = replace(decided, rationale="rewritten", author_id=org.bob, operations=OPERATIONS[:1],
                       scope=Scope.private(org.id, org.bob), created_at=T)
    assert org.diffs.save_decision(tampered) == decided


def test_a_decision_without_its_time_or_a_pending_one_with_a_time_is_invalid(org):
    diff = org.propose()
    for bad in (replace(diff, status=DiffStatus.REJECTED, reviewer_id=org.admin),
                replace(diff, decided_at=T, reviewer_id=org.admin)):
        with pytest.raises(InvalidInput):
            org.diffs.save_decision(bad)
    assert org.diffs.for_update(org.id, diff.id) == diff


# --- lists -----------------------------------------------------------------------------------------------


def test_lists_show_pending_first_then_newest_and_page_without_gaps_or_repeats(org):
    made = [org.propose(rationale=f"diff {i}") for i in range(5)]
    for i in (1, 3):
        org.diffs.save_decision(made[i].decide(reviewer_id=org.admin, at=T, note=""))
    expected = [made[i].id for i in (4, 2, 0, 3, 1)]
    pages, cursor = [], None
    while True:
        page = org.diffs.list_readable(org.bob, org.id, frozenset(), cursor=cursor, limit=2)
        pages.append(ids(page))
        if page.next_cursor is None:
            break
        assert len(page.items) == 2, "a page before the last is short"
        cursor = page.next_cursor
    assert pages == [expected[:2], expected[2:4], expected[4:]]
    full = org.diffs.list_readable(org.bob, org.id, frozenset(), cursor=None, limit=5)
    assert ids(full) == expected and full.next_cursor is None  # a full last page has no cursor to an empty one
    pending = org.diffs.list_readable(org.bob, org.id, frozenset({DiffStatus.PENDING}), cursor=None, limit=10)
    assert ids(pending) == expected[:3]
    decided = frozenset({DiffStatus.REJECTED, DiffStatus.APPROVED})
    assert ids(org.diffs.list_readable(org.bob, org.id, decided, cursor=None, limit=10)) == expected[3:]


def test_lists_filter_by_visibility_inside_the_page(org):
    shared = org.propose()
    in_app = org.propose(scope=Scope.project(org.id, org.app))
    bobs = org.propose(scope=Scope.private(org.id, org.bob), author=org.bob)

    def listed(user, limit=10):
        return ids(org.diffs.list_readable(user, org.id, frozenset(), cursor=None, limit=limit))

    assert listed(org.bob, limit=1) == [bobs.id]  # the newest readable one, not the newest one filtered
    assert listed(org.bob) == [bobs.id, shared.id]
    assert listed(org.alice) == [in_app.id, shared.id] and listed(org.admin) == [in_app.id, shared.id]
    assert listed(org.outsider) == []
    other_org = org.organisation("other")
    assert ids(org.diffs.list_readable(org.admin, other_org, frozenset(), cursor=None, limit=10)) == []


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize("cursor", [
    pytest.param("!!!", id="not-base64"), pytest.param("not base64 at all", id="not-json"),
    pytest.param(_cursor(b"[]"), id="empty-key"),
    pytest.param(_cursor(b'[0, "2026-01-01T00:00:00+00:00"]'), id="no-id"),
    pytest.param(_cursor(b'[2, "2026-01-01T00:00:00+00:00", 1]'), id="rank-not-0-or-1"),
    pytest.param(_cursor(b'[0, "2026-01-01", 1]'), id="naive-time"),
    pytest.param(_cursor(b'[0, "yesterday", 1]'), id="not-a-time"),
    pytest.param(_cursor(b'[0, "2026-01-01T00:00:00+00:00", "1"]'), id="id-not-int"),
])
def test_a_malformed_cursor_or_a_limit_below_one_is_invalid_input(org, cursor):
    org.propose()
    with pytest.raises(InvalidInput) as refused:
        org.diffs.list_readable(org.bob, org.id, frozenset(), cursor=cursor, limit=2)
    assert refused.value.field == "cursor"
    with pytest.raises(InvalidInput) as refused:
        org.diffs.list_readable(org.bob, org.id, frozenset(), cursor=None, limit=0)
    assert refused.value.field == "limit"


def test_the_inbox_lists_and_counts_pending_diffs_only_in_scopes_the_principal_writes(org):
    shared = org.propose()
    in_app = org.propose(scope=Scope.project(org.id, org.app))
    bobs = org.propose(scope=Scope.private(org.id, org.bob), author=org.bob)
    decided = org.propose()
    org.diffs.save_decision(decided.decide(reviewer_id=org.admin, at=datetime.now(UTC), note=""))

    def pending(user, project=None, limit=10):
        listed = [d.id for d in org.diffs.list_pending_writable(user, org.id, project, limit=limit)]
        assert org.diffs.count_pending_writable(user, org.id, project) == len(
            org.diffs.list_pending_writable(user, org.id, project, limit=100))
        return listed

    assert pending(org.admin) == [in_app.id, shared.id] and pending(org.admin, org.app) == [in_app.id]
    assert pending(org.alice) == [shared.id]  # a viewer of APP reads it but may not write it
    assert pending(org.bob) == [bobs.id, shared.id] and pending(org.bob, limit=1) == [bobs.id]
    assert pending(org.outsider) == [] and pending(org.bob, org.app) == []
    org.directory.put_grant(org.app, user_id=org.alice, group_id=None, role=ProjectRole.MEMBER)
    assert pending(org.alice) == [in_app.id, shared.id]
    assert org.diffs.count_pending_writable(org.admin, org.organisation("other"), None) == 0


def test_reviewers_among_are_the_listed_users_who_read_and_write_the_diffs_scope_now(org):
    everyone = [org.admin, org.alice, org.bob, org.outsider]
    shared = org.propose()
    in_app = org.propose(scope=Scope.project(org.id, org.app))
    bobs = org.propose(scope=Scope.private(org.id, org.bob), author=org.bob)
    assert org.diffs.reviewers_among(org.id, shared.id, everyone) == {org.admin, org.alice, org.bob}
    assert org.diffs.reviewers_among(org.id, in_app.id, everyone) == {org.admin}  # alice only views APP
    assert org.diffs.reviewers_among(org.id, bobs.id, everyone) == {org.bob}
    assert org.diffs.reviewers_among(org.id, shared.id, [org.outsider, org.bob]) == {org.bob}
    assert org.diffs.reviewers_among(org.organisation("other"), shared.id, everyone) == frozenset()
    assert org.diffs.reviewers_among(org.id, MISSING, everyone) == frozenset()
    org.directory.put_grant(org.app, user_id=org.alice, group_id=None, role=ProjectRole.MEMBER)
    assert org.diffs.reviewers_among(org.id, in_app.id, everyone) == {org.admin, org.alice}
