"""The PostgreSQL job queue against a real database: jobs survive restarts, an expired lease (a crashed
worker) is claimed again, failures retry with backoff until max_attempts, concurrent claimers skip
each other's rows, and the worker thread starts and stops cleanly. Time is an injected clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tow_adapters.postgres.jobs import PgJobLeases, PgJobQueue
from tow_core.errors import DatabaseUnavailable
from tow_core.jobs import JobStatus, NewJob, RetryPolicy
from tow_http.job_worker import JobWorker

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(lease_seconds=30, max_attempts=3)


@pytest.fixture
def engine(make_container):
    return make_container().engine()


KINDS = frozenset({"probe"})


def enqueue(engine, kind: str = "probe", **payload) -> int:
    with engine.begin() as conn:
        return PgJobQueue(conn).enqueue(NewJob(kind, payload), now=T0)


def worker(engine, handlers, now) -> JobWorker:
    return JobWorker(PgJobLeases(engine), handlers, policy=POLICY, poll_interval_seconds=0.05, clock=lambda: now)


def test_a_queued_job_is_run_by_a_worker_started_later(engine):
    job_id = enqueue(engine, n=7)
    seen = []
    # A brand-new worker (another process after a restart) finds it: the queue lives in the database.
    assert worker(engine, {"probe": lambda job: seen.append(job.payload["n"])}, T0).drain() == 1
    assert seen == [7]
    assert PgJobLeases(engine).job(job_id).status is JobStatus.COMPLETED


def test_jobs_queued_at_once_each_keep_their_payload_and_run_in_order(engine):
    with engine.begin() as conn:
        ids = PgJobQueue(conn).enqueue_many([NewJob("probe", {"n": n}) for n in range(5)], now=T0)
        assert PgJobQueue(conn).enqueue_many([], now=T0) == []
    seen = []
    assert worker(engine, {"probe": lambda job: seen.append((job.id, job.payload["n"]))}, T0).drain() == 5
    assert seen == list(zip(ids, range(5), strict=True))


def test_a_job_queued_in_a_rolled_back_transaction_does_not_exist(engine):
    with engine.connect() as conn, conn.begin() as tx:
        PgJobQueue(conn).enqueue(NewJob("probe"), now=T0)
        tx.rollback()
    assert PgJobLeases(engine).claim(now=T0, policy=POLICY, kinds=KINDS) is None


def test_an_expired_lease_is_claimed_again_and_the_old_claim_is_lost(engine):
    job_id = enqueue(engine)
    leases = PgJobLeases(engine)
    crashed = leases.claim(now=T0, policy=POLICY, kinds=KINDS)  # this worker "crashes": it never completes
    assert crashed is not None and crashed.attempts == 1
    assert leases.claim(now=T0 + timedelta(seconds=29), policy=POLICY, kinds=KINDS) is None  # still leased
    again = leases.claim(now=T0 + timedelta(seconds=30), policy=POLICY, kinds=KINDS)
    assert again is not None and (again.id, again.attempts) == (job_id, 2)
    assert leases.complete(crashed, now=T0 + timedelta(seconds=31)) is False  # stale claim changes nothing
    assert leases.job(job_id).status is JobStatus.RUNNING
    assert leases.complete(again, now=T0 + timedelta(seconds=32)) is True
    assert leases.job(job_id).status is JobStatus.COMPLETED


def test_a_lease_that_expires_on_the_last_attempt_fails_the_job(engine):
    job_id = enqueue(engine)
    leases = PgJobLeases(engine)
    now = T0
    for _ in range(POLICY.max_attempts):
        assert leases.claim(now=now, policy=POLICY, kinds=KINDS) is not None
        now += timedelta(seconds=POLICY.lease_seconds)
    assert leases.claim(now=now, policy=POLICY, kinds=KINDS) is None
    failed = leases.job(job_id)
    assert failed.status is JobStatus.FAILED and "lease expired 3 times" in failed.error


def test_failures_are_retried_with_backoff_then_the_job_fails(engine):
    job_id = enqueue(engine)

    def broken(job):
        raise RuntimeError(f"attempt {job.attempts} broke")

    assert worker(engine, {"probe": broken}, T0).drain() == 1
    job = PgJobLeases(engine).job(job_id)
    assert (job.status, job.attempts, job.error) == (JobStatus.QUEUED, 1, "RuntimeError: attempt 1 broke")
    assert worker(engine, {"probe": broken}, T0 + timedelta(seconds=4)).drain() == 0  # backoff: 5 s
    assert worker(engine, {"probe": broken}, T0 + timedelta(seconds=5)).drain() == 1
    assert worker(engine, {"probe": broken}, T0 + timedelta(seconds=14)).drain() == 0  # then 10 s
    assert worker(engine, {"probe": broken}, T0 + timedelta(seconds=15)).drain() == 1
    job = PgJobLeases(engine).job(job_id)
    assert (job.status, job.attempts, job.error) == (JobStatus.FAILED, 3, "RuntimeError: attempt 3 broke")
    assert worker(engine, {"probe": broken}, T0 + timedelta(days=1)).drain() == 0


def test_a_worker_leaves_jobs_it_has_no_handler_for_to_one_that_has(engine):
    job_id = enqueue(engine, kind="notification_email")  # e.g. a `tow worker` without APP_SECRET
    assert worker(engine, {"probe": lambda job: None}, T0).drain() == 0
    assert PgJobLeases(engine).job(job_id).status is JobStatus.QUEUED
    done = []
    assert worker(engine, {"notification_email": done.append}, T0).drain() == 1
    assert [job.id for job in done] == [job_id]
    assert PgJobLeases(engine).job(job_id).status is JobStatus.COMPLETED


def test_concurrent_claimers_skip_rows_locked_by_each_other(engine):
    first, second = enqueue(engine), enqueue(engine)
    with engine.connect() as other_worker, other_worker.begin():
        # Another worker is in the middle of claiming the first job (it holds the row lock).
        other_worker.execute(sa.text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": first})
        claimed = PgJobLeases(engine).claim(now=T0, policy=POLICY, kinds=KINDS)
    assert claimed is not None and claimed.id == second


def test_the_worker_thread_runs_jobs_until_stopped(engine):
    done = threading.Event()
    background = JobWorker(PgJobLeases(engine), {"probe": lambda job: done.set()}, policy=POLICY,
                           poll_interval_seconds=0.05, clock=lambda: datetime.now(UTC))
    background.start()
    try:
        enqueue(engine)
        assert done.wait(timeout=30), "the worker thread never ran the job"
    finally:
        background.stop()
    assert not background.running


def test_a_renewed_lease_keeps_other_workers_away_until_it_expires(engine):
    job_id = enqueue(engine)
    leases = PgJobLeases(engine)
    working = leases.claim(now=T0, policy=POLICY, kinds=KINDS)
    assert leases.extend(working, now=T0 + timedelta(seconds=20), policy=POLICY) is True  # heartbeat
    assert leases.claim(now=T0 + timedelta(seconds=49), policy=POLICY, kinds=KINDS) is None
    taken_over = leases.claim(now=T0 + timedelta(seconds=50), policy=POLICY, kinds=KINDS)
    assert taken_over is not None and taken_over.id == job_id
    assert leases.extend(working, now=T0 + timedelta(seconds=51), policy=POLICY) is False  # claim lost


class RestartingLeases(PgJobLeases):
    """The real leases, with the database away for the first ``outage`` attempts to record an outcome."""

    def __init__(self, engine, outage: int) -> None:
        super().__init__(engine)
        self.refused = outage

    def _away(self) -> None:
        if self.refused:
            self.refused -= 1
            raise DatabaseUnavailable("the database is restarting", retry_after_seconds=1)

    def complete(self, job, *, now):
        self._away()
        return super().complete(job, now=now)

    def fail(self, job, error, *, now, policy):
        self._away()
        return super().fail(job, error, now=now, policy=policy)


def test_a_completion_the_database_refused_is_recorded_once_it_answers_not_left_to_the_lease(engine):
    job_id = enqueue(engine)
    runs = []
    leases = RestartingLeases(engine, outage=3)
    JobWorker(leases, {"probe": lambda job: runs.append(job.attempts)}, policy=POLICY, poll_interval_seconds=0.01,
              clock=lambda: T0).run_once()
    job = PgJobLeases(engine).job(job_id)
    assert (job.status, job.attempts, runs, leases.refused) == (JobStatus.COMPLETED, 1, [1], 0)


def test_a_job_the_outage_interrupted_is_queued_for_its_retry_once_the_database_answers(engine):
    job_id = enqueue(engine)

    def interrupted(job):
        raise DatabaseUnavailable("the database went away mid-export", retry_after_seconds=5)

    JobWorker(RestartingLeases(engine, outage=2), {"probe": interrupted}, policy=POLICY, poll_interval_seconds=0.01,
              clock=lambda: T0).run_once()
    job = PgJobLeases(engine).job(job_id)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)  # retried after the backoff, not after the lease
    assert worker(engine, {"probe": lambda job: None}, T0 + POLICY.retry_delay(1)).drain() == 1
    assert PgJobLeases(engine).job(job_id).status is JobStatus.COMPLETED
