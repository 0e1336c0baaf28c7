"""Background jobs (issue 5): work that outlives a request, such as exports (agent runs have their own
row and claim: ``tow_core.agent_runs``).

A job is queued in the same transaction as the change that asks for it (so a request and its job
commit together), then claimed by one worker at a time under a lease. Rules:
- a claimed job is leased for ``lease_seconds`` and the worker renews the lease while it works (a
  heartbeat every third of it); a worker that crashes stops renewing, and once the lease expires the
  job is claimable again (at-least-once delivery: handlers are idempotent);
- a failed attempt is retried after ``retry_delay(attempts)`` until ``max_attempts`` attempts were
  made, then the job is ``failed`` with the last error;
- completing or failing needs the claim (job id and attempt number): a worker whose lease expired and
  whose job was re-claimed cannot overwrite the newer attempt's outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class NewJob:
    kind: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    requested_by: int | None = None
    organisation_id: int | None = None


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    payload: Mapping[str, Any]
    status: JobStatus
    attempts: int
    requested_by: int | None
    organisation_id: int | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    lease_seconds: int
    max_attempts: int
    base_delay_seconds: float = 5.0
    max_delay_seconds: float = 3600.0

    def retry_delay(self, attempts: int) -> timedelta:
        """Exponential backoff: 5 s, 10 s, 20 s, ... capped at an hour (attempts counts from 1)."""
        seconds = min(self.base_delay_seconds * 2 ** max(attempts - 1, 0), self.max_delay_seconds)
        return timedelta(seconds=seconds)

    def gives_up_after(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


class JobQueue(Protocol):
    """Queueing on the caller's transaction: the job commits with the change that asked for it."""

    def enqueue(self, job: NewJob, *, now: datetime) -> int: ...

    def enqueue_many(self, jobs: Sequence[NewJob], *, now: datetime) -> list[int]:
        """``enqueue`` each of ``jobs`` in one statement; their ids, in the order of ``jobs``."""
        ...


class JobLeases(Protocol):
    """What workers do, each call in its own short transaction."""

    def claim(self, *, now: datetime, policy: RetryPolicy, kinds: frozenset[str]) -> Job | None:
        """The next due job of one of ``kinds`` (queued and due, or running with an expired lease), leased to the
        caller; a job whose lease expired after its last allowed attempt is marked failed instead. A worker asks
        only for the kinds it has handlers for, so one without a handler (a `tow worker` without APP_SECRET has
        no notification emails) leaves those jobs to one that has it."""
        ...

    def complete(self, job: Job, *, now: datetime) -> bool:
        """False when the claim was lost (the lease expired and another worker holds the job)."""
        ...

    def extend(self, job: Job, *, now: datetime, policy: RetryPolicy) -> bool:
        """Renew the lease of a job still being worked on (a heartbeat); False when the claim was lost."""
        ...

    def fail(self, job: Job, error: str, *, now: datetime, policy: RetryPolicy) -> JobStatus | None:
        """Queue a retry (QUEUED) or give up (FAILED); None when the claim was lost."""
        ...

    def job(self, job_id: int) -> Job | None: ...
