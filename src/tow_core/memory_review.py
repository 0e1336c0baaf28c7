"""Reviewing memory diffs (SPEC §4): propose, read, list, approve and reject — the use cases over the
diff entity and its operations in ``tow_core.memory_diffs``, whose docstring states the rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tow_core.access import ProjectAccess, Scope, can_read_scope, can_write_scope
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tow_core.knowledge import (
    RecordChange,
    Workspace,
    check_named_ids,
    clean_text,
    create_record,
    project_access_of,
    update_record,
)
from tow_core.memory_diffs import (
    MAX_PAGE,
    MAX_RATIONALE,
    CreateItem,
    DiffSource,
    DiffStatus,
    MemoryDiff,
    MemoryDiffStore,
    NewMemoryDiff,
    Operation,
    OperationOutcome,
    OutcomeResult,
    SupersedeItems,
    UpdateItem,
    check_operations,
    referenced_ids,
    stale_reason,
    stale_target_reason,
    visible_operation,
)
from tow_core.notifications import Notifications
from tow_core.records import DisplayId, Page, Record, RecordType, validated_fields

# --- use cases -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryDesk:
    """A workspace plus the diff store: what every use case here needs; and where a proposed diff tells its
    reviewers (``Notifications.diff_proposed``) — None only where nothing is proposed."""

    ws: Workspace
    diffs: MemoryDiffStore
    notifications: Notifications | None = None


@dataclass(frozen=True, slots=True)
class DiffView:
    """A diff with the current state of the items it names that the caller can read (by display ID)."""

    diff: MemoryDiff
    readable_items: Mapping[DisplayId, Record]


def propose_diff(
    desk: MemoryDesk, *, scope: Scope, project: ProjectAccess | None, operations: Sequence[Operation],
    source: DiffSource = DiffSource.MANUAL, source_id: DisplayId | None = None, rationale: str = "",
    agent_run_id: int | None = None,
) -> DiffView:
    """Record a pending diff in a scope the caller can write (see the module rules); ``agent_run_id``: the run of
    the caller's that proposes it (a memory extraction), recorded beside the caller as author."""
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
        clean_text(rationale, "rationale", max_length=MAX_RATIONALE), ws.principal.user_id, checked, agent_run_id,
    ))
    if desk.notifications is not None:
        desk.notifications.diff_proposed(ws.principal.user_id, diff, ws.directory)
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
    _require_second_reviewer(desk.ws, diff)
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


SECOND_REVIEWER_REQUIRED = ("this organisation requires a second reviewer (memory.require_second_reviewer): you "
                            "proposed this diff{via}, so someone else must approve it. You may still reject it")


def needs_second_reviewer(ws: Workspace, author_id: int | None) -> bool:
    """Review integrity (issue 14 item 4): with the organisation's ``require_second_reviewer`` on, a diff's
    author — who is also the owner of the agent run that proposed it, if one did — cannot approve it."""
    organisation = ws.directory.organisation(ws.org_id)
    return organisation is not None and organisation.require_second_reviewer and author_id == ws.principal.user_id


def _require_second_reviewer(ws: Workspace, diff: MemoryDiff) -> None:
    if needs_second_reviewer(ws, diff.author_id):
        via = f" (through your agent run {diff.agent_run_id})" if diff.agent_run_id is not None else ""
        raise AccessDenied(SECOND_REVIEWER_REQUIRED.format(via=via))


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
        change = replace(_change(op, created), review=_review(ws, diff))
        update_record(ws, ref.display_id, expected_version=ref.base_version, change=change)
    return OperationOutcome(index, OutcomeResult.APPLIED, None, targets)


def _create(ws: Workspace, diff: MemoryDiff, op: CreateItem) -> Record:
    fields = dict(op.fields or {})
    if diff.source_id is not None:  # provenance: the item cites where the proposal came from
        sources = list(fields.get("source_references") or ())
        fields["source_references"] = list(dict.fromkeys([*sources, str(diff.source_id)]))
    return create_record(ws, record_type=RecordType.MEMORY, scope=diff.scope,
                         project=project_access_of(ws, diff.scope), title=op.title, body=op.body, fields=fields,
                         review=_review(ws, diff))


def _review(ws: Workspace, diff: MemoryDiff) -> dict[str, Any]:
    """The item's review provenance: who proposed the change, who approved it (the reviewer, who also writes
    the item and so is its record author when the diff creates it), and the diff."""
    return {"proposed_by": diff.author_id, "approved_by": ws.principal.user_id, "memory_diff_id": diff.id}


def _change(op: Operation, created: Mapping[int, DisplayId]) -> RecordChange:
    if isinstance(op, UpdateItem):
        return RecordChange(title=op.title, body=op.body, fields=op.fields)
    if isinstance(op, SupersedeItems):
        by = created[op.by] if isinstance(op.by, int) else op.by
        return RecordChange(status="superseded", fields={"superseded_by": str(by)})
    return RecordChange(status="archived")


# --- what a caller is shown of a diff ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiffSummary:
    """A diff in a list: who proposed what where and how it was decided, never an operation's detail."""

    id: int
    organisation_id: int
    scope: Scope
    source: DiffSource
    source_id: DisplayId | None
    rationale: str
    author_id: int | None
    status: DiffStatus
    created_at: datetime
    reviewer_id: int | None
    decided_at: datetime | None
    operation_count: int
    agent_run_id: int | None = None  # the agent run (a memory extraction) that proposed it

    @classmethod
    def of(cls, diff: MemoryDiff) -> DiffSummary:
        return cls(diff.id, diff.organisation_id, diff.scope, diff.source, diff.source_id, diff.rationale,
                   diff.author_id, diff.status, diff.created_at, diff.reviewer_id, diff.decided_at,
                   len(diff.operations), diff.agent_run_id)


@dataclass(frozen=True, slots=True)
class ItemChange:
    """One item an operation touches: its current values of what changes (None: an item the diff creates)
    next to the proposed ones, and (while pending) why the change could no longer apply."""

    display_id: DisplayId | None  # None: an item this diff will create and has not yet
    base_version: int | None
    current_version: int | None
    stale: str | None
    before: Mapping[str, Any] | None
    after: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ShownOperation:
    index: int
    kind: str
    visible: bool  # False: it touches an item the caller cannot read, so no change is shown
    changes: tuple[ItemChange, ...]


@dataclass(frozen=True, slots=True)
class ShownOutcome:
    index: int
    result: OutcomeResult
    reason: str | None
    display_ids: tuple[DisplayId, ...]


@dataclass(frozen=True, slots=True)
class ShownDiff:
    """A diff as its reader may see it: operations on items they cannot read carry no detail, and their
    outcomes say only whether they applied — never which item or why (SPEC §4)."""

    summary: DiffSummary
    review_note: str
    operations: tuple[ShownOperation, ...]
    outcomes: tuple[ShownOutcome, ...]


def shown(view: DiffView) -> ShownDiff:
    """What the caller whose readable items are ``view.readable_items`` is shown of ``view.diff``."""
    diff, items = view.diff, view.readable_items
    visible = [visible_operation(op, items) for op in diff.operations]
    created = {o.index: o.display_ids[0] for o in diff.outcomes if isinstance(diff.operations[o.index], CreateItem)}
    operations = tuple(
        ShownOperation(i, op.kind, seen, _changes(i, op, items, created, diff.status) if seen else ())
        for i, (op, seen) in enumerate(zip(diff.operations, visible, strict=True))
    )
    outcomes = tuple(_shown_outcome(o, visible[o.index]) for o in diff.outcomes)
    return ShownDiff(DiffSummary.of(diff), diff.review_note, operations, outcomes)


def _shown_outcome(outcome: OperationOutcome, visible: bool) -> ShownOutcome:
    if not visible:  # says that it applied or not, never which item or why
        return ShownOutcome(outcome.index, outcome.result, None, ())
    return ShownOutcome(outcome.index, outcome.result, outcome.reason, outcome.display_ids)


def _changes(index: int, op: Operation, items: Mapping[DisplayId, Record], created: Mapping[int, DisplayId],
             status: DiffStatus) -> tuple[ItemChange, ...]:
    if isinstance(op, CreateItem):
        return (ItemChange(created.get(index), None, None, None, None,
                           {"title": op.title, "body": op.body, "fields": dict(op.fields or {})}),)
    changes = []
    for ref in op.targets:
        item = items[ref.display_id]
        stale = stale_target_reason(ref, item) if status is DiffStatus.PENDING else None
        before, after = _before_after(op, item, created)
        changes.append(ItemChange(ref.display_id, ref.base_version, item.version, stale, before, after))
    return tuple(changes)


def _before_after(op: Operation, item: Record, created: Mapping[int, DisplayId]
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    if isinstance(op, UpdateItem):
        before: dict[str, Any] = {"title": item.title} if op.title is not None else {}
        after: dict[str, Any] = {"title": op.title} if op.title is not None else {}
        if op.body is not None:
            before["body"], after["body"] = item.body, op.body
        if op.fields:
            before["fields"] = {name: item.fields.get(name) for name in op.fields}
            after["fields"] = dict(op.fields)
        return before, after
    before = {"title": item.title, "status": item.status}
    if isinstance(op, SupersedeItems):
        by = op.by if isinstance(op.by, DisplayId) else created.get(op.by, f"the item operation {op.by} creates")
        return before, {"status": "superseded", "superseded_by": str(by)}
    return before, {"status": "archived"}
