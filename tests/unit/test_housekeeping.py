"""The worker's housekeeping rules over in-memory fakes: the order of file and outbox deletion, what is
kept, and which export files count as orphans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tow_core.housekeeping import (
    ORPHAN_EXPORT_GRACE,
    StoredExportFile,
    delete_orphan_export_files,
    delete_queued_upload_files,
    purge_finished_jobs,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class Outbox:
    def __init__(self, queued: list[str], referenced: set[str] = frozenset()) -> None:
        self.entries, self.referenced, self.events = list(queued), set(referenced), []

    def queued(self, *, limit: int) -> list[str]:
        return self.entries[:limit]

    def still_referenced(self, storage_name: str) -> bool:
        return storage_name in self.referenced

    def done(self, storage_name: str) -> None:
        self.events.append(("done", storage_name))
        self.entries.remove(storage_name)


class Disk:
    def __init__(self, outbox: Outbox, files: set[str], broken: set[str] = frozenset()) -> None:
        self.outbox, self.files, self.broken = outbox, set(files), set(broken)

    def delete(self, storage_name: str) -> None:
        if storage_name in self.broken:
            raise PermissionError(f"cannot remove {storage_name}")
        self.outbox.events.append(("file deleted", storage_name))
        self.files.discard(storage_name)  # idempotent: a file already gone is fine


def test_the_file_goes_before_its_outbox_entry_and_a_missing_file_is_fine():
    outbox = Outbox(["a" * 32, "b" * 32])
    disk = Disk(outbox, {"a" * 32})  # b's file went in a run that died before its outbox entry did
    assert delete_queued_upload_files(outbox, disk) == 2
    assert outbox.events == [("file deleted", "a" * 32), ("done", "a" * 32), ("file deleted", "b" * 32),
                             ("done", "b" * 32)]
    assert disk.files == set() and outbox.entries == []


def test_a_file_a_row_names_again_is_kept_and_a_file_that_cannot_go_stays_queued():
    outbox = Outbox(["a" * 32, "b" * 32, "c" * 32], referenced={"a" * 32})
    disk = Disk(outbox, {"a" * 32, "b" * 32, "c" * 32}, broken={"b" * 32})
    assert delete_queued_upload_files(outbox, disk) == 2
    assert disk.files == {"a" * 32, "b" * 32} and outbox.entries == ["b" * 32]


def test_finished_jobs_are_purged_before_now_minus_the_retention():
    seen = {}

    class Jobs:
        def purge_finished(self, *, finished_before: datetime, limit: int) -> int:
            seen.update(before=finished_before, limit=limit)
            return 3

    assert purge_finished_jobs(Jobs(), now=NOW, retention=timedelta(hours=48)) == 3
    assert seen["before"] == NOW - timedelta(hours=48)


def test_only_unrecorded_or_temporary_export_files_older_than_the_grace_are_orphans():
    old, young = NOW - ORPHAN_EXPORT_GRACE, NOW - ORPHAN_EXPORT_GRACE + timedelta(seconds=1)
    stored = [StoredExportFile("export-1-aa.json", old, False), StoredExportFile("export-2-bb.json", old, False),
              StoredExportFile("export-3-cc.json", young, False), StoredExportFile(".partial-x.tmp", old, True),
              StoredExportFile(".partial-y.tmp", young, True)]
    removed = []

    class Directory:
        def stored(self):
            return stored

        def remove(self, file):
            removed.append(file.name)

    names = delete_orphan_export_files(Directory(), {"export-1-aa.json"}, now=NOW)
    assert names == removed == ["export-2-bb.json", ".partial-x.tmp"]
