"""Pending actions (SPEC §6, issue 13 item 6): the assistant may propose a new ticket or a memory change,
and the user applies it — the assistant itself never writes.

Rules:
- ``propose_ticket`` and ``propose_memory_change`` only validate their arguments and record a proposal on
  the run (``PendingAction``); bad arguments are an error the model sees. The proposals are stored on the
  answer's turn, inside its tool activity (``"pending_action"``, with an ``id`` of ``<run id>-<n>``), so no
  migration was needed.
- Applying (``apply_action``) is the conversation owner's act, done as them at that moment: a ticket goes
  through ``knowledge.create_record`` (write access to the scope checked then), in the conversation's
  project, else the organisation; a memory change becomes a **pending memory diff** the user proposes
  (``memory_review.propose_diff``: source ``chat``), never an approved change. A create is proposed in the
  conversation's scope; an update or retirement in the scope of the item it changes.
- Each action applies once: the turn is locked, an action already applied is Conflict, and the record's
  display ID or the diff's id is written on the action in the same transaction as the write itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tow_core.access import Scope
from tow_core.conversations import Conversation, Conversations, JsonObject, Turn
from tow_core.errors import Conflict, InvalidInput, NotFound
from tow_core.knowledge import MAX_BODY, MAX_TITLE, Workspace, clean_text, create_record, project_access_of
from tow_core.memory_diffs import (
    MAX_RATIONALE,
    ArchiveItems,
    CreateItem,
    DiffSource,
    ItemRef,
    MemoryDiffStore,
    Operation,
    UpdateItem,
    check_operations,
)
from tow_core.memory_review import MemoryDesk, ShownDiff, propose_diff, shown
from tow_core.notifications import Notifications
from tow_core.records import MEMORY_TYPES, DisplayId, Record, RecordType

TICKET = "ticket"
MEMORY_CHANGE = "memory_change"
MEMORY_OPERATIONS = ("create", "update", "retire")  # retire: the item is archived (stays readable)
AWAITS_USER = "proposed: it awaits the user, who applies it (nothing was written)"
DEFAULT_RATIONALE = "Proposed by the assistant in a chat and applied by the person it answered."


@dataclass(frozen=True, slots=True)
class PendingAction:
    """A proposal the run recorded: ``number`` counts them in the run; ``proposal`` is its checked JSON."""

    number: int
    kind: str  # ticket | memory_change
    proposal: Mapping[str, Any]


def action_id(run_id: int, number: int) -> str:
    return f"{run_id}-{number}"


def action_json(action: PendingAction, run_id: int) -> dict[str, Any]:
    """The action as stored on the answer's turn; ``applied`` is null until the user applies it."""
    return {"id": action_id(run_id, action.number), "kind": action.kind, **action.proposal, "applied": None}


# --- checking what the model proposes ----------------------------------------------------------------------


def _text(arguments: Mapping[str, Any], name: str, max_length: int, *, required: bool) -> str | None:
    value = arguments.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string", field=name)
    return clean_text(value, name, max_length=max_length, required=required)


def _whole(arguments: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = arguments.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}", field=name)
    return value


def ticket_proposal(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``{title, body, priority}`` checked as a ticket's would be (priority 1–4 or null: the default)."""
    return {"title": _text(arguments, "title", MAX_TITLE, required=True),
            "body": _text(arguments, "body", MAX_BODY, required=False) or "",
            "priority": _whole(arguments, "priority", 1, 4)}


def memory_proposal(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A create (title, body, memory_type, importance), an update (display_id, base_version and what changes)
    or a retire (display_id, base_version) of a memory item, checked as a memory diff's operation."""
    operation = arguments.get("operation")
    if operation not in MEMORY_OPERATIONS:
        raise InvalidInput(f"operation must be one of {', '.join(MEMORY_OPERATIONS)}", field="operation")
    memory_type = arguments.get("memory_type")
    if memory_type is not None and memory_type not in MEMORY_TYPES:
        raise InvalidInput(f"memory_type must be one of {', '.join(MEMORY_TYPES)}", field="memory_type")
    proposal: dict[str, Any] = {
        "operation": operation,
        "rationale": _text(arguments, "rationale", MAX_RATIONALE, required=False) or "",
    }
    if operation == "create":
        proposal |= {"title": _text(arguments, "title", MAX_TITLE, required=True),
                     "body": _text(arguments, "body", MAX_BODY, required=False) or "",
                     "memory_type": memory_type, "importance": _whole(arguments, "importance", 1, 5)}
    else:
        display_id = _text(arguments, "display_id", 40, required=True) or ""
        proposal |= {"display_id": str(DisplayId.parse(display_id.upper())),
                     "base_version": _whole(arguments, "base_version", 1, 2**31 - 1)}
        if proposal["base_version"] is None:
            raise InvalidInput("base_version (the item version you read) is required", field="base_version")
        if operation == "update":
            proposal |= {"title": _text(arguments, "title", MAX_TITLE, required=False),
                         "body": _text(arguments, "body", MAX_BODY, required=False),
                         "memory_type": memory_type, "importance": _whole(arguments, "importance", 1, 5)}
    check_operations([memory_operation(proposal)])  # the diff's own rules: a create names its memory_type ...
    return proposal


def memory_operation(proposal: Mapping[str, Any]) -> Operation:
    fields = {name: proposal[name] for name in ("memory_type", "importance") if proposal.get(name) is not None}
    if proposal["operation"] == "create":
        if "memory_type" not in fields:
            raise InvalidInput("memory_type is required to create a memory item", field="memory_type")
        return CreateItem(proposal["title"], proposal["body"], fields)  # check_operations validates the fields
    ref = ItemRef(DisplayId.parse(proposal["display_id"]), proposal["base_version"])
    if proposal["operation"] == "update":
        return UpdateItem(ref, proposal.get("title"), proposal.get("body"), fields or None)
    return ArchiveItems((ref,))


def check_against_item(proposal: Mapping[str, Any], item: Record | None) -> None:
    """An update or retire names a memory item the asker reads, at its current version and active."""
    if proposal["operation"] == "create":
        return
    if item is None or item.type is not RecordType.MEMORY:
        raise NotFound(f"memory item {proposal['display_id']} not found")
    if item.version != proposal["base_version"] or item.status != "active":
        raise Conflict(f"{item.display_id} is at version {item.version} and {item.status}: read it again and "
                       "propose against what it says now", field="base_version")


# --- applying ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppliedAction:
    action_id: str
    kind: str
    applied_at: datetime
    record: Record | None = None  # the ticket it created
    memory_diff: ShownDiff | None = None  # the pending diff it proposed


def _find(turns: tuple[Turn, ...], wanted: str) -> tuple[Turn, int] | None:
    for turn in turns:
        for index, activity in enumerate(turn.tool_activity):
            action = activity.get("pending_action")
            if isinstance(action, Mapping) and action.get("id") == wanted:
                return turn, index
    return None


def apply_action(ws: Workspace, conversations: Conversations, diffs: MemoryDiffStore, conversation: Conversation,
                 wanted: str, *, now: datetime, notifications: Notifications) -> AppliedAction:
    """Apply the pending action ``wanted`` of ``conversation`` (already checked as the caller's own); a proposed
    memory diff tells its reviewers through ``notifications``."""
    found = _find(conversations.turns(conversation.id), wanted)
    locked = conversations.turn_for_update(conversation.id, found[0].id) if found else None
    found = _find((locked,), wanted) if locked is not None else None
    if found is None:
        raise NotFound("action not found")
    turn, index = found
    action: JsonObject = turn.tool_activity[index]["pending_action"]
    if action.get("applied"):
        raise Conflict("this action was already applied", field="action_id")
    scope = (Scope.project(ws.org_id, conversation.project_id) if conversation.project_id is not None
             else Scope.organisation(ws.org_id))
    applied: dict[str, Any] = {"at": now.isoformat()}
    result = AppliedAction(wanted, str(action.get("kind")), now)
    if action.get("kind") == TICKET:
        fields = {"priority": action["priority"]} if action.get("priority") is not None else {}
        record = create_record(ws, record_type=RecordType.TICKET, scope=scope, project=project_access_of(ws, scope),
                               title=action["title"], body=action.get("body") or "", fields=fields)
        applied["record"] = str(record.display_id)
        result = AppliedAction(wanted, TICKET, now, record=record)
    elif action.get("kind") == MEMORY_CHANGE:
        if action["operation"] != "create":  # proposed where the item lives, so its writers review it
            item = ws.records.readable_by_display_id(ws.principal.user_id, ws.org_id,
                                                     DisplayId.parse(action["display_id"]))
            if item is None:
                raise NotFound(f"memory item {action['display_id']} not found")
            scope = item.scope
        view = propose_diff(MemoryDesk(ws, diffs, notifications), scope=scope, project=project_access_of(ws, scope),
                            operations=[memory_operation(action)], source=DiffSource.CHAT,
                            rationale=action.get("rationale") or DEFAULT_RATIONALE)
        applied["memory_diff_id"] = view.diff.id
        result = AppliedAction(wanted, MEMORY_CHANGE, now, memory_diff=shown(view))
    else:
        raise NotFound("action not found")
    activity = [dict(a) for a in turn.tool_activity]
    activity[index]["pending_action"] = {**action, "applied": applied}
    conversations.set_tool_activity(turn.id, activity)
    return result
