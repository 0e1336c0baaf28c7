"""In-memory fakes of ``RecordStore`` (the part memory diffs use) and ``MemoryDiffStore``.

Visibility is the pure policy (``tow_core.access.can_read_scope``) over an ``InMemoryDirectory``'s
principal — the same rule table the SQL predicate is generated from. Like the PostgreSQL stores they
hand out frozen values, bump versions on save, refuse stale saves with Conflict and never delete.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from tests.fakes import InMemoryDirectory
from tow_core.access import Scope, ScopeKind, can_read_scope
from tow_core.errors import Conflict, InvalidInput, NotFound
from tow_core.memory_diffs import DiffStatus, MemoryDiff, NewMemoryDiff
from tow_core.records import DisplayId, NewRecord, Page, Record


def _now() -> datetime:
    return datetime.now(UTC)


class _Readable:
    def __init__(self, directory: InMemoryDirectory) -> None:
        self._directory = directory

    def _can_read(self, principal_id: int, scope: Scope) -> bool:
        principal = self._directory.principal(principal_id)
        project = None
        if scope.kind is ScopeKind.PROJECT:
            found = self._directory.project(scope.ref_id)
            project = found.access if found is not None else None
            if project is None:
                return False
        return principal is not None and can_read_scope(principal, scope, project)


class InMemoryRecordStore(_Readable):
    def __init__(self, directory: InMemoryDirectory, clock: Callable[[], datetime] = _now) -> None:
        super().__init__(directory)
        self._clock = clock
        self._ids = itertools.count(1)
        self._sequences: dict[tuple[int, str], int] = {}
        self.rows: dict[int, Record] = {}
        self.references: dict[int, list[DisplayId]] = {}

    def allocate_number(self, org_id: int, prefix: str) -> int:
        self._sequences[(org_id, prefix)] = self._sequences.get((org_id, prefix), 0) + 1
        return self._sequences[(org_id, prefix)]

    def add(self, new: NewRecord, number: int) -> Record:
        if new.scope.organisation_id != new.organisation_id:
            raise InvalidInput("a record's scope must belong to the record's organisation", field="scope")
        now = self._clock()
        record = Record(next(self._ids), new.organisation_id, new.type, DisplayId(new.prefix, number), new.scope,
                        new.title, new.body, new.status, new.author_id, now, now, 1, dict(new.fields))
        self.rows[record.id] = record
        return record

    def readable(self, principal_id: int, org_id: int, record_id: int) -> Record | None:
        record = self.rows.get(record_id)
        ok = record is not None and record.organisation_id == org_id and self._can_read(principal_id, record.scope)
        return record if ok else None

    def readable_by_display_id(self, principal_id: int, org_id: int, display_id: DisplayId) -> Record | None:
        found = next((r for r in self.rows.values() if r.organisation_id == org_id and r.display_id == display_id),
                     None)
        return self.readable(principal_id, org_id, found.id) if found else None

    def for_update(self, org_id: int, record_id: int) -> Record | None:
        record = self.rows.get(record_id)
        return record if record is not None and record.organisation_id == org_id else None

    def save(self, record: Record, *, expected_version: int) -> Record:
        current = self.rows.get(record.id)
        if current is None:
            raise NotFound("record not found")
        if current.version != expected_version:
            raise Conflict(f"{record.display_id} changed since you loaded it: current version is {current.version}",
                           field="version")
        saved = replace(record, version=current.version + 1, updated_at=self._clock(), fields=dict(record.fields))
        self.rows[record.id] = saved
        return saved

    def set_references(self, org_id: int, record_id: int, targets: list[DisplayId]) -> None:
        self.references[record_id] = list(targets)


class InMemoryMemoryDiffStore(_Readable):
    def __init__(self, directory: InMemoryDirectory, clock: Callable[[], datetime] = _now) -> None:
        super().__init__(directory)
        self._clock = clock
        self._ids = itertools.count(1)
        self.rows: dict[int, MemoryDiff] = {}

    def add(self, new: NewMemoryDiff) -> MemoryDiff:
        diff = MemoryDiff(next(self._ids), new.organisation_id, new.scope, new.source, new.source_id, new.rationale,
                          new.author_id, tuple(new.operations), DiffStatus.PENDING, self._clock())
        self.rows[diff.id] = diff
        return diff

    def readable(self, principal_id: int, org_id: int, diff_id: int) -> MemoryDiff | None:
        diff = self.for_update(org_id, diff_id)
        return diff if diff is not None and self._can_read(principal_id, diff.scope) else None

    def for_update(self, org_id: int, diff_id: int) -> MemoryDiff | None:
        diff = self.rows.get(diff_id)
        return diff if diff is not None and diff.organisation_id == org_id else None

    def save_decision(self, diff: MemoryDiff) -> MemoryDiff:
        current = self.rows.get(diff.id)
        if current is None or current.status is not DiffStatus.PENDING:
            raise Conflict("this diff was decided meanwhile; only pending diffs can be decided", field="status")
        self.rows[diff.id] = diff
        return diff

    def list_readable(self, principal_id: int, org_id: int, statuses: frozenset[DiffStatus], *,
                      cursor: str | None, limit: int) -> Page[MemoryDiff]:
        def key(d: MemoryDiff) -> tuple:
            return (d.status is not DiffStatus.PENDING, -d.created_at.timestamp(), -d.id)

        found = sorted((d for d in self.rows.values() if d.organisation_id == org_id
                        and (not statuses or d.status in statuses) and self._can_read(principal_id, d.scope)), key=key)
        start = int(cursor) if cursor else 0
        page = found[start:start + limit]
        return Page(tuple(page), str(start + limit) if len(found) > start + limit else None)
