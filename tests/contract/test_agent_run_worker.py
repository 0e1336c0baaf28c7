"""The agent run worker (tow_http.agent_run_worker) over one real PostgreSQL, built as `tow serve` and
`tow worker` build it (composition.build_agent_run_worker): a worker whose handler stops heartbeating
(a dead or hung process) loses its run to a second worker, which completes it, and the first one's late
result is not recorded; a cancel reaches a running handler at its heartbeat; a failing handler fails the
run without a retry; jobs.ai_queue_max_concurrency runs at once, no more."""

from __future__ import annotations

import contextlib
import queue as queue_module
import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tow_adapters.postgres.agent_runs import PgAgentRuns
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.live import PgLiveEvents, PgLiveFeed
from tow_adapters.postgres.notifications import PgNotifications
from tow_core.access import OrgRole
from tow_core.agent_runs import AgentRunResult, AgentRunStatus, TokenUsage, new_run
from tow_core.errors import DatabaseUnavailable, DependencyUnavailable
from tow_core.identity import WorkflowMode
from tow_core.jobs import RetryPolicy
from tow_core.live import LiveEvent
from tow_core.notifications import Delivery, NotificationKind
from tow_http.agent_run_worker import AgentRunWorker
from tow_http.composition import build_agent_run_worker

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def container(make_container):
    return make_container("jobs:\n  lease_seconds: 30\n  max_attempts: 3\n  ai_queue_max_concurrency: 2\n"
                          "  poll_interval_seconds: 0.05\n")


def queue(container, count: int = 1) -> list[int]:
    with container.engine().begin() as conn:
        directory = PgDirectory(conn)
        org = directory.add_organisation("Acme", WorkflowMode.ORGANIZATION).id
        user = directory.add_user("ada@example.com", "Ada", None, server_admin=False).id
        directory.set_membership(org, user, OrgRole.OWNER)
        runs = PgAgentRuns(conn)
        return [runs.create(new_run("chat", owner_id=user, organisation_id=org, project_id=None,
                                    input={"question": f"q{n}"}), now=T0).id for n in range(count)]


def stored(container, run_id: int):
    with container.engine().begin() as conn:
        return PgAgentRuns(conn).get(run_id)


def worker(container, handlers, clock):
    return build_agent_run_worker(container.engine(), container.config(), handlers, clock=clock)


def test_a_run_whose_worker_stopped_heartbeating_is_completed_once_by_another_worker(container):
    [run_id] = queue(container)
    clock = Clock()
    entered, release = threading.Event(), threading.Event()
    results = []

    def hangs(run, heartbeat):
        entered.set()
        release.wait(30)  # a dead process: no heartbeat, ever
        results.append("first")
        return AgentRunResult({"answer": "from the first worker"}, TokenUsage(1, 1))

    def answers(run, heartbeat):
        heartbeat()
        results.append("second")
        return AgentRunResult({"answer": "from the second worker"}, TokenUsage(700, 40))

    first = threading.Thread(target=worker(container, {"chat": hangs}, clock).run_once)
    first.start()
    assert entered.wait(30)
    second = worker(container, {"chat": answers}, clock)
    assert second.run_once() is None  # still leased to the first
    clock.now = T0 + LEASE
    taken_over = second.run_once()
    assert (taken_over.id, taken_over.attempts) == (run_id, 2)
    release.set()
    first.join(30)
    assert results == ["second", "first"]  # both handlers returned ...
    run = stored(container, run_id)  # ... one completion was recorded
    assert (run.status, run.output, run.usage, run.attempts) == (
        AgentRunStatus.COMPLETED, {"answer": "from the second worker"}, TokenUsage(700, 40), 2)


def test_a_cancel_reaches_the_running_handler_at_its_heartbeat(container):
    [run_id] = queue(container)
    steps = []

    def chat(run, heartbeat):
        steps.append("round 1")
        with container.engine().begin() as conn:  # the owner presses Cancel while the run works
            PgAgentRuns(conn).request_cancel(run.id, now=T0)
        heartbeat()
        steps.append("round 2")
        return AgentRunResult({"answer": "never"})

    worker(container, {"chat": chat}, Clock()).drain()
    assert steps == ["round 1"]
    run = stored(container, run_id)
    assert (run.status, run.output, run.cancel_requested) == (AgentRunStatus.CANCELLED, None, True)


def test_a_failing_handler_fails_the_run_without_running_it_again(container):
    [run_id] = queue(container)
    calls = []

    def broken(run, heartbeat):
        calls.append(run.attempts)
        raise RuntimeError("the model answered garbage")

    clock = Clock()
    worker(container, {"chat": broken}, clock).drain()
    clock.now = T0 + timedelta(days=1)
    assert worker(container, {"chat": broken}, clock).drain() == 0
    run = stored(container, run_id)
    assert calls == [1]
    assert (run.status, run.error_code, run.error) == (AgentRunStatus.FAILED, "handler_failed",
                                                       "RuntimeError: the model answered garbage")


def nudges_heard(container, work) -> list[LiveEvent]:
    """Every live event ``work`` published, in commit order: a marker published after it closes the list (NOTIFY
    is delivered in commit order), so what came before it is counted whole, without waiting for stragglers."""
    heard: queue_module.Queue = queue_module.Queue()
    feed = PgLiveFeed(container.engine())
    feed.start(heard.put)
    marker = LiveEvent.record_changed(999_999, 1, None)
    try:
        work()
        with container.engine().begin() as conn:
            PgLiveEvents(conn).publish(marker)
        events = []
        while (event := heard.get(timeout=10)) != marker:
            events.append(event)
        return events
    finally:
        feed.stop()


@pytest.mark.parametrize("notified", [True, False], ids=["notification on", "notification switched off"])
def test_a_failed_run_nudges_its_owners_open_pages_live_once(container, notified):
    [run_id] = queue(container)
    owner = stored(container, run_id).owner_id
    if not notified:
        with container.engine().begin() as conn:
            PgNotifications(conn).set_preference(owner, NotificationKind.RUN_FAILED, Delivery.OFF)
    events = nudges_heard(container, lambda: worker(container, {}, Clock()).drain())
    run = stored(container, run_id)
    assert run.status is AgentRunStatus.FAILED
    # Its inbox count changed: one nudge, whether or not a notification (which nudges too) was created.
    assert events == [LiveEvent.user_nudged(run.organisation_id, owner)]
    assert notified_of(container, run_id) == ([(owner, "run_failed")] if notified else [])


def notified_of(container, run_id: int) -> list[tuple[int, str]]:
    with container.engine().begin() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT user_id, kind FROM notifications WHERE agent_run_id = :id ORDER BY id"), {"id": run_id})]


def test_the_owner_is_notified_in_the_transaction_that_records_the_end_and_a_lost_lease_notifies_nobody(container):
    done, broken, taken = queue(container, 3)
    owner = stored(container, done).owner_id

    def answers(run, heartbeat):
        if run.id == taken:  # another worker took this run over meanwhile: this end is not recorded
            with container.engine().begin() as conn:
                conn.execute(sa.text("UPDATE agent_runs SET attempts = attempts + 1 WHERE id = :id"), {"id": run.id})
        if run.id == broken:
            raise RuntimeError("the model answered garbage")
        return AgentRunResult({"answer": "42"}, TokenUsage())

    worker(container, {"chat": answers}, Clock()).drain()
    assert notified_of(container, done) == [(owner, "run_finished")]
    assert notified_of(container, broken) == [(owner, "run_failed")]
    assert notified_of(container, taken) == []


def test_a_run_of_a_kind_nobody_handles_fails_saying_so(container):
    [run_id] = queue(container)
    worker(container, {}, Clock()).drain()
    run = stored(container, run_id)
    assert (run.status, run.error_code) == (AgentRunStatus.FAILED, "no_handler")
    assert "no handler for agent runs of kind 'chat'" in run.error


def test_the_pool_runs_ai_queue_max_concurrency_runs_at_once_and_no_more(container):
    run_ids = queue(container, 4)
    lock, running, most = threading.Lock(), [0], [0]
    both_in = threading.Barrier(2, timeout=20)  # fails unless two handlers run at the same time

    def chat(run, heartbeat):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        with contextlib.suppress(threading.BrokenBarrierError):  # a last run whose partner has finished
            both_in.wait()
        with lock:
            running[0] -= 1
        return AgentRunResult({"answer": run.input["question"]})

    pool = build_agent_run_worker(container.engine(), container.config(), {"chat": chat},
                                  clock=lambda: datetime.now(UTC))
    pool.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while datetime.now(UTC) < deadline and any(
                stored(container, r).status is not AgentRunStatus.COMPLETED for r in run_ids):
            threading.Event().wait(0.05)
    finally:
        pool.stop()
    assert not pool.running
    assert [stored(container, r).output for r in run_ids] == [{"answer": f"q{n}"} for n in range(4)]
    assert most[0] == 2



def test_a_heartbeat_the_database_refuses_is_skipped_not_fatal(container):
    [run_id] = queue(container)
    engine, calls = container.engine(), []

    @contextmanager
    def runs():
        calls.append(len(calls))
        if len(calls) == 2:  # the claim, then the first heartbeat: the database is restarting
            raise DependencyUnavailable("the database is restarting", retry_after_seconds=1)
        with engine.begin() as conn:
            yield PgAgentRuns(conn)

    def chat(run, heartbeat):
        heartbeat()  # refused: logged, and the run goes on
        heartbeat()
        return AgentRunResult({"answer": "done"})

    AgentRunWorker(runs, {"chat": chat}, policy=RetryPolicy(lease_seconds=30, max_attempts=3), concurrency=1,
                   poll_interval_seconds=0.05, clock=Clock()).run_once()
    assert len(calls) == 4  # claim, two heartbeats, the completion
    assert stored(container, run_id).status is AgentRunStatus.COMPLETED


def _restarting(engine, away_on: set[int], calls: list[int]):
    """The worker's transactions, with the database away on the call numbers in ``away_on`` (0 = the claim)."""

    @contextmanager
    def runs():
        calls.append(len(calls))
        if len(calls) - 1 in away_on:
            raise DatabaseUnavailable("the database is restarting", retry_after_seconds=1)
        with engine.begin() as conn:
            yield PgAgentRuns(conn)

    return runs


def test_an_answer_reached_while_the_database_is_away_is_recorded_once_it_answers(container):
    [run_id] = queue(container)
    calls: list[int] = []
    AgentRunWorker(_restarting(container.engine(), {1, 2, 3}, calls),
                   {"chat": lambda run, heartbeat: AgentRunResult({"answer": "kept"})},
                   policy=RetryPolicy(lease_seconds=30, max_attempts=3), concurrency=1, poll_interval_seconds=0.01,
                   clock=Clock()).run_once()
    run = stored(container, run_id)
    assert (run.status, run.attempts, run.output, len(calls)) == (AgentRunStatus.COMPLETED, 1, {"answer": "kept"}, 5)


def test_a_run_the_outage_interrupted_is_given_back_and_answered_by_its_next_attempt_not_failed(container):
    [run_id] = queue(container)
    clock, calls = Clock(), []

    def saves(run, heartbeat):
        calls.append(run.attempts)
        if run.attempts == 1:  # saving the answer: the database went away
            raise DatabaseUnavailable("the database went away", retry_after_seconds=5)
        return AgentRunResult({"answer": "second attempt"})

    first = AgentRunWorker(_restarting(container.engine(), {1}, []), {"chat": saves},
                           policy=RetryPolicy(lease_seconds=30, max_attempts=3), concurrency=1,
                           poll_interval_seconds=0.01, clock=clock)
    first.run_once()
    assert stored(container, run_id).status is AgentRunStatus.RUNNING  # not failed: given back
    assert worker(container, {"chat": saves}, clock).drain() == 1  # same moment: no lease to wait out
    run = stored(container, run_id)
    assert (run.status, run.attempts, run.output, calls) == (AgentRunStatus.COMPLETED, 2, {"answer": "second attempt"},
                                                             [1, 2])


def test_a_queued_run_wakes_an_idle_worker_rather_than_waiting_for_its_next_poll(make_container):
    """With a poll interval of a minute (the most allowed), only the NOTIFY sent when the run is queued (delivered on commit) can
    get it claimed before the test gives up; a second worker process would hear it the same way."""
    container = make_container("jobs:\n  poll_interval_seconds: 60\n")
    handled = threading.Event()

    def chat(run, heartbeat):
        handled.set()
        return AgentRunResult({"answer": "woken"})

    pool = build_agent_run_worker(container.engine(), container.config(), {"chat": chat},
                                  clock=lambda: datetime.now(UTC))
    pool.start()
    try:
        assert pool._listener.listening.wait(30)  # LISTEN is in place before the run is queued
        threading.Event().wait(0.2)  # the claimers' first look (finding nothing) is over: they sleep
        [run_id] = queue(container)
        assert handled.wait(20), "the queued run was not picked up before the next poll"
    finally:
        pool.stop()
    assert not pool.running
    assert stored(container, run_id).output == {"answer": "woken"}
