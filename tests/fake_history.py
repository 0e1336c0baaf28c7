"""In-memory fakes of the ports docs and tickets add to records (``tow_core.docs``, ``tow_core.tickets``),
mirroring ``tow_adapters.postgres.history`` and migration 0005_docs_and_tickets.

They sit beside an ``InMemoryRecordStore`` (tests/fake_records.py) the way the PostgreSQL tables sit beside
``records``: visibility is that store's (the one read policy), and deleting a record cascades to its
revisions, activity, comments, links and references (ON DELETE CASCADE). Where PostgreSQL would raise a raw
integrity error the adapter does not translate (a duplicate revision version, an empty comment, a
self-link), the fake raises ``ValueError``: in both cases a bug in the calling use case. Values stored as
jsonb (activity old/new) come back as JSON would give them.

PostgreSQL rolls a failed use case's transaction back; the fakes cannot, so ``rolled_back_on_error`` stands
in for that transaction around one call (sequences are not rolled back, as in PostgreSQL).
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from tow_core.access import ScopeKind
from tow_core.docs import Ancestor, Branch, Revision, TreeNode, level_of
from tow_core.errors import Conflict, NotFound
from tow_core.records import Record, RecordSummary, RecordType
from tow_core.tickets import ActivityEntry, Comment, FieldChange, Link, LinkKind

_MAX_DEPTH = 1000  # PgRecordTree's cap on a walk
_MAX_COMMENT = 100_000  # CHECK (length(body) BETWEEN 1 AND 100000)


def _now() -> datetime:
    return datetime.now(UTC)


def summary_of(record: Record) -> RecordSummary:
    return RecordSummary(record.id, record.type, record.display_id, record.title, record.status, record.scope)


def _parent_id(record: Record) -> int | None:
    return record.fields.get("parent_id")


@contextmanager
def rolled_back_on_error(*fakes: object) -> Iterator[None]:
    """One transaction over ``fakes``: if the block raises, every table they hold is as it was before.
    Id counters (``itertools.count``, as PostgreSQL's sequences) keep counting."""
    saved = [(fake, {name: copy.deepcopy(value) for name, value in vars(fake).items()
                     if isinstance(value, dict | list | set) and name != "_ids"}) for fake in fakes]
    try:
        yield
    except BaseException:
        for fake, tables in saved:
            for name, value in tables.items():
                setattr(fake, name, value)
        raise


class _Cascades:
    """Rows that belong to one record and go with it."""

    def forget(self, record_id: int) -> None:
        raise NotImplementedError


class InMemoryDocRevisions(_Cascades):
    def __init__(self, clock: Callable[[], datetime] = _now) -> None:
        self._clock = clock
        self.rows: dict[tuple[int, int], Revision] = {}  # (record_id, version) → revision

    def add(self, before: Record, *, replaced_by: int) -> None:
        if (before.id, before.version) in self.rows:
            raise ValueError("doc_revisions (record_id, version) already exists")
        self.rows[(before.id, before.version)] = Revision(before.version, before.title, before.body,
                                                          before.updated_at, replaced_by, self._clock())

    def list(self, record_id: int, *, before_version: int | None, limit: int) -> list[Revision]:
        found = [r for (rid, version), r in self.rows.items()
                 if rid == record_id and (before_version is None or version < before_version)]
        return sorted(found, key=lambda r: r.version, reverse=True)[:limit]

    def forget(self, record_id: int) -> None:
        self.rows = {key: r for key, r in self.rows.items() if key[0] != record_id}


class InMemoryTicketActivity(_Cascades):
    def __init__(self, clock: Callable[[], datetime] = _now) -> None:
        self._clock = clock
        self._ids = itertools.count(1)
        self.rows: list[tuple[int, ActivityEntry]] = []  # (record_id, entry)

    def add(self, record_id: int, actor_id: int, changes: Sequence[FieldChange], *, ai_applied: bool) -> None:
        at = self._clock()  # one INSERT statement: one now()
        for change in changes:
            stored = FieldChange(change.field, _as_jsonb(change.old), _as_jsonb(change.new))
            self.rows.append((record_id, ActivityEntry(next(self._ids), actor_id, at, stored, ai_applied)))

    def list(self, record_id: int, *, after_id: int | None, limit: int) -> list[ActivityEntry]:
        return [e for rid, e in self.rows if rid == record_id and (after_id is None or e.id > after_id)][:limit]

    def forget(self, record_id: int) -> None:
        self.rows = [(rid, e) for rid, e in self.rows if rid != record_id]


def _as_jsonb(value: object) -> object:
    return json.loads(json.dumps(value))


class InMemoryTicketComments(_Cascades):
    def __init__(self, clock: Callable[[], datetime] = _now) -> None:
        self._clock = clock
        self._ids = itertools.count(1)
        self.rows: dict[int, Comment] = {}

    def add(self, record_id: int, author_id: int, body: str) -> Comment:
        _check_body(body)
        now = self._clock()
        comment = Comment(next(self._ids), record_id, author_id, body, now, now)
        self.rows[comment.id] = comment
        return comment

    def get(self, record_id: int, comment_id: int) -> Comment | None:
        comment = self.rows.get(comment_id)
        return comment if comment is not None and comment.record_id == record_id else None

    def update(self, comment_id: int, body: str) -> Comment:
        _check_body(body)
        self.rows[comment_id] = replace(self.rows[comment_id], body=body, updated_at=self._clock())
        return self.rows[comment_id]

    def delete(self, comment_id: int) -> None:
        self.rows.pop(comment_id, None)

    def list(self, record_id: int, *, after_id: int | None, limit: int) -> list[Comment]:
        return [c for _, c in sorted(self.rows.items())
                if c.record_id == record_id and (after_id is None or c.id > after_id)][:limit]

    def forget(self, record_id: int) -> None:
        self.rows = {i: c for i, c in self.rows.items() if c.record_id != record_id}


def _check_body(body: str) -> None:
    if not 1 <= len(body) <= _MAX_COMMENT:
        raise ValueError("ticket_comments.body violates its CHECK constraint")


@dataclass(frozen=True, slots=True)
class _LinkRow:
    id: int
    organisation_id: int
    source_id: int
    target_id: int
    kind: LinkKind
    created_by: int | None
    created_at: datetime


class InMemoryTicketLinks(_Cascades):
    """Visibility of a link's other end is ``records``' (the one read policy)."""

    def __init__(self, records, clock: Callable[[], datetime] = _now) -> None:
        self._records = records
        self._clock = clock
        self._ids = itertools.count(1)
        self.rows: dict[int, _LinkRow] = {}

    def add(self, org_id: int, source_id: int, target_id: int, kind: LinkKind, created_by: int) -> int:
        if source_id == target_id:
            raise ValueError("ticket_links CHECK (source_id <> target_id)")
        kind = LinkKind(kind)
        for row in self.rows.values():
            same = (row.source_id, row.target_id, row.kind) == (source_id, target_id, kind)
            symmetric = kind is LinkKind.RELATES_TO and row.kind is kind and {row.source_id, row.target_id} == {
                source_id, target_id}
            if same or symmetric:
                raise Conflict("these tickets are already linked that way", field="target")
        row = _LinkRow(next(self._ids), org_id, source_id, target_id, kind, created_by, self._clock())
        self.rows[row.id] = row
        return row.id

    def readable(self, principal_id: int, org_id: int, record_id: int, *, link_id: int | None = None
                 ) -> list[Link]:
        links = []
        for row in sorted(self.rows.values(), key=lambda r: r.id):
            if row.organisation_id != org_id or record_id not in (row.source_id, row.target_id):
                continue
            if link_id is not None and row.id != link_id:
                continue
            outgoing = row.source_id == record_id
            other = self._records.readable(principal_id, org_id, row.target_id if outgoing else row.source_id)
            if other is not None:
                links.append(Link(row.id, row.kind, outgoing, summary_of(other), row.created_by, row.created_at))
        return links

    def delete(self, link_id: int) -> None:
        self.rows.pop(link_id, None)

    def forget(self, record_id: int) -> None:
        self.rows = {i: r for i, r in self.rows.items() if record_id not in (r.source_id, r.target_id)}


class InMemoryRecordTree:
    """Parent links over ``records.rows``; ``delete`` removes the record with everything that cascades."""

    def __init__(self, records, *cascades: _Cascades) -> None:
        self._records = records
        self._cascades = cascades

    def _in_org(self, org_id: int, record_id: int | None) -> Record | None:
        record = self._records.rows.get(record_id) if record_id is not None else None
        return record if record is not None and record.organisation_id == org_id else None

    def ancestors(self, principal_id: int, org_id: int, record_id: int) -> list[Ancestor]:
        found, current = [], self._in_org(org_id, record_id)
        while current is not None and len(found) < _MAX_DEPTH:
            parent = self._in_org(org_id, _parent_id(current))
            if parent is None:
                break
            readable = self._records.readable(principal_id, org_id, parent.id) is not None
            found.append(Ancestor(parent.id, summary_of(parent) if readable else None))
            current = parent
        return found

    def descendants_for_update(self, org_id: int, record_id: int) -> list[Record]:
        below: dict[int, Record] = {}
        frontier = {record_id}
        for _ in range(_MAX_DEPTH):
            children = {r.id for r in self._records.rows.values()
                        if r.organisation_id == org_id and _parent_id(r) in frontier}
            frontier = children - below.keys()
            if not frontier:
                break
            below.update({i: self._records.rows[i] for i in frontier})
        return [below[i] for i in sorted(below)]

    def has_children(self, org_id: int, record_id: int) -> bool:
        return any(r.organisation_id == org_id and _parent_id(r) == record_id for r in self._records.rows.values())

    def readable_docs(self, principal_id: int, org_id: int, project_id: int | None) -> list[TreeNode]:
        docs = [r for r in self._records.rows.values()
                if r.organisation_id == org_id and r.type is RecordType.DOC
                and (project_id is None or (r.scope.kind is ScopeKind.PROJECT and r.scope.ref_id == project_id))
                and self._records.readable(principal_id, org_id, r.id) is not None]
        docs.sort(key=lambda r: (r.title.lower(), r.id))
        return [TreeNode(summary_of(r), _parent_id(r)) for r in docs]

    def readable_doc_level(self, principal_id: int, org_id: int, project_id: int | None, parent_id: int | None,
                           limit: int | None) -> list[Branch]:
        return level_of(self.readable_docs(principal_id, org_id, project_id), parent_id)[:limit]

    def delete(self, org_id: int, record_id: int) -> None:
        record = self._in_org(org_id, record_id)
        if record is None:
            raise NotFound("record not found")
        del self._records.rows[record_id]
        for cascade in self._cascades:
            cascade.forget(record_id)
        self._forget_references(record)

    def _forget_references(self, record: Record) -> None:
        """record_references rows from or to the record go (ON DELETE CASCADE on both ends); the store
        keeps targets as ids or as display IDs, depending on its version."""
        refs = self._records.references
        refs.pop(record.id, None)
        for source, targets in list(refs.items()):
            refs[source] = type(targets)(t for t in targets if t not in (record.id, record.display_id))
