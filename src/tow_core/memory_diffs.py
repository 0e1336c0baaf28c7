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

from tow_core.access import Scope
from tow_core.errors import Conflict, InvalidInput
from tow_core.knowledge import (
    MAX_BODY,
    MAX_TITLE,
    clean_text,
)
from tow_core.records import REVIEW_FIELDS, DisplayId, Page, Record, RecordType, validated_fields

MAX_OPERATIONS = 100
MAX_TARGETS = 500  # existing items one diff may change, over all its operations
MAX_RATIONALE = 20_000
MAX_NOTE = 5_000
MAX_PAGE = 200
# Set only by a supersede operation, never written directly by a proposal.
_MANAGED_FIELDS = frozenset({"superseded_by", *REVIEW_FIELDS})


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
    agent_run_id: int | None = None  # the agent run that proposed it (its author is the run's owner)


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
    agent_run_id: int | None = None

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
        raise InvalidInput(f"{managed[0]} is set by the review (a supersede operation, or approval)",
                           field=managed[0])


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

    def reviewers_among(self, org_id: int, diff_id: int, user_ids: Sequence[int]) -> frozenset[int]:
        """Which of ``user_ids`` may review the diff now: they read and write its scope (the inbox's rule,
        ``list_pending_writable``), asked for all of them in one statement."""
        ...

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

    def list_pending_writable(self, principal_id: int, org_id: int, project_id: int | None, *,
                              limit: int) -> Sequence[MemoryDiff]:
        """Pending diffs whose scope the principal may read and write (the reviewers' rule on the diff's
        scope), newest first; ``project_id`` set: only diffs in that project's scope."""
        ...

    def count_pending_writable(self, principal_id: int, org_id: int, project_id: int | None) -> int:
        """How many ``list_pending_writable`` would list without a limit."""
        ...
