"""The background job worker: claims jobs from the PostgreSQL queue and runs the handler of their kind.

``JobWorker.start()`` runs it on a daemon thread (``tow serve`` does this beside the web server);
``stop()`` asks it to finish the job in hand and joins it. ``tow worker`` runs the same loop in the
foreground, ``tow worker --once`` drains what is due and exits. It only schedules: what a job or a task
does is the core's (exports: ``tow_core.use_cases.exports.ExportJobs``). Between jobs the worker also runs
its periodic tasks (the export retention sweep and the housekeeping of ``tow_core.housekeeping``:
deleting the files of deleted uploads, purging finished jobs, deleting orphan export files, deleting
conversations idle longer than ``ai.chat_retention_days``)
at most every ``periodic_interval_seconds``.

Delivery is at least once: a worker that dies mid-job leaves a lease that expires, and the job is
claimed again (see ``tow_core.jobs``). Handlers therefore make their work idempotent. The database going away
(``DatabaseUnavailable``) is waited out: a job's outcome reached meanwhile (a failed attempt, to be retried, or
its completion) is recorded once the database answers again, retried every poll interval for at most the lease,
so a job the outage interrupted is retried soon after it ends rather than when its lease runs out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TypeVar

from tow_core.agent_runs import EVENTS_KEPT_AFTER_FINISH, AgentRuns, purge_finished_runs
from tow_core.conversations import Conversations, purge_idle_conversations
from tow_core.errors import TowError
from tow_core.housekeeping import (
    ExportDirectory,
    FileRemover,
    FinishedJobs,
    UploadDeletionOutbox,
    delete_orphan_export_files,
    delete_queued_upload_files,
    purge_finished_jobs,
)
from tow_core.jobs import Job, JobLeases, RetryPolicy
from tow_http.background import PollingThread, when_database_answers

log = logging.getLogger("tow.jobs")

JobHandler = Callable[[Job], None]
PeriodicTask = Callable[[datetime], object]
T = TypeVar("T")


class JobWorker(PollingThread):
    thread_name = "tow-job-worker"
    log = log

    def __init__(self, leases: JobLeases, handlers: Mapping[str, JobHandler], *, policy: RetryPolicy,
                 poll_interval_seconds: float, clock: Callable[[], datetime],
                 periodic: Sequence[PeriodicTask] = (), periodic_interval_seconds: float = 60.0) -> None:
        self._leases = leases
        self._handlers = dict(handlers)
        self._policy = policy
        self._clock = clock
        self._periodic = tuple(periodic)
        self._periodic_interval = timedelta(seconds=periodic_interval_seconds)
        self._last_periodic: datetime | None = None
        super().__init__(poll_interval_seconds)

    def run_once(self) -> Job | None:
        """Claim one due job and run it; None when nothing was due."""
        job = self._leases.claim(now=self._clock(), policy=self._policy, kinds=frozenset(self._handlers))
        if job is None:
            return None
        heartbeat = self._heartbeat(job)
        try:
            self._handlers[job.kind](job)  # claimed among the kinds it has handlers for
        except Exception as exc:
            heartbeat.set()
            error = exc.message if isinstance(exc, TowError) else f"{type(exc).__name__}: {exc}"
            outcome = self._when_database_answers(
                job, lambda: self._leases.fail(job, error, now=self._clock(), policy=self._policy))
            log.warning("job %s (%s) attempt %s failed: %s -> %s", job.id, job.kind, job.attempts, error,
                        outcome.value if outcome else "claim lost")
        else:
            heartbeat.set()
            if not self._when_database_answers(job, lambda: self._leases.complete(job, now=self._clock())):
                log.warning("job %s (%s) finished after its lease was lost", job.id, job.kind)
        return job

    def _when_database_answers(self, job: Job, record: Callable[[], T]) -> T | None:
        return when_database_answers(record, lease_seconds=self._policy.lease_seconds,
                                     poll_seconds=self._poll_interval, what=f"job {job.id}", log=log)

    def _heartbeat(self, job: Job) -> threading.Event:
        """Renew the job's lease every third of it until the returned event is set, so that a long job
        (a large export) is not claimed by another worker while this one is still on it."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self._policy.lease_seconds / 3):
                try:
                    if not self._leases.extend(job, now=self._clock(), policy=self._policy):
                        return
                except Exception:  # a missed beat is not fatal: the lease still has two thirds left
                    log.exception("renewing the lease of job %s failed", job.id)

        threading.Thread(target=beat, name=f"tow-job-{job.id}-lease", daemon=True).start()
        return done

    def run_periodic(self, *, force: bool = False) -> None:
        now = self._clock()
        if not force and self._last_periodic is not None and now - self._last_periodic < self._periodic_interval:
            return
        self._last_periodic = now
        for task in self._periodic:
            task(now)

    def drain(self) -> int:
        """Run the periodic tasks, then every due job until none is left; returns how many jobs ran."""
        self.run_periodic(force=True)
        handled = 0
        while self.run_once() is not None:
            handled += 1
        return handled

    def step(self) -> bool:
        self.run_periodic()
        return self.run_once() is not None


def upload_file_deletion_sweep(*, outbox: Callable[[], AbstractContextManager[UploadDeletionOutbox]],
                               files: FileRemover) -> PeriodicTask:
    """Deletes the files of uploads whose deletion committed; the outbox entry goes in the same
    transaction that locked it, after the file is gone."""

    def sweep(now: datetime) -> int:
        with outbox() as queued:
            return delete_queued_upload_files(queued, files)

    return sweep


def finished_job_purge(*, jobs: Callable[[], AbstractContextManager[FinishedJobs]],
                       retention: timedelta) -> PeriodicTask:
    def purge(now: datetime) -> int:
        with jobs() as finished:
            return purge_finished_jobs(finished, now=now, retention=retention)

    return purge


def orphan_export_file_sweep(*, recorded_names: Callable[[], set[str]], directory: ExportDirectory,
                             grace: timedelta) -> PeriodicTask:
    def sweep(now: datetime) -> list[str]:
        # Names are read before the directory is listed: a file recorded in between is younger than grace.
        return delete_orphan_export_files(directory, recorded_names(), now=now, grace=grace)

    return sweep


def finished_agent_run_purge(*, runs: Callable[[], AbstractContextManager[AgentRuns]],
                             retention_days: int) -> PeriodicTask:
    """Deletes agent runs finished longer ago than ``ai.agent_run_retention_days``; 0 keeps them."""

    def purge(now: datetime) -> int:
        with runs() as stored:
            return purge_finished_runs(stored, now=now, retention_days=retention_days)

    return purge


def idle_conversation_purge(*, conversations: Callable[[], AbstractContextManager[Conversations]],
                            retention_days: int) -> PeriodicTask:
    """Deletes conversations (with their turns) idle longer than the chat retention; 0 keeps them."""

    def purge(now: datetime) -> int:
        with conversations() as stored:
            return purge_idle_conversations(stored, now=now, retention_days=retention_days)

    return purge


def finished_run_event_purge(*, runs: Callable[[], AbstractContextManager[AgentRuns]]) -> PeriodicTask:
    """Deletes the live events of agent runs that finished more than ``EVENTS_KEPT_AFTER_FINISH`` ago (they
    carry conversation text; the answer is kept in its conversation)."""

    def purge(now: datetime) -> int:
        with runs() as stored:
            return stored.purge_events(finished_before=now - EVENTS_KEPT_AFTER_FINISH, limit=5000)

    return purge
