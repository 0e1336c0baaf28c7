"""Housekeeping the job worker does between jobs (follow-ups of issue 5, SPEC §5).

Rules:
- *deleted means deleted*: the file of a deleted upload (deleted itself, or with its record, doc
  subtree or organisation) is removed from disk after the deletion commits. The database queues the
  storage name in the same transaction as the row deletion (an outbox, see migration 0011);
  ``delete_queued_upload_files`` deletes the file first and the outbox entry second, so a crash in
  between only repeats an idempotent deletion, and a rolled-back deletion never queues anything;
- finished jobs (completed or failed) are purged once they finished longer ago than the retention,
  unless an export row still names them (an export's status is its job's);
- an export file no export row names — a worker killed after writing it but before recording it — is
  deleted once it is older than ``grace``; so is a temporary file of an export that stopped being
  written that long ago. Younger files are left alone: they may belong to a job still running.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

ORPHAN_EXPORT_GRACE = timedelta(hours=1)

log = logging.getLogger("tow.housekeeping")


class UploadDeletionOutbox(Protocol):
    """Storage names of deleted uploads whose file is still to be removed, on the caller's transaction."""

    def queued(self, *, limit: int) -> list[str]:
        """The oldest queued names, locked for the caller (other workers skip them)."""
        ...

    def still_referenced(self, storage_name: str) -> bool:
        """Whether an upload row names this file again (a restore put it back): then it must stay."""
        ...

    def done(self, storage_name: str) -> None: ...


class FileRemover(Protocol):
    def delete(self, storage_name: str) -> None:
        """Idempotent: a file already gone is not an error."""
        ...


def delete_queued_upload_files(outbox: UploadDeletionOutbox, files: FileRemover, *, limit: int = 500) -> int:
    """Delete the files of deleted uploads (file first, outbox entry second); returns how many went.
    A file that cannot be deleted (permissions, a failing disk) stays queued for the next run without
    holding up the others."""
    deleted = 0
    for name in outbox.queued(limit=limit):
        if not outbox.still_referenced(name):
            try:
                files.delete(name)
            except OSError as exc:
                log.warning("could not delete the file of deleted upload %s (kept queued): %s", name, exc)
                continue
        outbox.done(name)
        deleted += 1
    return deleted


class FinishedJobs(Protocol):
    def purge_finished(self, *, finished_before: datetime, limit: int) -> int:
        """Delete completed/failed jobs finished before the cutoff that no export names; returns how many."""
        ...


def purge_finished_jobs(jobs: FinishedJobs, *, now: datetime, retention: timedelta, limit: int = 1000) -> int:
    return jobs.purge_finished(finished_before=now - retention, limit=limit)


@dataclass(frozen=True, slots=True)
class StoredExportFile:
    name: str
    modified_at: datetime
    temporary: bool


class ExportDirectory(Protocol):
    def stored(self) -> Iterable[StoredExportFile]: ...
    def remove(self, file: StoredExportFile) -> None: ...


def delete_orphan_export_files(directory: ExportDirectory, recorded_names: set[str], *, now: datetime,
                               grace: timedelta = ORPHAN_EXPORT_GRACE) -> list[str]:
    """Delete export files no export row names (and stale temporary files) older than ``grace``."""
    removed = []
    for file in directory.stored():
        if (file.temporary or file.name not in recorded_names) and now - file.modified_at >= grace:
            directory.remove(file)
            removed.append(file.name)
    return removed
