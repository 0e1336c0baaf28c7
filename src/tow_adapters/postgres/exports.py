"""PgExportStore: export requests (migrations 0010 and 0013_export_access), on the caller's connection.

An export's status and error are its job's (joined, never copied), so they cannot disagree. The scopes a
file holds are stored as a JSON array of ``[kind, ref_id]`` pairs (the organisation is the export's).
"""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa

from tow_core.access import Scope
from tow_core.exports import ExportKind, ExportRequest
from tow_core.jobs import JobStatus

_SELECT = (
    "SELECT e.id, e.organisation_id, e.requested_by, e.kind, e.job_id, j.status, j.error, e.file_name, e.size_bytes, "
    "e.created_at, e.completed_at, e.expires_at, e.include_attachment_contents, e.scopes FROM exports e "
    "JOIN jobs j ON j.id = e.job_id"
)


def _request(row: sa.Row) -> ExportRequest:
    id_, org, by, kind, job_id, status, error, file_name, size, created, completed, expires, contents, scopes = row
    held = None if scopes is None else frozenset(Scope(kind_, org, ref) for kind_, ref in scopes)
    return ExportRequest(id_, org, by, ExportKind(kind), job_id, JobStatus(status), error, file_name, size, created,
                         completed, expires, contents, held)


def _scopes_json(scopes: frozenset[Scope]) -> str:
    return json.dumps(sorted([s.kind.value, s.ref_id] for s in scopes))


class PgExportStore:
    def __init__(self, connection: sa.Connection) -> None:
        self._conn = connection

    def _one(self, where: str, **params) -> ExportRequest | None:
        row = self._conn.execute(sa.text(f"{_SELECT} WHERE {where}"), params).first()
        return _request(row) if row else None

    def add(self, *, org_id: int, requested_by: int, kind: ExportKind, job_id: int, now: datetime,
            expires_at: datetime, include_attachment_contents: bool) -> ExportRequest:
        export_id = self._conn.execute(
            sa.text("INSERT INTO exports (organisation_id, requested_by, kind, job_id, created_at, expires_at, "
                    "include_attachment_contents) VALUES (:org, :by, :kind, :job, :now, :expires, :contents) "
                    "RETURNING id"),
            {"org": org_id, "by": requested_by, "kind": kind.value, "job": job_id, "now": now, "expires": expires_at,
             "contents": include_attachment_contents},
        ).scalar_one()
        request = self.get(export_id)
        assert request is not None
        return request

    def get(self, export_id: int) -> ExportRequest | None:
        return self._one("e.id = :id", id=export_id)

    def by_job(self, job_id: int) -> ExportRequest | None:
        return self._one("e.job_id = :job", job=job_id)

    def of_requester(self, user_id: int, *, limit: int) -> list[ExportRequest]:
        rows = self._conn.execute(
            sa.text(f"{_SELECT} WHERE e.requested_by = :by ORDER BY e.created_at DESC, e.id DESC LIMIT :limit"),
            {"by": user_id, "limit": limit},
        ).all()
        return [_request(r) for r in rows]

    def mark_ready(self, export_id: int, *, file_name: str, size_bytes: int, scopes: frozenset[Scope],
                   now: datetime, expires_at: datetime) -> None:
        self._conn.execute(
            sa.text("UPDATE exports SET file_name = :name, size_bytes = :size, scopes = CAST(:scopes AS jsonb), "
                    "completed_at = :now, expires_at = :expires WHERE id = :id"),
            {"name": file_name, "size": size_bytes, "scopes": _scopes_json(scopes), "now": now, "expires": expires_at,
             "id": export_id},
        )

    def expired(self, now: datetime, *, limit: int) -> list[ExportRequest]:
        rows = self._conn.execute(
            sa.text(f"{_SELECT} WHERE e.expires_at <= :now ORDER BY e.expires_at LIMIT :limit FOR UPDATE OF e "
                    "SKIP LOCKED"),
            {"now": now, "limit": limit},
        ).all()
        return [_request(r) for r in rows]

    def delete(self, export_id: int) -> None:
        self._conn.execute(sa.text("DELETE FROM exports WHERE id = :id"), {"id": export_id})
