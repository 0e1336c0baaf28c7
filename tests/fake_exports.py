"""In-memory fakes of ``JobQueue`` and ``ExportStore``, mirroring ``PgJobQueue.enqueue`` and ``PgExportStore``
(migrations 0010_jobs_and_exports and 0013_export_access).

As in PostgreSQL, an export's status and error are its job's (joined, never copied), and the CHECK
constraints the adapter does not translate (a file name the server would never choose, a file name
without a completion time) raise ``ValueError``: a bug in the caller, never a user error.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from tow_core.access import Scope
from tow_core.exports import ExportKind, ExportRequest
from tow_core.jobs import Job, JobStatus, NewJob

_FILE_NAME = re.compile(r"[a-z0-9-]+\.json")  # CHECK (file_name ~ '^[a-z0-9-]+\.json$')


class InMemoryJobQueue:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.jobs: dict[int, Job] = {}
        self.run_after: dict[int, datetime] = {}

    def enqueue(self, job: NewJob, *, now: datetime) -> int:
        stored = Job(next(self._ids), job.kind, dict(job.payload), JobStatus.QUEUED, 0, job.requested_by,
                     job.organisation_id)
        self.jobs[stored.id] = stored
        self.run_after[stored.id] = now
        return stored.id

    def enqueue_many(self, jobs: Sequence[NewJob], *, now: datetime) -> list[int]:
        return [self.enqueue(job, now=now) for job in jobs]

    def finish(self, job_id: int, status: JobStatus, error: str | None = None) -> None:
        """Test helper: what a worker's complete/fail would leave (the JobLeases port, not faked here)."""
        self.jobs[job_id] = replace(self.jobs[job_id], status=status, error=error)


class InMemoryExportStore:
    def __init__(self, jobs: InMemoryJobQueue) -> None:
        self._jobs = jobs
        self._ids = itertools.count(1)
        self.rows: dict[int, ExportRequest] = {}  # status and error as stored here are ignored: the job's count

    def _joined(self, row: ExportRequest) -> ExportRequest:
        job = self._jobs.jobs[row.job_id]
        return replace(row, status=job.status, error=job.error)

    def add(self, *, org_id: int, requested_by: int, kind: ExportKind, job_id: int, now: datetime,
            expires_at: datetime, include_attachment_contents: bool) -> ExportRequest:
        if job_id not in self._jobs.jobs:
            raise ValueError(f"exports.job_id {job_id} names no job")
        row = ExportRequest(next(self._ids), org_id, requested_by, ExportKind(kind), job_id, JobStatus.QUEUED, None,
                            None, None, now, None, expires_at, include_attachment_contents, None)
        self.rows[row.id] = row
        return self._joined(row)

    def get(self, export_id: int) -> ExportRequest | None:
        row = self.rows.get(export_id)
        return self._joined(row) if row else None

    def by_job(self, job_id: int) -> ExportRequest | None:
        return next((self._joined(r) for r in self.rows.values() if r.job_id == job_id), None)

    def of_requester(self, user_id: int, *, limit: int) -> list[ExportRequest]:
        mine = sorted((r for r in self.rows.values() if r.requested_by == user_id),
                      key=lambda r: (r.created_at, r.id), reverse=True)
        return [self._joined(r) for r in mine[:limit]]

    def mark_ready(self, export_id: int, *, file_name: str, size_bytes: int, scopes: frozenset[Scope],
                   now: datetime, expires_at: datetime) -> None:
        if not _FILE_NAME.fullmatch(file_name):
            raise ValueError("exports.file_name violates its CHECK constraint")
        if export_id in self.rows:
            self.rows[export_id] = replace(self.rows[export_id], file_name=file_name, size_bytes=size_bytes,
                                           scopes=frozenset(scopes), completed_at=now, expires_at=expires_at)

    def expired(self, now: datetime, *, limit: int) -> list[ExportRequest]:
        due = sorted((r for r in self.rows.values() if r.expires_at <= now), key=lambda r: r.expires_at)
        return [self._joined(r) for r in due[:limit]]

    def delete(self, export_id: int) -> None:
        self.rows.pop(export_id, None)
