"""The memory-diff JSON shapes and their mappers, shared by the API and pages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar.params import QueryParameter

from tow_core.errors import InvalidInput
from tow_core.memory_diffs import (
    MAX_NOTE,
    MAX_OPERATIONS,
    MAX_RATIONALE,
    ArchiveItems,
    CreateItem,
    DiffSource,
    DiffStatus,
    ItemRef,
    Operation,
    SupersedeItems,
    UpdateItem,
)
from tow_core.memory_review import DiffSummary, ItemChange, ShownDiff
from tow_core.records import DisplayId
from tow_http.shapes import Body, DisplayIdText, ScopeIn, ScopeOut, Strict, Title, Version, memory_fields, scope_out

Statuses = Annotated[list[DiffStatus] | None, QueryParameter(name="status", description="repeat to allow several")]

RULES = """
**Operations**: `create` (title, body, fields incl. `memory_type`), `update` (an item's `item` display ID and
the `base_version` you saw, plus the title/body/fields to change), `supersede` (`items` replaced `by` an existing
item's display ID, or `by_operation`: the index of a create operation earlier in this diff) and `archive`
(`items`). Each existing item is named with the version the proposal is based on, and may be the target of
one operation only.

**Who**: anyone who can write the diff's `scope` may propose (on an **open** project every member can write);
a diff is readable exactly when its scope is — otherwise 404. Approving or rejecting needs write access to the
diff's scope *and* to every item it changes; an item you cannot read makes the review fail with 404 naming
nothing about it.

**Approval** applies everything in one transaction. An operation whose item changed since the proposal (other
version, or no longer active) is refused as stale: if every operation is stale the answer is 409 and nothing
changes; if some apply the diff becomes `partially_applied` with a per-operation `outcomes` list; otherwise
`approved`. Only `pending` diffs can be decided (else 409). Items a diff creates take its scope and cite its
`source_id` in `source_references`, and every item a diff creates or changes records its review: `fields.proposed_by`
(the diff's author), `fields.approved_by` (the reviewer) and `fields.memory_diff_id` — set by approval only, never
by a direct write (422).

**Second reviewer**: with the organisation setting `require_second_reviewer` on, approving a diff you proposed —
or that an agent run of yours proposed (`agent_run_id`, e.g. a memory extraction) — is refused with 403;
rejecting it stays allowed.

**Citations**: every display ID an operation adds to `source_references` must be a record you can read in the
organisation — the proposer when proposing, the reviewer when approving (who writes the items) — else 422 with
`field: source_references`, the same answer whether the record does not exist or you may not read it. An
organisation `scope` is this organisation: an `id` naming another one is refused (422, `field: scope_id`).

Memory reaches `active` only through an approved diff or a direct edit (the records API); AI-produced changes
always arrive as pending diffs.

**Before/after**: each operation shows the current values of the items it touches next to the proposed ones —
only for items you can read; other operations show `visible: false` and no detail.
"""


# --- input shapes ------------------------------------------------------------------------------------


MemoryFields = Annotated[dict[str, Any], msgspec.Meta(extra_json_schema={"extra": memory_fields()})]
# gt=-1, not ge=0: Litestar 2.25 leaves a bound of 0 out of the OpenAPI document
OperationIndex = Annotated[int, msgspec.Meta(gt=-1, le=MAX_OPERATIONS - 1, description="the index of a create "
                                             "operation before this one")]


class TargetIn(Strict):
    item: DisplayIdText
    base_version: Version


class OperationIn(Strict, tag_field="op"):
    """Base of the operation shapes; ``op`` names the kind."""


class CreateIn(OperationIn, tag="create"):
    title: Title
    body: Body = ""
    fields: MemoryFields = msgspec.field(default_factory=dict)


class UpdateIn(OperationIn, tag="update"):
    item: DisplayIdText
    base_version: Version
    title: Title | None = None
    body: Body | None = None
    fields: MemoryFields | None = None


class SupersedeIn(OperationIn, tag="supersede"):
    items: Annotated[list[TargetIn], msgspec.Meta(min_length=1)]
    by: DisplayIdText | None = None
    by_operation: OperationIndex | None = None


class ArchiveIn(OperationIn, tag="archive"):
    items: Annotated[list[TargetIn], msgspec.Meta(min_length=1)]


class DiffIn(Strict):
    scope: ScopeIn
    operations: Annotated[list[CreateIn | UpdateIn | SupersedeIn | ArchiveIn],
                          msgspec.Meta(min_length=1, max_length=MAX_OPERATIONS)]
    source: DiffSource = DiffSource.MANUAL
    source_id: DisplayIdText | None = None
    rationale: Annotated[str, msgspec.Meta(max_length=MAX_RATIONALE)] = ""


class ReviewIn(Strict):
    note: Annotated[str, msgspec.Meta(max_length=MAX_NOTE)] = ""


# --- output shapes -----------------------------------------------------------------------------------


class ItemChangeOut(msgspec.Struct):
    display_id: str | None  # None: an item this diff will create
    base_version: int | None
    current_version: int | None
    stale: str | None  # while pending: why this change could no longer apply
    before: dict[str, Any] | None  # the item's current values of what changes
    after: dict[str, Any]


class OperationOut(msgspec.Struct):
    index: int
    op: str
    visible: bool
    changes: list[ItemChangeOut]


class OutcomeOut(msgspec.Struct):
    index: int
    result: str
    reason: str | None
    display_ids: list[str]


class DiffSummaryOut(msgspec.Struct):
    id: int
    organisation_id: int
    scope: ScopeOut
    source: str
    source_id: str | None
    rationale: str
    author_id: int | None
    status: str
    created_at: datetime
    reviewer_id: int | None
    decided_at: datetime | None
    operation_count: int
    agent_run_id: Annotated[int | None, msgspec.Meta(
        description="the agent run that proposed it (a memory extraction); its owner is `author_id`")] = None


class DiffOut(msgspec.Struct):
    id: int
    organisation_id: int
    scope: ScopeOut
    source: str
    source_id: str | None
    rationale: str
    author_id: int | None
    status: str
    created_at: datetime
    reviewer_id: int | None
    decided_at: datetime | None
    review_note: str
    operations: list[OperationOut]
    outcomes: list[OutcomeOut]
    agent_run_id: Annotated[int | None, msgspec.Meta(
        description="the agent run that proposed it (a memory extraction); its owner is `author_id`")] = None


class DiffPageOut(msgspec.Struct):
    items: list[DiffSummaryOut]
    next_cursor: str | None


# --- mappers -----------------------------------------------------------------------------------------


def _ref(target: TargetIn) -> ItemRef:
    return ItemRef(DisplayId.parse(target.item), target.base_version)


def operation_in(data: CreateIn | UpdateIn | SupersedeIn | ArchiveIn) -> Operation:
    if isinstance(data, CreateIn):
        return CreateItem(data.title, data.body, data.fields)
    if isinstance(data, UpdateIn):
        return UpdateItem(ItemRef(DisplayId.parse(data.item), data.base_version), data.title, data.body, data.fields)
    items = tuple(_ref(t) for t in data.items)
    if isinstance(data, ArchiveIn):
        return ArchiveItems(items)
    if (data.by is None) == (data.by_operation is None):
        raise InvalidInput("a supersede operation names exactly one of `by` and `by_operation`", field="by")
    return SupersedeItems(items, data.by_operation if data.by is None else DisplayId.parse(data.by))


def summary_out(diff: DiffSummary) -> DiffSummaryOut:
    return DiffSummaryOut(*_summary_fields(diff), diff.operation_count, diff.agent_run_id)


def _summary_fields(diff: DiffSummary) -> tuple:
    return (diff.id, diff.organisation_id, scope_out(diff.scope), diff.source.value,
            None if diff.source_id is None else str(diff.source_id), diff.rationale, diff.author_id,
            diff.status.value, diff.created_at, diff.reviewer_id, diff.decided_at)


def diff_out(diff: ShownDiff) -> DiffOut:
    """The diff as the use case already redacted it (``memory_review.shown``)."""
    operations = [OperationOut(o.index, o.kind, o.visible, [_change_out(c) for c in o.changes])
                  for o in diff.operations]
    outcomes = [OutcomeOut(o.index, o.result.value, o.reason, [str(i) for i in o.display_ids]) for o in diff.outcomes]
    return DiffOut(*_summary_fields(diff.summary), diff.review_note, operations, outcomes, diff.summary.agent_run_id)


def _change_out(change: ItemChange) -> ItemChangeOut:
    return ItemChangeOut(None if change.display_id is None else str(change.display_id), change.base_version,
                         change.current_version, change.stale, None if change.before is None else dict(change.before),
                         dict(change.after))
