"""PgJobQueue and PgJobLeases: the background job queue in PostgreSQL (migration 0008).

Claiming is one ``SELECT ... FOR UPDATE SKIP LOCKED`` plus one ``UPDATE`` in a short transaction, so
concurrent workers never claim the same job and never wait on each other's rows. Times come from the
caller (an injected clock), not ``now()``, so tests can move time forward to expire leases.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from tow_adapters.postgres.engine import transaction
from tow_core.jobs import Job, JobStatus, NewJob, RetryPolicy

_COLUMNS = "id, kind, payload, status, attempts, requested_by, organisation_id, error"
_MAX_ERROR_CHARS = 2000


def _job(row: sa.Row) -> Job:
    id_, kind, payload, status, attempts, requested_by, org_id, error = row
    return Job(id_, kind, dict(payload), JobStatus(status), attempts, requested_by, org_id, error)


class PgJobQueue:
    """Enqueue on the caller's connection: the job commits with the change that asked for it."""

    def __init__(self, connection: sa.Connection) -> None:
        self._conn = connection

    def enqueue(self, job: NewJob, *, now: datetime) -> int:
        return self._conn.execute(
            sa.text("INSERT INTO jobs (kind, payload, requested_by, organisation_id, run_after, created_at) "
                    "VALUES (:kind, CAST(:payload AS jsonb), :by, :org, :now, :now) RETURNING id"),
            {"kind": job.kind, "payload": json.dumps(dict(job.payload)), "by": job.requested_by,
             "org": job.organisation_id, "now": now},
        ).scalar_one()

    def enqueue_many(self, jobs: Sequence[NewJob], *, now: datetime) -> list[int]:
        if not jobs:
            return []
        rows = self._conn.execute(
            sa.text("INSERT INTO jobs (kind, payload, requested_by, organisation_id, run_after, created_at) "
                    "SELECT j.kind, j.payload, j.requested_by, j.org, :now, :now FROM unnest(CAST(:kinds AS text[]), "
                    "CAST(:payloads AS jsonb[]), CAST(:bys AS bigint[]), CAST(:orgs AS bigint[])) WITH ORDINALITY "
                    "AS j(kind, payload, requested_by, org, n) ORDER BY j.n RETURNING id"),
            {"kinds": [j.kind for j in jobs], "payloads": [json.dumps(dict(j.payload)) for j in jobs],
             "bys": [j.requested_by for j in jobs], "orgs": [j.organisation_id for j in jobs], "now": now},
        ).scalars().all()
        # Inserted in the ORDER BY's order, so the serial ids ascend with it (how SQLAlchemy's insertmanyvalues
        # matches RETURNING rows to parameters for an integer key): sorted, they are in the order of ``jobs``.
        return sorted(rows)


# Due work: queued jobs whose retry time has come, and running jobs whose worker lost its lease.
_NEXT_DUE = sa.text(
    f"SELECT {_COLUMNS} FROM jobs "
    "WHERE ((status = 'queued' AND run_after <= :now) OR (status = 'running' AND lease_expires_at <= :now)) "
    "AND kind = ANY(:kinds) "
    "ORDER BY CASE WHEN status = 'queued' THEN run_after ELSE lease_expires_at END, id "
    "LIMIT 1 FOR UPDATE SKIP LOCKED"
)


class PgJobLeases:
    """What workers do; each call is its own short transaction on the engine (``engine.transaction``: the
    database away is ``DatabaseUnavailable``, which the worker waits out)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def claim(self, *, now: datetime, policy: RetryPolicy, kinds: frozenset[str]) -> Job | None:
        with transaction(self._engine) as conn:
            while (row := conn.execute(_NEXT_DUE, {"now": now, "kinds": sorted(kinds)}).first()) is not None:
                due = _job(row)
                if due.status is JobStatus.RUNNING and policy.gives_up_after(due.attempts):
                    self._finish(conn, due, JobStatus.FAILED, now,
                                 f"the worker's lease expired {due.attempts} times (worker crashed or stalled)")
                    continue
                claimed = conn.execute(
                    sa.text("UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_expires_at = :lease, "
                            f"started_at = :now WHERE id = :id RETURNING {_COLUMNS}"),
                    {"id": due.id, "now": now, "lease": now + timedelta(seconds=policy.lease_seconds)},
                ).one()
                return _job(claimed)
        return None

    @staticmethod
    def _finish(conn: sa.Connection, job: Job, status: JobStatus, now: datetime, error: str | None) -> bool:
        return conn.execute(
            sa.text("UPDATE jobs SET status = :status, lease_expires_at = NULL, finished_at = :now, error = :error "
                    "WHERE id = :id AND status = 'running' AND attempts = :attempts"),
            {"status": status.value, "now": now, "error": error and error[:_MAX_ERROR_CHARS], "id": job.id,
             "attempts": job.attempts},
        ).rowcount == 1

    def complete(self, job: Job, *, now: datetime) -> bool:
        with transaction(self._engine) as conn:
            return self._finish(conn, job, JobStatus.COMPLETED, now, None)

    def extend(self, job: Job, *, now: datetime, policy: RetryPolicy) -> bool:
        with transaction(self._engine) as conn:
            return conn.execute(
                sa.text("UPDATE jobs SET lease_expires_at = :lease "
                        "WHERE id = :id AND status = 'running' AND attempts = :attempts"),
                {"lease": now + timedelta(seconds=policy.lease_seconds), "id": job.id, "attempts": job.attempts},
            ).rowcount == 1

    def fail(self, job: Job, error: str, *, now: datetime, policy: RetryPolicy) -> JobStatus | None:
        with transaction(self._engine) as conn:
            if policy.gives_up_after(job.attempts):
                return JobStatus.FAILED if self._finish(conn, job, JobStatus.FAILED, now, error) else None
            retried = conn.execute(
                sa.text("UPDATE jobs SET status = 'queued', lease_expires_at = NULL, run_after = :after, "
                        "error = :error WHERE id = :id AND status = 'running' AND attempts = :attempts"),
                {"after": now + policy.retry_delay(job.attempts), "error": error[:_MAX_ERROR_CHARS], "id": job.id,
                 "attempts": job.attempts},
            ).rowcount == 1
            return JobStatus.QUEUED if retried else None

    def job(self, job_id: int) -> Job | None:
        with transaction(self._engine) as conn:
            row = conn.execute(sa.text(f"SELECT {_COLUMNS} FROM jobs WHERE id = :id"), {"id": job_id}).first()
        return _job(row) if row else None
