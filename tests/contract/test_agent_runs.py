"""The ``AgentRuns`` port (tow_core.agent_runs) against its in-memory fake and ``PgAgentRuns`` on a real
PostgreSQL: runs are stored whole and listed newest first; two claimers never get the same run; a run
whose lease expired is claimed again with attempts + 1 and the stale worker can neither heartbeat nor
finish it; expired leases on the last attempt fail the run; cancelling ends a queued run at once and
reaches a running one through its heartbeat. Each call is its own transaction, as the worker makes them.
Time is passed in, so leases expire when a test says so."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.fake_agent_runs import InMemoryAgentRuns
from tests.fakes import InMemoryDirectory
from tow_adapters.postgres.agent_runs import PgAgentRuns
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_core.access import OrgRole, Visibility
from tow_core.agent_runs import (
    LEASE_EXPIRED,
    AgentRunResult,
    AgentRuns,
    AgentRunStatus,
    LeaseState,
    TokenUsage,
    new_run,
)
from tow_core.identity import Project, ProjectStatus, WorkflowMode
from tow_core.jobs import RetryPolicy

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(lease_seconds=30, max_attempts=3)
LEASE = timedelta(seconds=POLICY.lease_seconds)


@pytest.fixture(scope="module")
def runs_engine(embedded_postgres):
    embedded_postgres.ensure_database("agent_runs_contract")
    engine = create_engine(embedded_postgres.url("agent_runs_contract"), PoolOptions(pool_size=6, max_overflow=2))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()


class World:
    """Acme with Ada (owner) and Bob (member); runs of each. ``runs()`` opens one transaction."""

    def __init__(self, runs: Callable[[], AbstractContextManager[AgentRuns]], directory, commit) -> None:
        self.runs = runs
        with commit():
            self.org = directory().add_organisation(f"acme-{time.monotonic_ns()}", WorkflowMode.ORGANIZATION).id
            self.other_org = directory().add_organisation(f"other-{time.monotonic_ns()}", WorkflowMode.ORGANIZATION).id
            self.ada, self.bob = (directory().add_user(f"{name}-{time.monotonic_ns()}@example.com", name, None,
                                                       server_admin=False).id for name in ("ada", "bob"))
            directory().set_membership(self.org, self.ada, OrgRole.OWNER)
            directory().set_membership(self.org, self.bob, OrgRole.MEMBER)
            directory().set_membership(self.other_org, self.bob, OrgRole.MEMBER)
            self.project = directory().add_project(Project(0, self.org, "APP", "App", "", None, Visibility.OPEN,
                                                           ProjectStatus.ACTIVE)).id

    def queue(self, owner: int | None = None, *, org: int | None = None, project: int | None = None,
              now: datetime = T0, kind: str = "chat", **input_):
        with self.runs() as runs:
            return runs.create(new_run(kind, owner_id=owner or self.bob, organisation_id=org or self.org,
                                       project_id=project, input=input_ or {"question": "what ships?"}), now=now)

    def claim(self, now: datetime = T0):
        with self.runs() as runs:
            return runs.claim(now=now, policy=POLICY)

    def get(self, run_id: int):
        with self.runs() as runs:
            return runs.get(run_id)

    def call(self, method: str, *args, **kwargs):
        with self.runs() as runs:
            return getattr(runs, method)(*args, **kwargs)


@pytest.fixture(params=["fake", "postgres"])
def world(request) -> World:
    if request.param == "fake":
        directory, runs = InMemoryDirectory(), InMemoryAgentRuns()

        @contextmanager
        def fake_runs() -> Iterator[AgentRuns]:
            yield runs

        return World(fake_runs, lambda: directory, nullcontext)
    engine = request.getfixturevalue("runs_engine")
    with engine.begin() as conn:  # every test claims from an empty queue
        conn.execute(sa.text("DELETE FROM agent_runs"))

    @contextmanager
    def pg_runs() -> Iterator[AgentRuns]:
        with engine.begin() as conn:
            yield PgAgentRuns(conn)

    state = {}

    @contextmanager
    def commit():
        with engine.begin() as conn:
            state["directory"] = PgDirectory(conn)
            yield

    return World(pg_runs, lambda: state["directory"], commit)


# --- stored and listed -----------------------------------------------------------------------------------


def test_a_queued_run_is_stored_whole(world):
    run = world.queue(world.bob, project=world.project, question="what ships?", history=[{"role": "user"}])
    assert (run.kind, run.owner_id, run.organisation_id, run.project_id) == ("chat", world.bob, world.org,
                                                                             world.project)
    assert run.input == {"question": "what ships?", "history": [{"role": "user"}]}
    assert (run.status, run.attempts, run.output, run.error, run.error_code, run.cancel_requested) == (
        AgentRunStatus.QUEUED, 0, None, None, None, False)
    assert (run.created_at, run.started_at, run.finished_at, run.usage) == (T0, None, None, TokenUsage())
    assert world.get(run.id) == run
    assert world.get(run.id + 10_000) is None


def test_listing_is_newest_first_per_owner_or_whole_organisation_and_pages_by_id(world):
    first, second = world.queue(world.bob), world.queue(world.ada)
    third, elsewhere = world.queue(world.bob), world.queue(world.bob, org=world.other_org)
    ids = lambda whole=(), own=(), owner=0, after=None, limit=10: [r.id for r in world.call(  # noqa: E731
        "list", whole_organisations=whole, own_in=own, owner_id=owner, after_id=after, limit=limit)]
    assert ids(own={world.org}, owner=world.bob) == [third.id, first.id]
    assert ids(own={world.org}, owner=world.ada) == [second.id]
    assert ids(whole={world.org}) == [third.id, second.id, first.id]  # never another organisation's (elsewhere)
    assert ids(whole={world.org}, limit=2) == [third.id, second.id]
    assert ids(whole={world.org}, after=second.id) == [first.id]
    assert ids(whole={world.other_org}) == [elsewhere.id]
    # Across organisations: one whole, one's own runs in another.
    assert ids(whole={world.other_org}, own={world.org}, owner=world.ada) == [elsewhere.id, second.id]
    assert ids(own={world.org, world.other_org}, owner=world.bob) == [elsewhere.id, third.id, first.id]
    assert ids() == []


def test_finished_runs_are_purged_after_the_cutoff_and_running_ones_never(world):
    old_done, old_running, recent_done = world.queue(), world.queue(), world.queue()
    done, running = world.claim(T0), world.claim(T0)
    assert (done.id, running.id) == (old_done.id, old_running.id)
    assert world.call("finish_completed", done, AgentRunResult({"ok": True}), now=T0)
    later = T0 + timedelta(days=30)
    recent = world.claim(later)
    assert world.call("finish_failed", recent, "handler_failed", "boom", now=later)
    assert world.call("purge_finished", finished_before=T0 + timedelta(days=1), limit=100) == 1
    assert world.get(old_done.id) is None
    assert world.get(old_running.id) is not None and world.get(recent_done.id) is not None
    assert world.call("purge_finished", finished_before=T0 + timedelta(days=1), limit=100) == 0


def test_the_latest_run_of_a_kind_for_a_record_is_found_whatever_its_status_or_owner(world):
    older = world.queue(world.bob, kind="memory_extraction", record_id=7)
    newer = world.queue(world.ada, kind="memory_extraction", record_id=7)
    world.queue(world.bob, kind="memory_extraction", record_id=8)
    world.queue(world.bob, kind="chat", record_id=7)
    world.queue(world.bob, org=world.other_org, kind="memory_extraction", record_id=7)
    assert world.call("latest_for_record", world.org, "memory_extraction", 7).id == newer.id
    world.call("request_cancel", newer.id, now=T0)
    assert world.call("latest_for_record", world.org, "memory_extraction", 7).status is AgentRunStatus.CANCELLED
    assert older.id < newer.id
    assert world.call("latest_for_record", world.org, "memory_extraction", 9) is None


# --- claiming and leases -----------------------------------------------------------------------------------


def test_a_claim_leases_the_oldest_queued_run_and_counts_the_attempt(world):
    older, newer = world.queue(now=T0 - timedelta(minutes=1)), world.queue()
    claimed = world.claim(T0)
    assert (claimed.id, claimed.status, claimed.attempts, claimed.started_at) == (
        older.id, AgentRunStatus.RUNNING, 1, T0)
    assert world.claim(T0).id == newer.id
    assert world.claim(T0) is None  # both leased


def test_two_claimers_never_get_the_same_run(world):
    queued = {world.queue().id for _ in range(12)}
    claimed: list[int] = []
    start = threading.Barrier(4)

    def claimer() -> None:
        start.wait()
        while (run := world.claim(T0)) is not None:
            claimed.append(run.id)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(claimed) == sorted(queued)  # each exactly once


@pytest.mark.parametrize("world", ["postgres"], indirect=True)  # row locks are PostgreSQL's
def test_a_claimer_skips_a_run_another_claimer_holds_locked(world, request):
    first, second = world.queue(now=T0 - timedelta(seconds=1)), world.queue()
    engine = request.getfixturevalue("runs_engine")
    with engine.connect() as other_worker, other_worker.begin():
        other_worker.execute(sa.text("SELECT id FROM agent_runs WHERE id = :id FOR UPDATE"), {"id": first.id})
        claimed = world.claim(T0)  # does not wait for the lock
    assert claimed.id == second.id


def test_an_expired_lease_is_claimed_again_and_the_stale_worker_changes_nothing(world):
    run = world.queue()
    crashed = world.claim(T0)
    assert world.claim(T0 + LEASE - timedelta(seconds=1)) is None  # still leased
    again = world.claim(T0 + LEASE)
    assert (again.id, again.attempts, again.started_at) == (run.id, 2, T0)
    later = T0 + LEASE + timedelta(seconds=1)
    assert world.call("heartbeat", crashed, now=later, policy=POLICY) is LeaseState.LOST
    assert world.call("finish_completed", crashed, AgentRunResult({"answer": "stale"}), now=later) is False
    assert world.call("finish_failed", crashed, "handler_failed", "stale", now=later) is False
    assert world.call("finish_cancelled", crashed, now=later) is False
    assert world.get(run.id).status is AgentRunStatus.RUNNING
    result = AgentRunResult({"answer": "Fridays"}, TokenUsage(120, 30))
    assert world.call("finish_completed", again, result, now=later) is True
    done = world.get(run.id)
    assert (done.status, done.output, done.usage, done.finished_at, done.attempts) == (
        AgentRunStatus.COMPLETED, {"answer": "Fridays"}, TokenUsage(120, 30), later, 2)
    assert world.call("finish_completed", again, result, now=later) is False  # finished once
    assert world.claim(later + timedelta(days=1)) is None


def test_a_heartbeat_keeps_other_claimers_away_until_its_lease_expires(world):
    world.queue()
    working = world.claim(T0)
    assert world.call("heartbeat", working, now=T0 + timedelta(seconds=20), policy=POLICY) is LeaseState.HELD
    assert world.claim(T0 + timedelta(seconds=49)) is None
    assert world.claim(T0 + timedelta(seconds=50)).attempts == 2


def test_a_lease_that_expires_on_the_last_attempt_fails_the_run(world):
    run = world.queue()
    now = T0
    for attempt in range(1, POLICY.max_attempts + 1):
        assert world.claim(now).attempts == attempt
        now += LEASE
    assert world.claim(now) is None
    failed = world.get(run.id)
    assert (failed.status, failed.error_code, failed.finished_at) == (AgentRunStatus.FAILED, LEASE_EXPIRED, now)
    assert "lease expired 3 times" in failed.error


def test_a_failed_run_keeps_its_error_and_is_not_claimed_again(world):
    run = world.queue()
    claimed = world.claim(T0)
    assert world.call("finish_failed", claimed, "handler_failed", "the model refused", now=T0) is True
    failed = world.get(run.id)
    assert (failed.status, failed.error_code, failed.error) == (AgentRunStatus.FAILED, "handler_failed",
                                                                "the model refused")
    assert world.claim(T0 + timedelta(days=1)) is None


# --- cancelling -----------------------------------------------------------------------------------------


def test_cancelling_a_queued_run_ends_it_at_once_and_it_is_never_claimed(world):
    run = world.queue()
    cancelled = world.call("request_cancel", run.id, now=T0)
    assert (cancelled.status, cancelled.cancel_requested, cancelled.finished_at) == (
        AgentRunStatus.CANCELLED, True, T0)
    assert world.claim(T0) is None
    assert world.call("request_cancel", run.id + 10_000, now=T0) is None


def test_cancelling_a_running_run_reaches_its_worker_at_the_next_heartbeat(world):
    run = world.queue()
    working = world.claim(T0)
    requested = world.call("request_cancel", run.id, now=T0)
    assert (requested.status, requested.cancel_requested) == (AgentRunStatus.RUNNING, True)
    assert world.call("heartbeat", working, now=T0, policy=POLICY) is LeaseState.CANCEL_REQUESTED
    assert world.call("finish_cancelled", working, now=T0 + timedelta(seconds=1)) is True
    ended = world.get(run.id)
    assert (ended.status, ended.finished_at) == (AgentRunStatus.CANCELLED, T0 + timedelta(seconds=1))


def test_a_run_whose_worker_died_after_a_cancel_request_ends_cancelled_not_rerun(world):
    run = world.queue()
    world.claim(T0)
    world.call("request_cancel", run.id, now=T0)
    assert world.claim(T0 + LEASE) is None
    assert world.get(run.id).status is AgentRunStatus.CANCELLED


def test_cancelling_a_finished_run_changes_nothing(world):
    run = world.queue()
    claimed = world.claim(T0)
    world.call("finish_completed", claimed, AgentRunResult({"answer": "done"}), now=T0)
    after = world.call("request_cancel", run.id, now=T0 + timedelta(seconds=5))
    assert (after.status, after.cancel_requested, after.finished_at) == (AgentRunStatus.COMPLETED, False, T0)


# --- the inbox: failed runs until dismissed -----------------------------------------------------------------


def _failed(world: World, **queue_args):
    run = world.queue(**queue_args)
    claimed = world.claim(T0)
    assert claimed.id == run.id
    world.call("finish_failed", claimed, "handler_failed", "the model refused", now=T0)
    return run


def test_failed_runs_wait_for_their_owner_in_the_scopes_asked_for_until_dismissed(world):
    everywhere = _failed(world)
    in_project = _failed(world, project=world.project)
    _failed(world, owner=world.ada)
    world.queue()  # not failed: never in the inbox

    def waiting(projects=frozenset(), unscoped=True):
        runs = world.call("failed_undismissed", world.bob, world.org, projects, unscoped=unscoped, limit=10)
        assert world.call("count_failed_undismissed", world.bob, world.org, projects, unscoped=unscoped) == len(runs)
        return [r.id for r in runs]

    assert waiting(frozenset({world.project})) == [in_project.id, everywhere.id]
    assert waiting() == [everywhere.id] and waiting(frozenset({world.project}), unscoped=False) == [in_project.id]
    assert world.call("failed_undismissed", world.bob, world.org, frozenset({world.project}), unscoped=True,
                      limit=1)[0].id == in_project.id
    assert world.call("count_failed_undismissed", world.bob, world.other_org, frozenset(), unscoped=True) == 0

    assert world.call("dismiss", everywhere.id, now=T0) is True
    assert world.call("dismiss", everywhere.id, now=T0) is False  # once
    assert waiting(frozenset({world.project})) == [in_project.id]
    assert world.get(everywhere.id).status is AgentRunStatus.FAILED  # kept
    queued = world.queue()
    assert world.call("dismiss", queued.id, now=T0) is False  # only a failed run


# --- run events (the owner's live view of a run) --------------------------------------------------------


def test_events_are_read_in_order_after_a_sequence_number_and_only_for_the_asked_attempt(world):
    from tow_core.agent_runs import RunEventKind

    run, other = world.queue(), world.queue()
    first = world.claim()
    assert world.call("append_events", first, [(RunEventKind.DELTA, {"text": "We ", "round": 1}),
                                               (RunEventKind.DELTA, {"text": "ship.", "round": 1})], now=T0)
    world.claim()  # the other run, so sequence numbers interleave between runs
    assert world.call("append_events", world.get(other.id), [(RunEventKind.DELTA, {"text": "elsewhere"})], now=T0)
    assert world.call("append_events", first, [(RunEventKind.ACTIVITY, {"tool": "get_record", "records": ["D-1"]})],
                      now=T0 + timedelta(seconds=1))
    events = world.call("events_after", run.id, attempt=1, after_seq=0, limit=10)
    assert [(e.kind, dict(e.data)) for e in events] == [
        (RunEventKind.DELTA, {"text": "We ", "round": 1}), (RunEventKind.DELTA, {"text": "ship.", "round": 1}),
        (RunEventKind.ACTIVITY, {"tool": "get_record", "records": ["D-1"]})]
    assert [e.seq for e in events] == sorted(e.seq for e in events) and {e.run_id for e in events} == {run.id}
    assert {(e.attempt, e.created_at) for e in events[:2]} == {(1, T0)}
    assert world.call("events_after", run.id, attempt=1, after_seq=events[0].seq, limit=1) == [events[1]]
    assert world.call("events_after", run.id, attempt=2, after_seq=0, limit=10) == []


def test_a_worker_whose_lease_was_taken_over_writes_no_events(world):
    from tow_core.agent_runs import RunEventKind

    run = world.queue()
    stale = world.claim()
    taken = world.claim(T0 + LEASE + timedelta(seconds=1))
    assert taken.attempts == 2
    assert not world.call("append_events", stale, [(RunEventKind.DELTA, {"text": "stale"})], now=T0)
    assert world.call("append_events", taken, [(RunEventKind.RESTART, {"reason": "new_attempt"})], now=T0)
    assert world.call("events_after", run.id, attempt=1, after_seq=0, limit=10) == []
    assert [e.kind for e in world.call("events_after", run.id, attempt=2, after_seq=0, limit=10)] == [
        RunEventKind.RESTART]


def test_events_are_purged_once_their_run_finished_before_the_cutoff(world):
    from tow_core.agent_runs import RunEventKind

    done, running = world.queue(), world.queue()
    claimed_done, claimed_running = world.claim(), world.claim()
    for claimed in (claimed_done, claimed_running):
        world.call("append_events", claimed, [(RunEventKind.DELTA, {"text": "x"}), (RunEventKind.DELTA, {"y": 1})],
                   now=T0)
    assert world.call("finish_completed", claimed_done, AgentRunResult({}), now=T0 + timedelta(minutes=1))
    assert world.call("purge_events", finished_before=T0 + timedelta(minutes=1), limit=100) == 0  # not before
    assert world.call("purge_events", finished_before=T0 + timedelta(minutes=2), limit=100) == 2
    assert world.call("events_after", done.id, attempt=1, after_seq=0, limit=10) == []
    assert len(world.call("events_after", running.id, attempt=1, after_seq=0, limit=10)) == 2
