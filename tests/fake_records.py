"""In-memory fakes of ``RecordStore`` and ``MemoryDiffStore``, kept honest by the suites in
tests/contract/test_record_store.py and tests/contract/test_memory_diff_store.py, which run the same
behaviour against them and the PostgreSQL adapters.

Visibility is the pure policy (``tow_core.access.can_read_scope``) over an ``InMemoryDirectory``'s
principal — the same rule table the SQL predicate is generated from. Like the PostgreSQL stores they
hand out frozen values, bump versions on save, refuse stale saves with Conflict, never delete, and refuse
what the schema's constraints refuse with the core error the adapter maps it to (InvalidInput, or
Conflict for a display ID handed out twice). Cursors are opaque and validated like the adapters' (the
same base64 JSON keys), so a cursor the store did not issue is InvalidInput on both.

Keyword search is a stand-in for PostgreSQL's: the query's words (PostgreSQL's English stop words
dropped) must all occur in the title or body, matched case-insensitively but without stemming; the rank
weighs a title occurrence 1.0 and a body occurrence 0.4, like ``setweight`` A over B.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tests.fakes import InMemoryDirectory
from tow_core.access import Scope, ScopeKind, can_read_scope, can_write_scope
from tow_core.errors import Conflict, InvalidInput, NoSearchTerms, NotFound
from tow_core.memory_diffs import DiffStatus, MemoryDiff, NewMemoryDiff
from tow_core.records import (
    BARE_PREFIX_PATTERN,
    DISPLAY_ID_PATTERN,
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    DisplayId,
    NewRecord,
    Page,
    Record,
    RecordQuery,
    RecordSummary,
    RecordType,
    SearchHit,
)

# share/postgresql/tsearch_data/english.stop of the bundled PostgreSQL 18 (what 'english' drops).
_ENGLISH_STOP = """
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
herself it its itself they them their theirs themselves what which who whom this that these those am is are
was were be been being have has had having do does did doing a an the and but if or because as until while
of at by for with about against between into through during before after above below to from up down in out
on off over under again further then once here there when where why how all any both each few more most
other some such no nor not only own same so than too very s t can will just don should now
"""
_STOP_WORDS = frozenset(_ENGLISH_STOP.split())
_WORD = re.compile(r"[^\W_]+")
# The CHECK constraints of migration 0003 on records.
_PREFIX = re.compile(r"[A-Z0-9]{2,10}")
_TITLE_LENGTH = range(1, 501)
_EVERYTHING = RecordQuery()


def _now() -> datetime:
    return datetime.now(UTC)


# --- cursors: the adapters' encoding (base64url JSON keys), validated the same way ---------------------


def _encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _bad_cursor() -> InvalidInput:
    return InvalidInput("cursor is not one this server issued; start again without it", field="cursor")


def _decode_cursor(cursor: str, length: int) -> list[Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise _bad_cursor() from exc
    if not (isinstance(key, list) and len(key) == length and type(key[-1]) is int):
        raise _bad_cursor()
    return key


def _aware(text: Any) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise _bad_cursor() from exc
    if at.tzinfo is None:
        raise _bad_cursor()
    return at


def _list_cursor(cursor: str) -> tuple[datetime, int]:
    updated, id_ = _decode_cursor(cursor, 2)
    return _aware(updated), id_


def _search_cursor(cursor: str) -> tuple[float, int]:
    rank, id_ = _decode_cursor(cursor, 2)
    if isinstance(rank, bool) or not isinstance(rank, int | float) or not math.isfinite(rank):
        raise _bad_cursor()
    return float(rank), id_


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise InvalidInput("limit must be at least 1", field="limit")


def _page(items: list, limit: int, key: Callable[[Any], list[Any]]) -> Page:
    shown = tuple(items[:limit])
    return Page(shown, _encode_cursor(key(shown[-1])) if len(items) > limit else None)


# --- keyword search stand-in ----------------------------------------------------------------------------


def _terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP_WORDS]


def _rank(record: Record, terms: list[str]) -> float:
    title, body = _WORD.findall(record.title.lower()), _WORD.findall(record.body.lower())
    if not all(t in title or t in body for t in terms):
        return 0.0
    return sum(1.0 * title.count(t) + 0.4 * body.count(t) for t in terms)


def _headline(record: Record, terms: list[str]) -> str:
    def mark(match: re.Match) -> str:
        word = match.group(0)
        return f"{HIGHLIGHT_START}{word}{HIGHLIGHT_END}" if word.lower() in terms else word
    return _WORD.sub(mark, f"{record.title} — {record.body}")


def _summary(record: Record) -> RecordSummary:
    return RecordSummary(record.id, record.type, record.display_id, record.title, record.status, record.scope)


def _by_display_id(records: Iterable[Record]) -> list[RecordSummary]:
    return [_summary(r) for r in sorted(records, key=lambda r: (r.display_id.prefix, r.display_id.number))]


def _matches(query: RecordQuery, record: Record) -> bool:
    return ((not query.types or record.type in query.types)
            and (not query.statuses or record.status in query.statuses)
            and (query.project_id is None
                 or (record.scope.kind is ScopeKind.PROJECT and record.scope.ref_id == query.project_id))
            and (query.assignee_id is None or record.fields.get("assignee_id") == query.assignee_id))


def _check_scope(scope: Scope, org_id: int, what: str) -> None:
    if scope.organisation_id != org_id:
        raise InvalidInput(f"a {what}'s scope must belong to the {what}'s organisation", field="scope")


class _Readable:
    def __init__(self, directory: InMemoryDirectory) -> None:
        self._directory = directory

    def _can_read(self, principal_id: int, scope: Scope, *, write: bool = False) -> bool:
        principal = self._directory.principal(principal_id)
        project = None
        if scope.kind is ScopeKind.PROJECT:
            found = self._directory.project(scope.ref_id)
            project = found.access if found is not None else None
            if project is None:
                return False
        allowed = can_write_scope if write else can_read_scope
        return principal is not None and allowed(principal, scope, project)

    def _can_write(self, principal_id: int, scope: Scope) -> bool:
        return self._can_read(principal_id, scope, write=True)

    def _check_references(self, org_id: int, user_ids: Iterable[int | None], what: str) -> None:
        """The foreign keys to organisations and users (PostgreSQL refuses the row: InvalidInput)."""
        if self._directory.organisation(org_id) is None or any(
                u is not None and self._directory.user(u) is None for u in user_ids):
            raise InvalidInput(f"{what} names an organisation or author that does not exist")


class InMemoryRecordStore(_Readable):
    def __init__(self, directory: InMemoryDirectory, clock: Callable[[], datetime] = _now) -> None:
        super().__init__(directory)
        self._clock = clock
        self._ids = itertools.count(1)
        self._sequences: dict[tuple[int, str], int] = {}
        self.rows: dict[int, Record] = {}
        self.references: dict[int, set[int]] = {}  # source record id → target record ids

    # --- numbers and writes -------------------------------------------------------------------------

    def allocate_number(self, org_id: int, prefix: str) -> int:
        self._sequences[(org_id, prefix)] = self._sequences.get((org_id, prefix), 0) + 1
        return self._sequences[(org_id, prefix)]

    def add(self, new: NewRecord, number: int) -> Record:
        _check_scope(new.scope, new.organisation_id, "record")
        what = f"{new.prefix}-{number}"
        if any(r.organisation_id == new.organisation_id and r.display_id == DisplayId(new.prefix, number)
               for r in self.rows.values()):
            raise Conflict(f"{what} already exists", field="display_id")
        self._check_references(new.organisation_id, [new.author_id], what)
        if not _PREFIX.fullmatch(new.prefix) or number < 1 or len(new.title) not in _TITLE_LENGTH:
            raise InvalidInput(f"{what} is not valid: it violates a check constraint")
        now = self._clock()
        record = Record(next(self._ids), new.organisation_id, RecordType(new.type), DisplayId(new.prefix, number),
                        new.scope, new.title, new.body, new.status, new.author_id, now, now, 1, dict(new.fields))
        self.rows[record.id] = record
        return record

    def for_update(self, org_id: int, record_id: int) -> Record | None:
        record = self.rows.get(record_id)
        return record if record is not None and record.organisation_id == org_id else None

    def active_snapshots_for_update(self, org_id: int, snapshot_type: str, scope: Scope) -> list[Record]:
        return sorted((r for r in self.rows.values()
                       if r.organisation_id == org_id and r.type is RecordType.SNAPSHOT and r.status == "active"
                       and r.fields.get("snapshot_type") == snapshot_type and r.scope == scope),
                      key=lambda r: r.id)

    def save(self, record: Record, *, expected_version: int) -> Record:
        """Only the mutable parts (scope, title, body, status, fields) are taken from ``record``."""
        _check_scope(record.scope, record.organisation_id, "record")
        current = self.for_update(record.organisation_id, record.id)
        if current is None:
            raise NotFound("record not found")
        if current.version != expected_version:
            raise Conflict(f"{record.display_id} changed since you loaded it: current version is {current.version}",
                           field="version")
        if len(record.title) not in _TITLE_LENGTH:
            raise InvalidInput(f"{record.display_id} is not valid: it violates a check constraint")
        saved = replace(current, scope=record.scope, title=record.title, body=record.body, status=record.status,
                        fields=dict(record.fields), version=current.version + 1, updated_at=self._clock())
        self.rows[record.id] = saved
        return saved

    def set_references(self, org_id: int, record_id: int, targets: list[DisplayId]) -> None:
        """Targets resolve now, inside the source's organisation; unknown IDs and the record itself drop out."""
        source = self.for_update(org_id, record_id)
        if source is None:
            return
        wanted = set(targets)
        self.references[record_id] = {r.id for r in self.rows.values() if r.organisation_id == org_id
                                      and r.display_id in wanted and r.id != record_id}

    # --- reads ----------------------------------------------------------------------------------------

    def _readable_rows(self, principal_id: int, org_id: int, query: RecordQuery = _EVERYTHING) -> list[Record]:
        return [r for r in self.rows.values() if r.organisation_id == org_id and _matches(query, r)
                and self._can_read(principal_id, r.scope)
                and (not query.writable or self._can_write(principal_id, r.scope))]

    def readable(self, principal_id: int, org_id: int, record_id: int) -> Record | None:
        record = self.rows.get(record_id)
        ok = record is not None and record.organisation_id == org_id and self._can_read(principal_id, record.scope)
        return record if ok else None

    def readers_among(self, org_id: int, record_id: int, user_ids: Sequence[int], *,
                      write: bool = False) -> frozenset[int]:
        record = self.rows.get(record_id)
        if record is None or record.organisation_id != org_id:
            return frozenset()
        return frozenset(u for u in user_ids if self._can_read(u, record.scope, write=write))

    def readable_by_display_id(self, principal_id: int, org_id: int, display_id: DisplayId) -> Record | None:
        found = next((r for r in self.rows.values() if r.organisation_id == org_id and r.display_id == display_id),
                     None)
        return self.readable(principal_id, org_id, found.id) if found else None

    def list_readable(self, principal_id: int, org_id: int, query: RecordQuery, *, cursor: str | None,
                      limit: int) -> Page[Record]:
        _check_limit(limit)
        after = _list_cursor(cursor) if cursor is not None else None
        found = sorted(((r.updated_at, r.id, r) for r in self._readable_rows(principal_id, org_id, query)
                        if after is None or (r.updated_at, r.id) < after), key=lambda t: t[:2], reverse=True)
        return _page([r for *_, r in found], limit, lambda r: [r.updated_at.isoformat(), r.id])

    def count_readable(self, principal_id: int, org_id: int, query: RecordQuery) -> int:
        return len(self._readable_rows(principal_id, org_id, query))

    def search_readable(self, principal_id: int, org_id: int, text: str, query: RecordQuery, *,
                        cursor: str | None, limit: int) -> Page[SearchHit]:
        _check_limit(limit)
        terms = _terms(text)
        if not text.strip() or (not terms and cursor is None):
            raise NoSearchTerms()
        after = _search_cursor(cursor) if cursor is not None else None
        ranked = [(_rank(r, terms), r) for r in self._readable_rows(principal_id, org_id, query)] if terms else []
        hits = sorted((SearchHit(_summary(r), _headline(r, terms), rank) for rank, r in ranked
                       if rank > 0 and (after is None or (rank, r.id) < after)),
                      key=lambda h: (h.rank, h.summary.id), reverse=True)
        return _page(hits, limit, lambda h: [h.rank, h.summary.id])

    def references_readable(self, principal_id: int, org_id: int, record_id: int) -> list[RecordSummary]:
        targets = (self.rows[t] for t in self.references.get(record_id, ()))
        return _by_display_id(r for r in targets if r.organisation_id == org_id
                              and self._can_read(principal_id, r.scope))

    def backlinks_readable(self, principal_id: int, org_id: int, record_id: int) -> list[RecordSummary]:
        return _by_display_id(self.rows[s] for s, targets in self.references.items() if record_id in targets
                              and self.rows[s].organisation_id == org_id
                              and self._can_read(principal_id, self.rows[s].scope))

    def lookup_readable(self, principal_id: int, org_id: int, text: str, *, limit: int) -> list[RecordSummary]:
        _check_limit(limit)
        match = DISPLAY_ID_PATTERN.fullmatch(text.strip().upper())
        exact = DisplayId(match.group(1), int(match.group(2))) if match else None
        bare = BARE_PREFIX_PATTERN.fullmatch(text.strip().upper()) if exact is None else None
        of_prefix = bare.group(1) if bare else None
        prefix = text.strip().lower()
        found = [r for r in self._readable_rows(principal_id, org_id)
                 if r.display_id == exact or r.display_id.prefix == of_prefix or r.title.lower().startswith(prefix)]
        found.sort(key=lambda r: (r.display_id != exact and r.display_id.prefix != of_prefix,
                                  -r.display_id.number if r.display_id.prefix == of_prefix else 0,
                                  r.title.lower(), r.id))
        return [_summary(r) for r in found[:limit]]


class InMemoryMemoryDiffStore(_Readable):
    def __init__(self, directory: InMemoryDirectory, clock: Callable[[], datetime] = _now) -> None:
        super().__init__(directory)
        self._clock = clock
        self._ids = itertools.count(1)
        self.rows: dict[int, MemoryDiff] = {}

    def add(self, new: NewMemoryDiff) -> MemoryDiff:
        _check_scope(new.scope, new.organisation_id, "diff")
        self._check_references(new.organisation_id, [new.author_id], "memory diff")
        if not new.operations:  # CHECK (jsonb_array_length(operations) >= 1)
            raise InvalidInput("memory diff is not valid: it has no operations")
        diff = MemoryDiff(next(self._ids), new.organisation_id, new.scope, new.source, new.source_id, new.rationale,
                          new.author_id, tuple(new.operations), DiffStatus.PENDING, self._clock(),
                          agent_run_id=new.agent_run_id)
        self.rows[diff.id] = diff
        return diff

    def readable(self, principal_id: int, org_id: int, diff_id: int) -> MemoryDiff | None:
        diff = self.for_update(org_id, diff_id)
        return diff if diff is not None and self._can_read(principal_id, diff.scope) else None

    def reviewers_among(self, org_id: int, diff_id: int, user_ids: Sequence[int]) -> frozenset[int]:
        diff = self.for_update(org_id, diff_id)
        return frozenset() if diff is None else frozenset(
            u for u in user_ids if self._can_read(u, diff.scope) and self._can_write(u, diff.scope))

    def for_update(self, org_id: int, diff_id: int) -> MemoryDiff | None:
        diff = self.rows.get(diff_id)
        return diff if diff is not None and diff.organisation_id == org_id else None

    def save_decision(self, diff: MemoryDiff) -> MemoryDiff:
        """Only the decision (status, reviewer, decided_at, note, outcomes) is taken from ``diff``."""
        current = self.for_update(diff.organisation_id, diff.id)
        if current is None or current.status is not DiffStatus.PENDING:
            raise Conflict("this diff was decided meanwhile; only pending diffs can be decided", field="status")
        self._check_references(diff.organisation_id, [diff.reviewer_id], "memory diff")
        if (diff.status is DiffStatus.PENDING) != (diff.decided_at is None):
            raise InvalidInput("memory diff is not valid: a decided diff has a decision time, a pending one none")
        saved = replace(current, status=diff.status, reviewer_id=diff.reviewer_id, decided_at=diff.decided_at,
                        review_note=diff.review_note, outcomes=tuple(diff.outcomes))
        self.rows[diff.id] = saved
        return saved

    def list_readable(self, principal_id: int, org_id: int, statuses: frozenset[DiffStatus], *,
                      cursor: str | None, limit: int) -> Page[MemoryDiff]:
        """Pending first, then newest first; the cursor is the adapter's [decided, created_at, id] key."""
        _check_limit(limit)
        after = None
        if cursor is not None:
            decided, at, id_ = _decode_cursor(cursor, 3)
            if decided not in (0, 1):
                raise _bad_cursor()
            after = _sort_key(decided, _aware(at), id_)
        found = sorted((d for d in self.rows.values() if d.organisation_id == org_id
                        and (not statuses or d.status in statuses) and self._can_read(principal_id, d.scope)
                        and (after is None or _diff_key(d) > after)), key=_diff_key)
        return _page(found, limit, lambda d: [int(d.status is not DiffStatus.PENDING), d.created_at.isoformat(), d.id])


    def _pending_writable(self, principal_id: int, org_id: int, project_id: int | None) -> list[MemoryDiff]:
        return sorted((d for d in self.rows.values() if d.organisation_id == org_id
                       and d.status is DiffStatus.PENDING and self._can_read(principal_id, d.scope)
                       and self._can_write(principal_id, d.scope)
                       and (project_id is None or (d.scope.kind is ScopeKind.PROJECT and d.scope.ref_id == project_id))),
                      key=lambda d: (d.created_at, d.id), reverse=True)

    def list_pending_writable(self, principal_id: int, org_id: int, project_id: int | None, *,
                              limit: int) -> list[MemoryDiff]:
        _check_limit(limit)
        return self._pending_writable(principal_id, org_id, project_id)[:limit]

    def count_pending_writable(self, principal_id: int, org_id: int, project_id: int | None) -> int:
        return len(self._pending_writable(principal_id, org_id, project_id))


def _sort_key(decided: int, created_at: datetime, id_: int) -> tuple:
    return (decided, -created_at.timestamp(), -id_)


def _diff_key(diff: MemoryDiff) -> tuple:
    return _sort_key(int(diff.status is not DiffStatus.PENDING), diff.created_at, diff.id)
