"""Memory diffs (SPEC §4): proposed changes to memory items, reviewed by a person before they apply.

A diff proposes operations — ``create`` a memory item, ``update`` an item's title/body/fields,
``supersede`` items by another (an existing item or one this diff creates), ``archive`` items — with a
scope, a source (doc, chat, check-in, manual; optionally the display ID it came from), a rationale and
an author. Its lifecycle is ``pending`` → ``approved`` | ``rejected`` | ``partially_applied``.

Memory reaches ``active`` only through an approved diff or a direct edit by someone with write access
(``tow_core.knowledge.create_record`` / ``update_record``); anything produced by AI must arrive here as a
pending diff. Superseded and archived items stay readable: nothing here ever deletes an item.

Rules:
- Proposing needs write access to the diff's scope. Every item the diff names (targets and a supersede's
  replacement) must be a memory item the proposer can read (else "not found"), active, and at the
  version the proposal names (else Conflict): a proposal is always based on what its author saw.
- Every record an operation newly cites in ``source_references`` must be one the proposer can read in
  the organisation — and, since approval writes the items as the reviewer, one the reviewer can read
  too (``knowledge.check_named_ids``: 422 naming the field, the same for a record that does not exist).
- A diff is readable exactly when its scope is readable (the store filters with the one visibility
  predicate); otherwise it is "not found". Operations on items the caller cannot read are shown without
  any detail (``visible_operation``).
- Reviewing (approve or reject) needs write access to the diff's scope and, for every item an operation
  changes, write access to that item's scope. Every ID is checked: an item the reviewer cannot read is
  "not found" and nothing about it is named. Only a pending diff can be decided (else Conflict).
- Approval applies every operation in one transaction (the caller's). An operation whose target changed
  since the proposal (version differs from its ``base_version``, or the item is no longer active) is
  refused as stale. All stale → Conflict and nothing changes (the diff stays pending, to be rejected);
  some stale → ``partially_applied`` with a per-operation outcome; none → ``approved``. The reviewer and
  ``decided_at`` are recorded, and a decided diff never changes again.
- Items created by a diff get the diff's scope, and their ``source_references`` include the diff's
  source display ID. They are written through ``knowledge.create_record`` as the reviewer (who made
  them active), so every record rule — numbering, validation, references — applies unchanged.

Design choices where SPEC is silent: an item may be the target of at most one operation per diff (so
operations never make each other stale); ``superseded_by`` is set only by a supersede operation;
a diff holds at most ``MAX_OPERATIONS`` operations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from tow_core.access import ProjectAccess, Scope, can_read_scope, can_write_scope
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tow_core.knowledge import (
    MAX_BODY,
    MAX_TITLE,
    RecordChange,
    Workspace,
    check_named_ids,
    clean_text,
    create_record,
    project_access_of,
    update_record,
)
from tow_core.records import DisplayId, Page, Record, RecordType, validated_fields

MAX_OPERATIONS = 100
MAX_TARGETS = 500  # existing items one diff may change, over all its operations
MAX_RATIONALE = 20_000
MAX_NOTE = 5_000
MAX_PAGE = 200
# Set only by a supersede operation, never written directly by a proposal.
_MANAGED_FIELDS = frozenset({"superseded_by"})


class DiffStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    PARTIALLY_APPLIED = "partially_applied"


class DiffSource(StrEnum):
    DOC = "doc"
    CHAT = "chat"
    CHECKIN = "checkin"
    MANUAL = "manual"


# --- operations ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemRef:
    """An existing item as the proposer saw it."""

    display_id: DisplayId
    base_version: int


@dataclass(frozen=True, slots=True)
class CreateItem:
    kind: ClassVar[str] = "create"
    title: str
    body: str = ""
    fields: Mapping[str, Any] | None = None  # memory fields; memory_type is required

    @property
    def targets(self) -> tuple[ItemRef, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class UpdateItem:
    kind: ClassVar[str] = "update"
    target: ItemRef
    title: str | None = None  # None: leave as it is
    body: str | None = None
    fields: Mapping[str, Any] | None = None  # only the fields to change

    @property
    def targets(self) -> tuple[ItemRef, ...]:
        return (self.target,)


@dataclass(frozen=True, slots=True)
class SupersedeItems:
    """``targets`` become superseded by ``by``: an existing item, or (an int) the index of a create
    operation earlier in the same diff."""

    kind: ClassVar[str] = "supersede"
    items: tuple[ItemRef, ...]
    by: DisplayId | int

    @property
    def targets(self) -> tuple[ItemRef, ...]:
        return self.items


@dataclass(frozen=True, slots=True)
class ArchiveItems:
    kind: ClassVar[str] = "archive"
    items: tuple[ItemRef, ...]

    @property
    def targets(self) -> tuple[ItemRef, ...]:
        return self.items


Operation = CreateItem | UpdateItem | SupersedeItems | ArchiveItems


def referenced_ids(operation: Operation) -> tuple[DisplayId, ...]:
    """Every existing item the operation names: its targets and a supersede's existing replacement."""
    ids = tuple(t.display_id for t in operation.targets)
    if isinstance(operation, SupersedeItems) and isinstance(operation.by, DisplayId):
        ids += (operation.by,)
    return ids


def visible_operation(operation: Operation, readable: Mapping[DisplayId, Record]) -> bool:
    """Whether a caller who can read exactly ``readable`` may see the operation's details."""
    return all(display_id in readable for display_id in referenced_ids(operation))


def stale_reason(operation: Operation, current: Mapping[DisplayId, Record]) -> str | None:
    """Why the operation can no longer apply to ``current`` (the locked items), or None if it can."""
    reasons = [stale_target_reason(ref, current[ref.display_id]) for ref in operation.targets]
    if isinstance(operation, SupersedeItems) and isinstance(operation.by, DisplayId):
        replacement = current[operation.by]
        if replacement.status != "active":
            reasons.append(f"the replacement {operation.by} is {replacement.status}, no longer active")
    found = [r for r in reasons if r]
    return "; ".join(found) if found else None


def stale_target_reason(ref: ItemRef, item: Record) -> str | None:
    if item.version != ref.base_version:
        return (f"{ref.display_id} changed since the proposal (now version {item.version}, "
                f"proposed against {ref.base_version})")
    if item.status != "active":
        return f"{ref.display_id} is {item.status}, no longer active"
    return None


class OutcomeResult(StrEnum):
    APPLIED = "applied"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class OperationOutcome:
    index: int
    result: OutcomeResult
    reason: str | None = None
    display_ids: tuple[DisplayId, ...] = ()  # the items it created or changed


# --- the diff ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewMemoryDiff:
    organisation_id: int
    scope: Scope
    source: DiffSource
    source_id: DisplayId | None
    rationale: str
    author_id: int | None
    operations: tuple[Operation, ...]


@dataclass(frozen=True, slots=True)
class MemoryDiff:
    id: int
    organisation_id: int
    scope: Scope
    source: DiffSource
    source_id: DisplayId | None
    rationale: str
    author_id: int | None
    operations: tuple[Operation, ...]
    status: DiffStatus
    created_at: datetime
    reviewer_id: int | None = None
    decided_at: datetime | None = None
    review_note: str = ""
    outcomes: tuple[OperationOutcome, ...] = ()

    @property
    def referenced_ids(self) -> tuple[DisplayId, ...]:
        return tuple(dict.fromkeys(i for op in self.operations for i in referenced_ids(op)))

    @property
    def changed_ids(self) -> tuple[DisplayId, ...]:
        """Items the diff would change (not a supersede's existing replacement, which it only cites)."""
        return tuple(t.display_id for op in self.operations for t in op.targets)

    def decide(self, *, reviewer_id: int, at: datetime, note: str,
               outcomes: Sequence[OperationOutcome] = ()) -> MemoryDiff:
        """The diff as decided: rejected without outcomes, else approved / partially_applied by them.

        Raises Conflict unless pending (decided diffs never change again) or when nothing applied."""
        if self.status is not DiffStatus.PENDING:
            raise Conflict(f"this diff is already {self.status.value}; only pending diffs can be decided",
                           field="status")
        return replace(self, status=_status_for(outcomes), reviewer_id=reviewer_id, decided_at=at,
                       review_note=clean_text(note, "note", max_length=MAX_NOTE), outcomes=tuple(outcomes))


def _status_for(outcomes: Sequence[OperationOutcome]) -> DiffStatus:
    if not outcomes:
        return DiffStatus.REJECTED
    applied = sum(o.result is OutcomeResult.APPLIED for o in outcomes)
    if applied == 0:  # an approval that changes nothing is refused: the diff stays pending, to be rejected
        raise Conflict("no operation of this diff can apply any more: reject it", field="operations")
    return DiffStatus.APPROVED if applied == len(outcomes) else DiffStatus.PARTIALLY_APPLIED


def check_operations(operations: Sequence[Operation]) -> tuple[Operation, ...]:
    """The diff's own invariants, before looking at any item: size, unique targets, valid references
    between operations. Returns the operations with their texts cleaned."""
    if not 1 <= len(operations) <= MAX_OPERATIONS:
        raise InvalidInput(f"a diff has from 1 to {MAX_OPERATIONS} operations", field="operations")
    targets = [t.display_id for op in operations for t in op.targets]
    if len(targets) > MAX_TARGETS:
        raise InvalidInput(f"a diff changes at most {MAX_TARGETS} items", field="operations")
    duplicate = next((t for t, n in Counter(targets).items() if n > 1), None)
    if duplicate is not None:
        raise InvalidInput(f"{duplicate} is the target of more than one operation", field="operations")
    return tuple(_checked(index, op, operations, frozenset(targets)) for index, op in enumerate(operations))


def _checked(index: int, op: Operation, operations: Sequence[Operation], targets: frozenset[DisplayId]
             ) -> Operation:
    if any(t.base_version < 1 for t in op.targets):
        raise InvalidInput("base_version must be the item version you saw (1 or more)", field="base_version")
    if isinstance(op, CreateItem):
        _no_managed_fields(op.fields)
        return CreateItem(clean_text(op.title, "title", max_length=MAX_TITLE, required=True),
                          clean_text(op.body, "body", max_length=MAX_BODY),
                          validated_fields(RecordType.MEMORY, op.fields or {}))
    if isinstance(op, UpdateItem):
        return _checked_update(op)
    if not op.items:
        raise InvalidInput(f"a {op.kind} operation names at least one item", field="items")
    if isinstance(op, SupersedeItems):
        _check_replacement(index, op, operations, targets)
    return op


def _checked_update(op: UpdateItem) -> UpdateItem:
    if op.title is None and op.body is None and not op.fields:
        raise InvalidInput("an update operation changes the title, the body or fields", field="operations")
    _no_managed_fields(op.fields)
    title = None if op.title is None else clean_text(op.title, "title", max_length=MAX_TITLE, required=True)
    body = None if op.body is None else clean_text(op.body, "body", max_length=MAX_BODY)
    return replace(op, title=title, body=body)


def _no_managed_fields(fields: Mapping[str, Any] | None) -> None:
    managed = sorted(_MANAGED_FIELDS & set(fields or {}))
    if managed:
        raise InvalidInput(f"{managed[0]} is set by a supersede operation", field=managed[0])


def _check_replacement(index: int, op: SupersedeItems, operations: Sequence[Operation],
                       targets: frozenset[DisplayId]) -> None:
    if isinstance(op.by, int):
        if not (0 <= op.by < index and isinstance(operations[op.by], CreateItem)):
            raise InvalidInput("by_operation must be the index of a create operation before this one",
                               field="by_operation")
    elif op.by in targets:
        raise InvalidInput(f"{op.by} cannot replace items while this diff also changes it", field="by")


# --- the store port ---------------------------------------------------------------------------------


class MemoryDiffStore(Protocol):
    """Memory diffs in storage. ``*_readable`` methods filter by the one visibility predicate on the
    diff's scope, inside their query."""

    def add(self, new: NewMemoryDiff) -> MemoryDiff: ...

    def readable(self, principal_id: int, org_id: int, diff_id: int) -> MemoryDiff | None: ...

    def for_update(self, org_id: int, diff_id: int) -> MemoryDiff | None:
        """The diff locked for this transaction, whoever may read it: the caller authorises."""
        ...

    def save_decision(self, diff: MemoryDiff) -> MemoryDiff:
        """Store status, reviewer, decided_at, note and outcomes — only if the stored diff is still
        pending (else Conflict)."""
        ...

    def list_readable(self, principal_id: int, org_id: int, statuses: frozenset[DiffStatus], *,
                      cursor: str | None, limit: int) -> Page[MemoryDiff]:
        """Pending first, then newest first (created_at, then id); ``statuses`` empty means all."""
        ...


# --- use cases -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryDesk:
    """A workspace plus the diff store: what every use case here needs."""

    ws: Workspace
    diffs: MemoryDiffStore


@dataclass(frozen=True, slots=True)
class DiffView:
    """A diff with the current state of the items it names that the caller can read (by display ID)."""

    diff: MemoryDiff
    readable_items: Mapping[DisplayId, Record]


def propose_diff(
    desk: MemoryDesk, *, scope: Scope, project: ProjectAccess | None, operations: Sequence[Operation],
    source: DiffSource = DiffSource.MANUAL, source_id: DisplayId | None = None, rationale: str = "",
) -> DiffView:
    """Record a pending diff in a scope the caller can write (see the module rules)."""
    ws = desk.ws
    ws.require_member()
    if not can_write_scope(ws.principal, scope, project):
        if not can_read_scope(ws.principal, scope, project):
            raise NotFound("scope not found")
        raise AccessDenied("you can read this scope but not propose changes in it")
    checked = check_operations(operations)
    if source_id is not None and ws.records.readable_by_display_id(ws.principal.user_id, ws.org_id,
                                                                   source_id) is None:
        raise NotFound(f"source {source_id} not found")
    items = _readable_items(ws, checked)
    for op in checked:
        _check_against_current(op, items)
        _check_citations(ws, op, items)
    diff = desk.diffs.add(NewMemoryDiff(
        ws.org_id, scope, DiffSource(source), source_id,
        clean_text(rationale, "rationale", max_length=MAX_RATIONALE), ws.principal.user_id, checked,
    ))
    return DiffView(diff, items)


def _readable_items(ws: Workspace, operations: Sequence[Operation]) -> dict[DisplayId, Record]:
    """Every item the operations name, readable by the caller and a memory item — else NotFound."""
    items = {}
    for display_id in dict.fromkeys(i for op in operations for i in referenced_ids(op)):
        item = ws.records.readable_by_display_id(ws.principal.user_id, ws.org_id, display_id)
        if item is None or item.type is not RecordType.MEMORY:
            raise NotFound(f"memory item {display_id} not found")
        items[display_id] = item
    return items


def _check_against_current(op: Operation, items: Mapping[DisplayId, Record]) -> None:
    reason = stale_reason(op, items)
    if reason:
        raise Conflict(f"{reason}: reload and propose again", field="base_version")
    if isinstance(op, UpdateItem) and op.fields:
        validated_fields(RecordType.MEMORY, op.fields, items[op.target.display_id].fields)


def _check_citations(ws: Workspace, op: Operation, items: Mapping[DisplayId, Record]) -> None:
    if isinstance(op, CreateItem):
        check_named_ids(ws, RecordType.MEMORY, op.fields or {}, {})
    elif isinstance(op, UpdateItem) and op.fields:
        check_named_ids(ws, RecordType.MEMORY, op.fields, items[op.target.display_id].fields)


def get_diff(desk: MemoryDesk, diff_id: int) -> DiffView:
    diff = _readable_diff(desk, diff_id)
    return DiffView(diff, _visible_items(desk.ws, diff))


def _readable_diff(desk: MemoryDesk, diff_id: int) -> MemoryDiff:
    desk.ws.require_member()
    diff = desk.diffs.readable(desk.ws.principal.user_id, desk.ws.org_id, diff_id)
    if diff is None:
        raise NotFound("memory diff not found")
    return diff


def _visible_items(ws: Workspace, diff: MemoryDiff) -> dict[DisplayId, Record]:
    found = {i: ws.records.readable_by_display_id(ws.principal.user_id, ws.org_id, i) for i in diff.referenced_ids}
    return {i: item for i, item in found.items() if item is not None}


def list_diffs(desk: MemoryDesk, statuses: frozenset[DiffStatus] = frozenset(), *, cursor: str | None = None,
               limit: int = 50) -> Page[MemoryDiff]:
    """Diffs whose scope the caller can read: pending first, then newest first."""
    desk.ws.require_member()
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be from 1 to {MAX_PAGE}", field="limit")
    return desk.diffs.list_readable(desk.ws.principal.user_id, desk.ws.org_id, frozenset(statuses),
                                    cursor=cursor, limit=limit)


def reject_diff(desk: MemoryDesk, diff_id: int, *, now: datetime, note: str = "") -> DiffView:
    """Decide a pending diff as rejected; no item changes."""
    diff, items = _reviewable(desk, diff_id)
    saved = desk.diffs.save_decision(diff.decide(reviewer_id=desk.ws.principal.user_id, at=now, note=note))
    _audit_decision(desk, saved)
    return DiffView(saved, items)


def approve_diff(desk: MemoryDesk, diff_id: int, *, now: datetime, note: str = "") -> DiffView:
    """Apply every operation that is not stale, in this one transaction (see the module rules)."""
    diff, items = _reviewable(desk, diff_id)
    # Targets are unique and a replacement is never a target, so no operation can make another stale:
    # deciding staleness up front, on the locked items, is the same as deciding it while applying.
    reasons = [None if isinstance(op, CreateItem) else stale_reason(op, items) for op in diff.operations]
    if all(reasons):
        raise Conflict(f"nothing in this diff can apply any more: {'; '.join(reasons)}. Reject it and propose "
                       "again", field="operations")
    created: dict[int, DisplayId] = {}
    outcomes = [_apply(desk.ws, diff, index, op, reason, created)
                for index, (op, reason) in enumerate(zip(diff.operations, reasons, strict=True))]
    decided = diff.decide(reviewer_id=desk.ws.principal.user_id, at=now, note=note, outcomes=outcomes)
    saved = desk.diffs.save_decision(decided)
    _audit_decision(desk, saved)
    return DiffView(saved, _visible_items(desk.ws, saved))


_DECISION_ACTIONS = {
    DiffStatus.APPROVED: AuditAction.MEMORY_DIFF_APPROVED,
    DiffStatus.PARTIALLY_APPLIED: AuditAction.MEMORY_DIFF_PARTIALLY_APPLIED,
    DiffStatus.REJECTED: AuditAction.MEMORY_DIFF_REJECTED,
}


def _audit_decision(desk: MemoryDesk, diff: MemoryDiff) -> None:
    ws = desk.ws
    ws.directory.audit(AuditEntry(ws.org_id, ws.principal.user_id, _DECISION_ACTIONS[diff.status],
                                  f"memory_diff:{diff.id}", {"operations": len(diff.operations)}))


def _reviewable(desk: MemoryDesk, diff_id: int) -> tuple[MemoryDiff, dict[DisplayId, Record]]:
    """The pending diff, locked, with its items locked — after every access check of a review."""
    ws = desk.ws
    _readable_diff(desk, diff_id)
    diff = desk.diffs.for_update(ws.org_id, diff_id)
    assert diff is not None
    if not can_write_scope(ws.principal, diff.scope, project_access_of(ws, diff.scope)):
        raise AccessDenied("you can read this diff but not review it: that needs write access to its scope")
    if diff.status is not DiffStatus.PENDING:
        raise Conflict(f"this diff is already {diff.status.value}; only pending diffs can be decided",
                       field="status")
    return diff, _locked_items(ws, diff)


def _locked_items(ws: Workspace, diff: MemoryDiff) -> dict[DisplayId, Record]:
    items = {}
    # One lock order (by display ID) for every approval, so two reviews sharing items cannot deadlock.
    for display_id in sorted(diff.referenced_ids):
        item = ws.records.readable_by_display_id(ws.principal.user_id, ws.org_id, display_id)
        if item is None:  # names nothing: the reviewer may not know the item exists
            raise NotFound("an item this diff touches was not found")
        locked = ws.records.for_update(ws.org_id, item.id)
        assert locked is not None  # items are never deleted
        items[display_id] = locked
    for display_id in diff.changed_ids:
        item = items[display_id]
        if not can_write_scope(ws.principal, item.scope, project_access_of(ws, item.scope)):
            raise AccessDenied(f"reviewing this diff needs write access to {display_id}, which you can only read")
    return items


def _apply(ws: Workspace, diff: MemoryDiff, index: int, op: Operation, stale: str | None,
           created: dict[int, DisplayId]) -> OperationOutcome:
    if isinstance(op, CreateItem):
        record = _create(ws, diff, op)
        created[index] = record.display_id
        return OperationOutcome(index, OutcomeResult.APPLIED, None, (record.display_id,))
    targets = tuple(t.display_id for t in op.targets)
    if stale:
        return OperationOutcome(index, OutcomeResult.STALE, stale, targets)
    for ref in op.targets:
        update_record(ws, ref.display_id, expected_version=ref.base_version, change=_change(op, created))
    return OperationOutcome(index, OutcomeResult.APPLIED, None, targets)


def _create(ws: Workspace, diff: MemoryDiff, op: CreateItem) -> Record:
    fields = dict(op.fields or {})
    if diff.source_id is not None:  # provenance: the item cites where the proposal came from
        sources = list(fields.get("source_references") or ())
        fields["source_references"] = list(dict.fromkeys([*sources, str(diff.source_id)]))
    return create_record(ws, record_type=RecordType.MEMORY, scope=diff.scope,
                         project=project_access_of(ws, diff.scope), title=op.title, body=op.body, fields=fields)


def _change(op: Operation, created: Mapping[int, DisplayId]) -> RecordChange:
    if isinstance(op, UpdateItem):
        return RecordChange(title=op.title, body=op.body, fields=op.fields)
    if isinstance(op, SupersedeItems):
        by = created[op.by] if isinstance(op.by, int) else op.by
        return RecordChange(status="superseded", fields={"superseded_by": str(by)})
    return RecordChange(status="archived")
