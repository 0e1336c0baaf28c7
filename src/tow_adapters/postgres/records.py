"""PgRecordStore: records, display-ID sequences, references and keyword search in PostgreSQL.

Runs on the caller's connection (one transaction per use case). Every ``*_readable`` method is one
statement whose WHERE clause contains ``visible_predicate`` bound to ``:principal_id`` (SPEC §2 "One
predicate"), so filtering, ordering and LIMIT happen together: never a superset, never a short page,
never a count of rows the principal may not know exist.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tow_adapters.postgres.engine import SqlStore
from tow_adapters.postgres.visibility import PRINCIPAL_PARAM, visible_predicate
from tow_core.access import Scope, ScopeKind
from tow_core.errors import Conflict, InvalidInput, NoSearchTerms, NotFound
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

_COLUMNS = (
    "r.id, r.organisation_id, r.type, r.prefix, r.number, r.scope_kind, r.scope_ref, r.title, r.body, r.status, "
    "r.author_id, r.created_at, r.updated_at, r.version, r.fields"
)
_SUMMARY_COLUMNS = "r.id, r.organisation_id, r.type, r.prefix, r.number, r.scope_kind, r.scope_ref, r.title, r.status"
_VISIBLE = visible_predicate("r")
# The same predicate for each user of an outer list ``c(user_id)`` (``readers_among``).
_READERS = visible_predicate("r", principal="c.user_id")
_READERS_WRITE = visible_predicate("r", write=True, principal="c.user_id")
_WRITABLE = visible_predicate("r", write=True)

# ts_headline options: the highlight markers come from the core so the HTTP layer can trust them.
_HEADLINE_OPTIONS = (
    f"StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_END}, MaxFragments=2, MaxWords=30, MinWords=10"
)

_UNIQUE_VIOLATION = "23505"
_FOREIGN_KEY_VIOLATION = "23503"


# --- rows -> core types --------------------------------------------------------------------------------


def _scope(org_id: int, kind: str, ref: int) -> Scope:
    return Scope(ScopeKind(kind), org_id, ref)


def _record(row: sa.Row) -> Record:
    (id_, org, type_, prefix, number, kind, ref, title, body, status, author, created, updated, version,
     fields) = row
    return Record(id_, org, RecordType(type_), DisplayId(prefix, number), _scope(org, kind, ref), title, body,
                  status, author, created, updated, version, dict(fields))


def _summary(row: sa.Row) -> RecordSummary:
    id_, org, type_, prefix, number, kind, ref, title, status = row[:9]
    return RecordSummary(id_, RecordType(type_), DisplayId(prefix, number), title, status, _scope(org, kind, ref))


# --- cursors: opaque to clients, validated on the way back in -------------------------------------------


def _encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise _bad_cursor() from exc
    if not (isinstance(key, list) and len(key) == 2 and type(key[1]) is int):
        raise _bad_cursor()
    return key


def _bad_cursor() -> InvalidInput:
    return InvalidInput("cursor is not one this server issued; start again without it", field="cursor")


def _list_cursor(cursor: str) -> tuple[datetime, int]:
    updated, id_ = _decode_cursor(cursor)
    try:
        at = datetime.fromisoformat(updated)
    except (TypeError, ValueError) as exc:
        raise _bad_cursor() from exc
    if at.tzinfo is None:
        raise _bad_cursor()
    return at, id_


def _search_cursor(cursor: str) -> tuple[float, int]:
    rank, id_ = _decode_cursor(cursor)
    if isinstance(rank, bool) or not isinstance(rank, int | float) or not math.isfinite(rank):
        raise _bad_cursor()
    return float(rank), id_


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise InvalidInput("limit must be at least 1", field="limit")


def _query_filters(query: RecordQuery) -> tuple[str, dict[str, Any]]:
    """The RecordQuery as extra AND clauses on alias ``r`` (fixed SQL, bound values)."""
    clauses, params = [], {}
    if query.types:
        clauses.append("r.type = ANY(CAST(:types AS text[]))")
        params["types"] = sorted(t.value for t in query.types)
    if query.statuses:
        clauses.append("r.status = ANY(CAST(:statuses AS text[]))")
        params["statuses"] = sorted(query.statuses)
    if query.project_id is not None:
        clauses.append("r.scope_kind = 'project' AND r.scope_ref = :project_id")
        params["project_id"] = query.project_id
    if query.writable:  # binds the same :principal_id as the read predicate of the statement
        clauses.append(_WRITABLE)
    if query.assignee_id is not None:
        clauses.append("r.fields->>'assignee_id' = CAST(CAST(:assignee_id AS bigint) AS text)")
        params["assignee_id"] = query.assignee_id
    return "".join(f" AND {c}" for c in clauses), params


def _like_prefix(text: str) -> str:
    """``text`` as a LIKE prefix pattern matching itself literally (escape character: backslash)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _display_id_in(text: str) -> DisplayId | None:
    match = DISPLAY_ID_PATTERN.fullmatch(text.strip().upper())
    return DisplayId(match.group(1), int(match.group(2))) if match else None


class PgRecordStore(SqlStore):

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """A savepoint around one write, so a refused write leaves the caller's transaction usable,
        and the refusal arrives as a core error."""
        try:
            with self._conn.begin_nested():
                yield
        except sa.exc.IntegrityError as exc:
            state = getattr(exc.orig, "sqlstate", None)
            if state == _UNIQUE_VIOLATION:
                raise Conflict(f"{what} already exists", field="display_id") from exc
            if state == _FOREIGN_KEY_VIOLATION:
                raise InvalidInput(f"{what} names an organisation or author that does not exist") from exc
            raise InvalidInput(f"{what} is not valid: {exc.orig.diag.message_primary}") from exc
        except sa.exc.DataError as exc:
            raise InvalidInput(f"{what} is not valid: {exc.orig.diag.message_primary}") from exc

    # --- numbers and writes --------------------------------------------------------------------------

    def allocate_number(self, org_id: int, prefix: str) -> int:
        # The upserted row stays locked until the caller's transaction ends: a concurrent allocation
        # waits, and sees the committed number (or the old one if this transaction rolls back).
        row = self._row(
            "INSERT INTO record_sequences (organisation_id, prefix, last_number) VALUES (:org, :prefix, 1) "
            "ON CONFLICT (organisation_id, prefix) DO UPDATE SET last_number = record_sequences.last_number + 1 "
            "RETURNING last_number",
            org=org_id, prefix=prefix,
        )
        return row[0]

    def add(self, new: NewRecord, number: int) -> Record:
        _check_scope(new.scope, new.organisation_id)
        with self._writing(f"{new.prefix}-{number}"):
            row = self._row(
                "INSERT INTO records AS r (organisation_id, type, prefix, number, scope_kind, scope_ref, title, body, "
                "status, author_id, fields) VALUES (:org, :type, :prefix, :number, :kind, :ref, :title, :body, "
                f":status, :author, CAST(:fields AS jsonb)) RETURNING {_COLUMNS}",
                org=new.organisation_id, type=new.type.value, prefix=new.prefix, number=number,
                kind=new.scope.kind.value, ref=new.scope.ref_id, title=new.title, body=new.body, status=new.status,
                author=new.author_id, fields=json.dumps(dict(new.fields)),
            )
        return _record(row)

    def for_update(self, org_id: int, record_id: int) -> Record | None:
        row = self._row(f"SELECT {_COLUMNS} FROM records r WHERE r.id = :id AND r.organisation_id = :org FOR UPDATE",
                        id=record_id, org=org_id)
        return _record(row) if row else None

    def active_snapshots_for_update(self, org_id: int, snapshot_type: str, scope: Scope) -> list[Record]:
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM records r WHERE r.organisation_id = :org AND r.type = 'snapshot' "
            "AND r.status = 'active' AND r.fields ->> 'snapshot_type' = :snapshot_type "
            "AND r.scope_kind = :kind AND r.scope_ref = :ref ORDER BY r.id FOR UPDATE",
            org=org_id, snapshot_type=snapshot_type, kind=scope.kind.value, ref=scope.ref_id,
        )
        return [_record(row) for row in rows]

    def save(self, record: Record, *, expected_version: int) -> Record:
        _check_scope(record.scope, record.organisation_id)
        with self._writing(str(record.display_id)):
            row = self._row(
                "UPDATE records AS r SET scope_kind = :kind, scope_ref = :ref, title = :title, body = :body, "
                "status = :status, fields = CAST(:fields AS jsonb), updated_at = now(), version = r.version + 1 "
                f"WHERE r.id = :id AND r.organisation_id = :org AND r.version = :expected RETURNING {_COLUMNS}",
                kind=record.scope.kind.value, ref=record.scope.ref_id, title=record.title, body=record.body,
                status=record.status, fields=json.dumps(dict(record.fields)), id=record.id,
                org=record.organisation_id, expected=expected_version,
            )
        if row is None:
            raise self._stale(record)
        return _record(row)

    def _stale(self, record: Record) -> NotFound | Conflict:
        current = self._row("SELECT version FROM records WHERE id = :id AND organisation_id = :org",
                            id=record.id, org=record.organisation_id)
        if current is None:
            return NotFound("record not found")
        return Conflict(f"{record.display_id} changed since you loaded it: current version is {current[0]}",
                        field="version")

    def set_references(self, org_id: int, record_id: int, targets: list[DisplayId]) -> None:
        self._conn.execute(sa.text("DELETE FROM record_references ref USING records s WHERE ref.source_id = s.id "
                                   "AND s.id = :id AND s.organisation_id = :org"), {"id": record_id, "org": org_id})
        if not targets:
            return
        # Targets resolve inside the source's organisation only; unknown IDs and the record itself drop out.
        self._conn.execute(
            sa.text(
                "INSERT INTO record_references (source_id, target_id) "
                "SELECT DISTINCT s.id, t.id FROM records s "
                "JOIN unnest(CAST(:prefixes AS text[]), CAST(:numbers AS bigint[])) AS d(prefix, number) ON true "
                "JOIN records t ON t.organisation_id = s.organisation_id AND t.prefix = d.prefix "
                "AND t.number = d.number "
                "WHERE s.id = :id AND s.organisation_id = :org AND t.id <> s.id"
            ),
            {"id": record_id, "org": org_id, "prefixes": [t.prefix for t in targets],
             "numbers": [t.number for t in targets]},
        )

    # --- reads, each one visibility-filtered statement -------------------------------------------------

    def readable(self, principal_id: int, org_id: int, record_id: int) -> Record | None:
        row = self._row(
            f"SELECT {_COLUMNS} FROM records r WHERE r.id = :id AND r.organisation_id = :org AND {_VISIBLE}",
            id=record_id, org=org_id, **{PRINCIPAL_PARAM: principal_id},
        )
        return _record(row) if row else None

    def readers_among(self, org_id: int, record_id: int, user_ids: Sequence[int], *,
                      write: bool = False) -> frozenset[int]:
        rows = self._rows(
            "SELECT c.user_id FROM unnest(CAST(:users AS bigint[])) AS c(user_id) WHERE EXISTS (SELECT 1 FROM "
            f"records r WHERE r.id = :id AND r.organisation_id = :org AND "
            f"{_READERS_WRITE if write else _READERS})",
            users=list(user_ids), id=record_id, org=org_id,
        )
        return frozenset(r[0] for r in rows)

    def readable_by_display_id(self, principal_id: int, org_id: int, display_id: DisplayId) -> Record | None:
        row = self._row(
            f"SELECT {_COLUMNS} FROM records r WHERE r.organisation_id = :org AND r.prefix = :prefix "
            f"AND r.number = :number AND {_VISIBLE}",
            org=org_id, prefix=display_id.prefix, number=display_id.number, **{PRINCIPAL_PARAM: principal_id},
        )
        return _record(row) if row else None

    def list_readable(self, principal_id: int, org_id: int, query: RecordQuery, *, cursor: str | None,
                      limit: int) -> Page[Record]:
        _check_limit(limit)
        filters, params = _query_filters(query)
        if cursor is not None:
            params["after_at"], params["after_id"] = _list_cursor(cursor)
            filters += " AND (r.updated_at, r.id) < (CAST(:after_at AS timestamptz), CAST(:after_id AS bigint))"
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM records r WHERE r.organisation_id = :org AND {_VISIBLE}{filters} "
            "ORDER BY r.updated_at DESC, r.id DESC LIMIT :fetch",
            org=org_id, fetch=limit + 1, **params, **{PRINCIPAL_PARAM: principal_id},
        )
        items = tuple(_record(r) for r in rows[:limit])
        more = len(rows) > limit
        return Page(items, _encode_cursor([items[-1].updated_at.isoformat(), items[-1].id]) if more else None)

    def count_readable(self, principal_id: int, org_id: int, query: RecordQuery) -> int:
        filters, params = _query_filters(query)
        row = self._row(f"SELECT count(*) FROM records r WHERE r.organisation_id = :org AND {_VISIBLE}{filters}",
                        org=org_id, **params, **{PRINCIPAL_PARAM: principal_id})
        return row[0]

    def search_readable(self, principal_id: int, org_id: int, text: str, query: RecordQuery, *,
                        cursor: str | None, limit: int) -> Page[SearchHit]:
        _check_limit(limit)
        if not text.strip():
            raise _empty_search()
        filters, params = _query_filters(query)
        after = ""
        if cursor is not None:
            params["after_rank"], params["after_id"] = _search_cursor(cursor)
            after = "WHERE (h.rank, h.id) < (CAST(:after_rank AS float8), CAST(:after_id AS bigint))"
        # The rank is computed once, as float8 (exact through JSON and back), in ``hits``; the cursor
        # compares that same value. Headlines are costly: only the page's rows get one.
        rows = self._rows(
            "WITH q AS (SELECT websearch_to_tsquery('english', :text) AS query), "
            f"hits AS (SELECT {_SUMMARY_COLUMNS}, r.body, CAST(ts_rank_cd(r.search, q.query) AS float8) AS rank "
            f"FROM records r, q WHERE r.organisation_id = :org AND r.search @@ q.query AND {_VISIBLE}{filters}), "
            f"page AS MATERIALIZED (SELECT * FROM hits h {after} ORDER BY h.rank DESC, h.id DESC LIMIT :fetch) "
            "SELECT page.id, page.organisation_id, page.type, page.prefix, page.number, page.scope_kind, "
            "page.scope_ref, page.title, page.status, page.rank, "
            "ts_headline('english', page.title || ' — ' || page.body, q.query, :headline) "
            "FROM page, q ORDER BY page.rank DESC, page.id DESC",
            text=text, org=org_id, fetch=limit + 1, headline=_HEADLINE_OPTIONS, **params,
            **{PRINCIPAL_PARAM: principal_id},
        )
        if not rows and cursor is None and self._is_empty_query(text):
            raise _empty_search()
        hits = tuple(SearchHit(_summary(r), r[10], r[9]) for r in rows[:limit])
        more = len(rows) > limit
        return Page(hits, _encode_cursor([hits[-1].rank, hits[-1].summary.id]) if more else None)

    def _is_empty_query(self, text: str) -> bool:
        """Only stop words or punctuation: websearch_to_tsquery yields an empty query matching nothing."""
        return self._row("SELECT numnode(websearch_to_tsquery('english', :text)) = 0", text=text)[0]

    def references_readable(self, principal_id: int, org_id: int, record_id: int) -> list[RecordSummary]:
        rows = self._rows(
            f"SELECT {_SUMMARY_COLUMNS} FROM record_references ref JOIN records r ON r.id = ref.target_id "
            f"WHERE ref.source_id = :id AND r.organisation_id = :org AND {_VISIBLE} ORDER BY r.prefix, r.number",
            id=record_id, org=org_id, **{PRINCIPAL_PARAM: principal_id},
        )
        return [_summary(r) for r in rows]

    def backlinks_readable(self, principal_id: int, org_id: int, record_id: int) -> list[RecordSummary]:
        rows = self._rows(
            f"SELECT {_SUMMARY_COLUMNS} FROM record_references ref JOIN records r ON r.id = ref.source_id "
            f"WHERE ref.target_id = :id AND r.organisation_id = :org AND {_VISIBLE} ORDER BY r.prefix, r.number",
            id=record_id, org=org_id, **{PRINCIPAL_PARAM: principal_id},
        )
        return [_summary(r) for r in rows]

    def lookup_readable(self, principal_id: int, org_id: int, text: str, *, limit: int) -> list[RecordSummary]:
        """An exact display ID match (case-insensitive) or, for a bare prefix ("DOC-"), that prefix's records by
        number, highest first; then title-prefix matches by title.

        Text that looks like a display ID also matches titles ("COVID-19 plan" for ``COVID-19``)."""
        _check_limit(limit)
        display_id = _display_id_in(text)
        bare = BARE_PREFIX_PATTERN.fullmatch(text.strip().upper())
        match, first, params = "", "", {}
        if display_id is not None:
            exact = "(r.prefix = :prefix AND r.number = :number)"
            match, first = f"{exact} OR ", f"{exact} DESC, "
            params = {"prefix": display_id.prefix, "number": display_id.number}
        elif bare is not None:  # "DOC-": that prefix's records, newest (highest number) first
            match, first = "r.prefix = :prefix OR ", "(r.prefix = :prefix) DESC, (CASE WHEN r.prefix = :prefix " \
                "THEN r.number END) DESC NULLS LAST, "
            params = {"prefix": bare.group(1)}
        rows = self._rows(
            f"SELECT {_SUMMARY_COLUMNS} FROM records r WHERE r.organisation_id = :org "
            f"AND ({match}lower(r.title) LIKE lower(:pattern) ESCAPE '\\') AND {_VISIBLE} "
            f"ORDER BY {first}lower(r.title), r.id LIMIT :limit",
            org=org_id, pattern=_like_prefix(text.strip()), limit=limit, **params, **{PRINCIPAL_PARAM: principal_id},
        )
        return [_summary(r) for r in rows]


def _check_scope(scope: Scope, org_id: int) -> None:
    if scope.organisation_id != org_id:
        raise InvalidInput("a record's scope must belong to the record's organisation", field="scope")


def _empty_search() -> NoSearchTerms:
    return NoSearchTerms()
