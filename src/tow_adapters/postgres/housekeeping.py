"""PostgreSQL side of the worker's housekeeping (``tow_core.housekeeping``), on the caller's transaction."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from tow_adapters.postgres.engine import SqlStore


class PgUploadDeletionOutbox(SqlStore):
    """The ``upload_deletions`` outbox filled by the trigger on ``uploads`` (migration 0011)."""

    def queued(self, *, limit: int) -> list[str]:
        return [row[0] for row in self._rows(
            "SELECT storage_name FROM upload_deletions ORDER BY queued_at, storage_name LIMIT :limit "
            "FOR UPDATE SKIP LOCKED", limit=limit)]

    def still_referenced(self, storage_name: str) -> bool:
        return self._row("SELECT 1 FROM uploads WHERE storage_name = :name", name=storage_name) is not None

    def done(self, storage_name: str) -> None:
        self._conn.execute(sa.text("DELETE FROM upload_deletions WHERE storage_name = :name"), {"name": storage_name})


class PgFinishedJobs(SqlStore):
    def purge_finished(self, *, finished_before: datetime, limit: int) -> int:
        # An export's status is read from its job, so a job an export row still names is kept (the export
        # sweep deletes the row, and the next purge the job).
        return self._conn.execute(sa.text(
            "DELETE FROM jobs WHERE id IN (SELECT j.id FROM jobs j WHERE j.status IN ('completed', 'failed') "
            "AND j.finished_at < :before AND NOT EXISTS (SELECT 1 FROM exports e WHERE e.job_id = j.id) "
            "ORDER BY j.finished_at LIMIT :limit FOR UPDATE SKIP LOCKED)"),
            {"before": finished_before, "limit": limit}).rowcount


def recorded_export_file_names(connection: sa.Connection) -> set[str]:
    return {row[0] for row in connection.execute(
        sa.text("SELECT file_name FROM exports WHERE file_name IS NOT NULL"))}
