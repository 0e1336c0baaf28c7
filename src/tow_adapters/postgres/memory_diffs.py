"""PgMemoryDiffStore: memory diffs in PostgreSQL (migration 0004).

Runs on the caller's connection (one transaction per use case). Reads are one statement each whose
WHERE clause contains ``visible_predicate`` on the diff's scope columns (SPEC §2 "One predicate").

Stored JSON shapes (``operations`` and ``outcomes`` columns):
- ``{"op": "create", "title", "body", "fields"}``
- ``{"op": "update", "item": "MEM-3", "base_version": 2, "title"?, "body"?, "fields"?}``
- ``{"op": "supersede", "items": [{"item", "base_version"}], "by": "MEM-4" | "by_operation": 0}``
- ``{"op": "archive", "items": [{"item", "base_version"}]}``
- outcome: ``{"index", "result", "reason", "items": ["MEM-3", ...]}``
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tow_adapters.postgres.engine import SqlStore
from tow_adapters.postgres.visibility import PRINCIPAL_PARAM, visible_predicate
from tow_core.access import Scope, ScopeKind
from tow_core.errors import Conflict, InvalidInput
from tow_core.memory_diffs import (
    ArchiveItems,
    CreateItem,
    DiffSource,
    DiffStatus,
    ItemRef,
    MemoryDiff,
    NewMemoryDiff,
    Operation,
    OperationOutcome,
    OutcomeResult,
    SupersedeItems,
    UpdateItem,
)
from tow_core.records import DisplayId, Page

_COLUMNS = (
    "d.id, d.organisation_id, d.scope_kind, d.scope_ref, d.source, d.source_display_id, d.rationale, d.author_id, "
    "d.operations, d.status, d.created_at, d.reviewer_id, d.decided_at, d.review_note, d.outcomes, d.agent_run_id"
)
_VISIBLE = visible_predicate("d")
_WRITABLE = visible_predicate("d", write=True)
# The same predicates for each user of an outer list ``c(user_id)`` (``reviewers_among``).
_REVIEWER_READS = visible_predicate("d", principal="c.user_id")
_REVIEWER_WRITES = visible_predicate("d", write=True, principal="c.user_id")
# The inbox's diffs: pending, in a scope the principal reads and writes (optionally one project's).
_PENDING_WRITABLE = (
    f"FROM memory_diffs d WHERE d.organisation_id = :org AND d.status = 'pending' AND {_VISIBLE} AND {_WRITABLE} "
    "AND (CAST(:project AS bigint) IS NULL OR (d.scope_kind = 'project' AND d.scope_ref = :project))"
)
_DECIDED_RANK = "CAST(d.status <> 'pending' AS int)"  # pending first


# --- core types <-> JSON --------------------------------------------------------------------------------


def _ref_json(ref: ItemRef) -> dict[str, Any]:
    return {"item": str(ref.display_id), "base_version": ref.base_version}


def _ref(data: dict[str, Any]) -> ItemRef:
    return ItemRef(DisplayId.parse(data["item"]), data["base_version"])


def operation_json(op: Operation) -> dict[str, Any]:
    if isinstance(op, CreateItem):
        return {"op": op.kind, "title": op.title, "body": op.body, "fields": dict(op.fields or {})}
    if isinstance(op, UpdateItem):
        changes = {"title": op.title, "body": op.body, "fields": None if op.fields is None else dict(op.fields)}
        return {"op": op.kind, **_ref_json(op.target), **{k: v for k, v in changes.items() if v is not None}}
    data = {"op": op.kind, "items": [_ref_json(r) for r in op.items]}
    if isinstance(op, SupersedeItems):
        data |= {"by_operation": op.by} if isinstance(op.by, int) else {"by": str(op.by)}
    return data


def operation(data: dict[str, Any]) -> Operation:
    kind = data["op"]
    if kind == CreateItem.kind:
        return CreateItem(data["title"], data["body"], data["fields"])
    if kind == UpdateItem.kind:
        return UpdateItem(_ref(data), data.get("title"), data.get("body"), data.get("fields"))
    items = tuple(_ref(r) for r in data["items"])
    if kind == SupersedeItems.kind:
        by = data["by_operation"] if "by_operation" in data else DisplayId.parse(data["by"])
        return SupersedeItems(items, by)
    return ArchiveItems(items)


def _outcome_json(outcome: OperationOutcome) -> dict[str, Any]:
    return {"index": outcome.index, "result": outcome.result.value, "reason": outcome.reason,
            "items": [str(i) for i in outcome.display_ids]}


def _outcome(data: dict[str, Any]) -> OperationOutcome:
    return OperationOutcome(data["index"], OutcomeResult(data["result"]), data["reason"],
                            tuple(DisplayId.parse(i) for i in data["items"]))


def _diff(row: sa.Row) -> MemoryDiff:
    (id_, org, kind, ref, source, source_id, rationale, author, operations, status, created, reviewer, decided,
     note, outcomes, run_id) = row
    return MemoryDiff(
        id_, org, Scope(ScopeKind(kind), org, ref), DiffSource(source),
        DisplayId.parse(source_id) if source_id else None, rationale, author,
        tuple(operation(o) for o in operations), DiffStatus(status), created, reviewer, decided, note,
        tuple(_outcome(o) for o in outcomes), run_id,
    )


# --- cursors: [decided rank, created_at, id], opaque to clients ----------------------------------------


def _encode_cursor(diff: MemoryDiff) -> str:
    key = [int(diff.status is not DiffStatus.PENDING), diff.created_at.isoformat(), diff.id]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, datetime, int]:
    try:
        rank, at, id_ = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        created = datetime.fromisoformat(at)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise _bad_cursor() from exc
    if rank not in (0, 1) or type(id_) is not int or created.tzinfo is None:
        raise _bad_cursor()
    return rank, created, id_


def _bad_cursor() -> InvalidInput:
    return InvalidInput("cursor is not one this server issued; start again without it", field="cursor")


class PgMemoryDiffStore(SqlStore):

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A savepoint around one write: a refused write leaves the caller's transaction usable and
        arrives as a core error."""
        try:
            with self._conn.begin_nested():
                yield
        except (sa.exc.IntegrityError, sa.exc.DataError) as exc:
            raise InvalidInput(f"memory diff is not valid: {exc.orig.diag.message_primary}") from exc

    def add(self, new: NewMemoryDiff) -> MemoryDiff:
        if new.scope.organisation_id != new.organisation_id:
            raise InvalidInput("a diff's scope must belong to the diff's organisation", field="scope")
        with self._writing():
            row = self._row(
                "INSERT INTO memory_diffs AS d (organisation_id, scope_kind, scope_ref, source, source_display_id, "
                "rationale, author_id, operations, agent_run_id) VALUES (:org, :kind, :ref, :source, :source_id, "
                f":rationale, :author, CAST(:operations AS jsonb), :run) RETURNING {_COLUMNS}",
                org=new.organisation_id, kind=new.scope.kind.value, ref=new.scope.ref_id, source=new.source.value,
                source_id=None if new.source_id is None else str(new.source_id), rationale=new.rationale,
                author=new.author_id, operations=json.dumps([operation_json(o) for o in new.operations]),
                run=new.agent_run_id,
            )
        return _diff(row)

    def readable(self, principal_id: int, org_id: int, diff_id: int) -> MemoryDiff | None:
        row = self._row(
            f"SELECT {_COLUMNS} FROM memory_diffs d WHERE d.id = :id AND d.organisation_id = :org AND {_VISIBLE}",
            id=diff_id, org=org_id, **{PRINCIPAL_PARAM: principal_id},
        )
        return _diff(row) if row else None

    def reviewers_among(self, org_id: int, diff_id: int, user_ids: Sequence[int]) -> frozenset[int]:
        rows = self._rows(
            "SELECT c.user_id FROM unnest(CAST(:users AS bigint[])) AS c(user_id) WHERE EXISTS (SELECT 1 FROM "
            f"memory_diffs d WHERE d.id = :id AND d.organisation_id = :org AND {_REVIEWER_READS} AND "
            f"{_REVIEWER_WRITES})",
            users=list(user_ids), id=diff_id, org=org_id,
        )
        return frozenset(r[0] for r in rows)

    def for_update(self, org_id: int, diff_id: int) -> MemoryDiff | None:
        row = self._row(
            f"SELECT {_COLUMNS} FROM memory_diffs d WHERE d.id = :id AND d.organisation_id = :org FOR UPDATE",
            id=diff_id, org=org_id,
        )
        return _diff(row) if row else None

    def save_decision(self, diff: MemoryDiff) -> MemoryDiff:
        with self._writing():
            row = self._row(
                "UPDATE memory_diffs AS d SET status = :status, reviewer_id = :reviewer, decided_at = :decided, "
                "review_note = :note, outcomes = CAST(:outcomes AS jsonb) "
                f"WHERE d.id = :id AND d.organisation_id = :org AND d.status = 'pending' RETURNING {_COLUMNS}",
                status=diff.status.value, reviewer=diff.reviewer_id, decided=diff.decided_at, note=diff.review_note,
                outcomes=json.dumps([_outcome_json(o) for o in diff.outcomes]), id=diff.id, org=diff.organisation_id,
            )
        if row is None:
            raise Conflict("this diff was decided meanwhile; only pending diffs can be decided", field="status")
        return _diff(row)

    def list_readable(self, principal_id: int, org_id: int, statuses: frozenset[DiffStatus], *,
                      cursor: str | None, limit: int) -> Page[MemoryDiff]:
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        filters, params = "", {}
        if statuses:
            filters += " AND d.status = ANY(CAST(:statuses AS text[]))"
            params["statuses"] = sorted(s.value for s in statuses)
        if cursor is not None:
            params["rank"], params["after_at"], params["after_id"] = _decode_cursor(cursor)
            filters += (f" AND ({_DECIDED_RANK} > :rank OR ({_DECIDED_RANK} = :rank AND (d.created_at, d.id) < "
                        "(CAST(:after_at AS timestamptz), CAST(:after_id AS bigint))))")
        rows = self._conn.execute(sa.text(
            f"SELECT {_COLUMNS} FROM memory_diffs d WHERE d.organisation_id = :org AND {_VISIBLE}{filters} "
            f"ORDER BY {_DECIDED_RANK}, d.created_at DESC, d.id DESC LIMIT :fetch"
        ), {"org": org_id, "fetch": limit + 1, PRINCIPAL_PARAM: principal_id, **params}).all()
        items = tuple(_diff(r) for r in rows[:limit])
        return Page(items, _encode_cursor(items[-1]) if len(rows) > limit else None)

    def list_pending_writable(self, principal_id: int, org_id: int, project_id: int | None, *,
                              limit: int) -> list[MemoryDiff]:
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        rows = self._rows(f"SELECT {_COLUMNS} {_PENDING_WRITABLE} ORDER BY d.created_at DESC, d.id DESC LIMIT :limit",
                          org=org_id, project=project_id, limit=limit, **{PRINCIPAL_PARAM: principal_id})
        return [_diff(r) for r in rows]

    def count_pending_writable(self, principal_id: int, org_id: int, project_id: int | None) -> int:
        row = self._row(f"SELECT count(*) {_PENDING_WRITABLE}", org=org_id, project=project_id,
                        **{PRINCIPAL_PARAM: principal_id})
        return row[0]
