"""`tow uploads verify`: compare the upload store with the upload rows (SPEC §5 "never a row pointing at
a missing file").

- An *orphan file* has no row: an upload killed between writing its file and committing its row, or
  the file of a deleted upload the job worker has not deleted yet (``tow_core.housekeeping``). Harmless
  (nobody can reach it), but it takes space.
- A *partial file* is a temporary file of a write that never finished (the process was killed).
- A *missing file* is a row whose file is gone: the one thing that must never happen; it can only be
  caused from outside TOW (a deleted or unrestored upload directory), so it is reported, not "fixed".

Files younger than ``grace`` are left alone: they may belong to an upload whose row is about to
commit. ``repair`` moves orphan and partial files into the store's quarantine directory (nothing is
deleted; an operator can inspect and remove them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tow_core.uploads import UploadStore


@dataclass(slots=True)
class IntegrityReport:
    checked_files: int = 0
    checked_rows: int = 0
    orphan_files: list[str] = field(default_factory=list)
    partial_files: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)  # storage names of rows without a file
    skipped_recent: int = 0
    quarantined: list[str] = field(default_factory=list)  # where repaired files went

    @property
    def clean(self) -> bool:
        """Nothing left to do: no missing file, and every orphan/partial file quarantined."""
        unrepaired = len(self.orphan_files) + len(self.partial_files) - len(self.quarantined)
        return not self.missing_files and unrepaired == 0


def verify_uploads(store: UploadStore, row_names: set[str], *, now: datetime, grace: timedelta,
                   repair: bool) -> IntegrityReport:
    """Report orphan, partial and missing files; with ``repair`` quarantine the orphans and partials."""
    report = IntegrityReport(checked_rows=len(row_names))
    seen: set[str] = set()
    for entry in store.entries():
        report.checked_files += 1
        if not entry.partial:
            seen.add(entry.storage_name)
            if entry.storage_name in row_names:
                continue
        if now - entry.modified_at < grace:
            report.skipped_recent += 1
            continue
        (report.partial_files if entry.partial else report.orphan_files).append(entry.storage_name)
        if repair:
            report.quarantined.append(store.quarantine(entry.storage_name, partial=entry.partial))
    report.missing_files = sorted(row_names - seen)
    return report
