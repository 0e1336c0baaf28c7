"""Conversations (SPEC §6 grounded chat, issue 13): a person's chat with the assistant and its turns.

A conversation belongs to one user in one organisation and has a scope: all the projects its owner reads
(``project_id`` None) or one project. Each turn is the user's question or the assistant's answer, with the
tool activity, the citations the server kept and the ones it dropped (each with its reason), the web sources
and the agent run that produced it.

Rules:
- **Only the owner reads a conversation.** Not organisation owners or admins, not server admins: for
  anyone else it is "not found", the same answer as for one that does not exist (the egress ledger, not the
  conversation, shows admins what left the server). The store filters by owner inside its query.
- The owner must still be an active member of the organisation, and for a conversation scoped to a project
  still read that project, at every use (SPEC §2 immediate revocation): otherwise "not found".
  ``owned_conversation`` is the one check every front door (the API, the pages, the tool loop) goes through.
- Turns are numbered 1, 2, ... in the order they were added; adding a turn, renaming or changing the
  memory setting is activity: it moves ``updated_at``, the time retention counts from.
- Retention (``ai.chat_retention_days``): the worker's housekeeping deletes conversations whose last
  activity is older than the retention, with their turns; 0 keeps them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from tow_core.access import can_read_project
from tow_core.errors import InvalidInput, NotFound
from tow_core.knowledge import Workspace, clean_text
from tow_core.records import Page

MAX_TITLE = 200
MAX_TURN_TEXT = 200_000
MAX_TURN_DETAILS = 2_000_000  # characters of JSON over a turn's tool activity, citations and sources
MAX_PAGE = 200
DEFAULT_TITLE = "New conversation"

JsonObject = Mapping[str, Any]


class TurnRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True, slots=True)
class NewConversation:
    owner_id: int
    organisation_id: int
    project_id: int | None  # None: every project the owner reads
    title: str
    memory_extraction: bool = True  # propose memory changes (as pending diffs) after each answer


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    owner_id: int
    organisation_id: int
    project_id: int | None
    title: str
    memory_extraction: bool
    created_at: datetime
    updated_at: datetime  # the last activity: creation, a turn, a rename or a settings change


@dataclass(frozen=True, slots=True)
class NewTurn:
    """A turn as the tool loop saves it. The lists are JSON objects whose shape the tool loop defines;
    each dropped citation says why it was dropped (``reason``)."""

    role: TurnRole
    text: str
    tool_activity: Sequence[JsonObject] = ()
    citations: Sequence[JsonObject] = ()
    dropped_citations: Sequence[JsonObject] = ()
    web_sources: Sequence[JsonObject] = ()
    agent_run_id: int | None = None

    def checked(self) -> NewTurn:
        """The turn with its text cleaned and its lists as plain JSON (what storage gives back), or
        InvalidInput naming the field."""
        role = _role(self.role)
        text = clean_text(self.text, "text", max_length=MAX_TURN_TEXT, required=role is TurnRole.USER)
        lists = {name: _json_list(getattr(self, name), name)
                 for name in ("tool_activity", "citations", "dropped_citations", "web_sources")}
        if sum(len(json.dumps(value)) for value in lists.values()) > MAX_TURN_DETAILS:
            raise InvalidInput(f"a turn's tool activity, citations and sources hold at most {MAX_TURN_DETAILS} "
                               "characters of JSON", field="tool_activity")
        for dropped in lists["dropped_citations"]:
            if not isinstance(dropped.get("reason"), str) or not dropped["reason"].strip():
                raise InvalidInput("every dropped citation says why it was dropped (reason)",
                                   field="dropped_citations")
        if self.agent_run_id is not None and (type(self.agent_run_id) is not int or self.agent_run_id < 1):
            raise InvalidInput("agent_run_id must be a run id", field="agent_run_id")
        return NewTurn(role, text, agent_run_id=self.agent_run_id, **lists)


def checked_tool_activity(tool_activity: Sequence[JsonObject]) -> tuple[JsonObject, ...]:
    """A turn's tool activity as stored (plain JSON), or InvalidInput: the rules of ``NewTurn.checked``."""
    return NewTurn(TurnRole.ASSISTANT, "", tool_activity=tool_activity).checked().tool_activity


@dataclass(frozen=True, slots=True)
class Turn:
    id: int
    conversation_id: int
    position: int  # 1, 2, ... in the order the turns were added
    role: TurnRole
    text: str
    tool_activity: tuple[JsonObject, ...]
    citations: tuple[JsonObject, ...]
    dropped_citations: tuple[JsonObject, ...]
    web_sources: tuple[JsonObject, ...]
    agent_run_id: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OpenAction:
    """A pending action of an answer in its owner's conversation that nobody applied yet
    (``tow_core.chat_actions``: stored on the turn's tool activity as ``"pending_action"``, ``applied`` null)."""

    conversation: Conversation
    turn_id: int
    action: JsonObject  # as stored: id, kind, the checked proposal, applied null
    answered_at: datetime  # when the answer proposing it was saved


def _role(role: object) -> TurnRole:
    try:
        return TurnRole(role)
    except ValueError as exc:
        raise InvalidInput("role must be user or assistant", field="role") from exc


def _json_list(items: Sequence[JsonObject], field: str) -> tuple[JsonObject, ...]:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise InvalidInput(f"{field} must be a list of JSON objects", field=field)
    if not all(isinstance(item, Mapping) for item in items):
        raise InvalidInput(f"{field} must be a list of JSON objects", field=field)
    try:  # round trip: tuples become lists, exactly as storage gives them back
        return tuple(json.loads(json.dumps([dict(item) for item in items], allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field} must hold only JSON values", field=field) from exc


def conversation_title(title: str | None) -> str:
    """The title to store: cleaned, at most ``MAX_TITLE`` characters, ``DEFAULT_TITLE`` when blank."""
    cleaned = clean_text(title or "", "title", max_length=MAX_TITLE).strip()
    return cleaned or DEFAULT_TITLE


# --- the store port ---------------------------------------------------------------------------------


class Conversations(Protocol):
    """Conversations and their turns in storage. Reads take the owner and answer only the owner's."""

    def create(self, new: NewConversation, *, at: datetime) -> Conversation: ...

    def owned(self, owner_id: int, org_id: int, conversation_id: int) -> Conversation | None:
        """The conversation if ``owner_id`` owns it in ``org_id``; None otherwise (missing or another's)."""
        ...

    def list_owned(self, owner_id: int, org_id: int, project_ids: frozenset[int], *, cursor: str | None,
                   limit: int) -> Page[Conversation]:
        """The owner's conversations over all projects, or scoped to one of ``project_ids``; newest
        activity first (``updated_at``, then id), in keyset pages."""
        ...

    def add_turn(self, conversation_id: int, turn: NewTurn, *, at: datetime) -> Turn:
        """Append ``turn.checked()`` (position = last + 1, safe against a concurrent append) and move the
        conversation's ``updated_at`` to ``at``; NotFound when the conversation is gone. The caller
        authorises (``owned_conversation``)."""
        ...

    def turns(self, conversation_id: int) -> tuple[Turn, ...]:
        """Every turn, by position."""
        ...

    def turn_for_update(self, conversation_id: int, turn_id: int) -> Turn | None:
        """The turn of that conversation, locked until the transaction ends (applying a pending action on it
        waits for another that is applying one); None when it is not there."""
        ...

    def set_tool_activity(self, turn_id: int, tool_activity: Sequence[JsonObject]) -> Turn:
        """Replace the turn's tool activity (to record a pending action applied), checked as ``NewTurn``
        checks it; NotFound when the turn is gone."""
        ...

    def open_actions(self, owner_id: int, org_id: int, project_ids: frozenset[int], *, unscoped: bool,
                     limit: int) -> Sequence[OpenAction]:
        """The pending actions not yet applied in the owner's conversations scoped to one of ``project_ids`` and,
        with ``unscoped``, in those over all projects; newest answer first, a turn's actions in their order."""
        ...

    def count_open_actions(self, owner_id: int, org_id: int, project_ids: frozenset[int], *,
                           unscoped: bool) -> int:
        """How many ``open_actions`` would list without a limit."""
        ...

    def update(self, conversation_id: int, *, title: str, memory_extraction: bool, at: datetime) -> Conversation:
        """NotFound when the conversation is gone."""
        ...

    def delete(self, conversation_id: int) -> bool:
        """Delete it with its turns and the live events (``AgentRuns.events_after``) of the runs its turns
        name; False when it was already gone."""
        ...

    def purge_idle(self, *, last_activity_before: datetime, limit: int) -> int:
        """Delete conversations (with their turns and their runs' events, as ``delete``) whose ``updated_at``
        is before the cutoff; how many went."""
        ...


# --- the rules -----------------------------------------------------------------------------------------


def project_scope(ws: Workspace, project_key: str | None) -> int | None:
    """The project a new conversation is scoped to (None: all projects): one the caller reads, by key;
    an unknown project and an unreadable one are both "not found"."""
    if project_key is None:
        return None
    key = project_key.strip().upper()
    project = next((p for p in ws.directory.projects(ws.org_id) if p.key == key), None)
    if project is None or not can_read_project(ws.principal, project.access):
        raise NotFound(f"project {project_key} not found")
    return project.id


def readable_project_ids(ws: Workspace) -> frozenset[int]:
    return frozenset(p.id for p in ws.directory.projects(ws.org_id) if can_read_project(ws.principal, p.access))


def owned_conversation(ws: Workspace, conversations: Conversations, conversation_id: int) -> Conversation:
    """The conversation, if the caller (a member, checked by the workspace) owns it and still reads its
    project; NotFound otherwise, whoever the caller is (SPEC §2: never reveal existence)."""
    found = conversations.owned(ws.principal.user_id, ws.org_id, conversation_id)
    if found is None or (found.project_id is not None and not _reads_project(ws, found.project_id)):
        raise NotFound("conversation not found")
    return found


def _reads_project(ws: Workspace, project_id: int) -> bool:
    project = ws.directory.project(project_id)
    return project is not None and project.organisation_id == ws.org_id and can_read_project(ws.principal,
                                                                                             project.access)


def purge_idle_conversations(conversations: Conversations, *, now: datetime, retention_days: int,
                             limit: int = 1000) -> int:
    """Housekeeping: delete conversations idle longer than ``retention_days`` (0: keep every one)."""
    if retention_days == 0:
        return 0
    return conversations.purge_idle(last_activity_before=now - timedelta(days=retention_days), limit=limit)
