"""An in-memory ``Conversations`` (tow_core.conversations) for unit tests and the port's contract suite."""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import replace
from datetime import datetime

from tests.fakes import InMemoryDirectory
from tow_core.conversations import (
    Conversation,
    NewConversation,
    NewTurn,
    OpenAction,
    Turn,
    TurnRole,
    checked_tool_activity,
)
from tow_core.errors import InvalidInput, NotFound
from tow_core.records import Page


def _newest_first(actions: list[OpenAction]) -> list[OpenAction]:
    """By answer, newest first (time, then turn id), keeping each turn's actions in their order."""
    turns = sorted({(a.answered_at, a.turn_id) for a in actions}, reverse=True)
    return [a for key in turns for a in actions if (a.answered_at, a.turn_id) == key]


class InMemoryConversations:
    def __init__(self, directory: InMemoryDirectory) -> None:
        self._directory = directory
        self._ids = itertools.count(1)
        self.rows: dict[int, Conversation] = {}
        self.turn_rows: dict[int, list[Turn]] = {}

    def create(self, new: NewConversation, *, at: datetime) -> Conversation:
        # the foreign keys of migration 0015: owner, organisation, a project of that organisation
        if self._directory.user(new.owner_id) is None or self._directory.organisation(new.organisation_id) is None:
            raise InvalidInput("conversation is not valid: its owner or organisation does not exist")
        if new.project_id is not None:
            project = self._directory.project(new.project_id)
            if project is None or project.organisation_id != new.organisation_id:
                raise InvalidInput("conversation is not valid: its project is not in its organisation")
        if not 1 <= len(new.title) <= 200:
            raise InvalidInput("conversation is not valid: the title must have 1 to 200 characters")
        conversation = Conversation(next(self._ids), new.owner_id, new.organisation_id, new.project_id, new.title,
                                    new.memory_extraction, at, at)
        self.rows[conversation.id] = conversation
        self.turn_rows[conversation.id] = []
        return conversation

    def owned(self, owner_id: int, org_id: int, conversation_id: int) -> Conversation | None:
        found = self.rows.get(conversation_id)
        return found if found is not None and (found.owner_id, found.organisation_id) == (owner_id, org_id) else None

    def list_owned(self, owner_id: int, org_id: int, project_ids: frozenset[int], *, cursor: str | None,
                   limit: int) -> Page[Conversation]:
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        mine = sorted((c for c in self.rows.values() if (c.owner_id, c.organisation_id) == (owner_id, org_id)
                       and (c.project_id is None or c.project_id in project_ids)),
                      key=lambda c: (c.updated_at, c.id), reverse=True)
        if cursor is not None:
            after = self._decode(cursor)
            mine = [c for c in mine if (c.updated_at, c.id) < after]
        items = tuple(mine[:limit])
        return Page(items, self._encode(items[-1]) if len(mine) > limit else None)

    def add_turn(self, conversation_id: int, turn: NewTurn, *, at: datetime) -> Turn:
        checked = turn.checked()
        conversation = self.rows.get(conversation_id)
        if conversation is None:
            raise NotFound("conversation not found")
        turns = self.turn_rows[conversation_id]
        added = Turn(next(self._ids), conversation_id, len(turns) + 1, checked.role, checked.text,
                     tuple(checked.tool_activity), tuple(checked.citations), tuple(checked.dropped_citations),
                     tuple(checked.web_sources), checked.agent_run_id, at)
        turns.append(added)
        self.rows[conversation_id] = replace(conversation, updated_at=max(conversation.updated_at, at))
        return added

    def turns(self, conversation_id: int) -> tuple[Turn, ...]:
        return tuple(self.turn_rows.get(conversation_id, ()))

    def turn_for_update(self, conversation_id: int, turn_id: int) -> Turn | None:
        return next((t for t in self.turn_rows.get(conversation_id, ()) if t.id == turn_id), None)

    def set_tool_activity(self, turn_id: int, tool_activity) -> Turn:
        activity = checked_tool_activity(tool_activity)
        for turns in self.turn_rows.values():
            for index, turn in enumerate(turns):
                if turn.id == turn_id:
                    turns[index] = replace(turn, tool_activity=activity)
                    return turns[index]
        raise NotFound("turn not found")

    def _open_actions(self, owner_id: int, org_id: int, project_ids: frozenset[int], unscoped: bool
                      ) -> list[OpenAction]:
        found = []
        for conversation in self.rows.values():
            covered = (conversation.project_id in project_ids if conversation.project_id is not None else unscoped)
            if (conversation.owner_id, conversation.organisation_id) != (owner_id, org_id) or not covered:
                continue
            for turn in self.turn_rows[conversation.id]:
                if turn.role is not TurnRole.ASSISTANT:
                    continue
                for activity in turn.tool_activity:
                    action = activity.get("pending_action")
                    if isinstance(action, dict) and "applied" in action and action["applied"] is None:
                        found.append(OpenAction(conversation, turn.id, action, turn.created_at))
        return _newest_first(found)

    def open_actions(self, owner_id: int, org_id: int, project_ids: frozenset[int], *, unscoped: bool,
                     limit: int) -> list[OpenAction]:
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        return self._open_actions(owner_id, org_id, project_ids, unscoped)[:limit]

    def count_open_actions(self, owner_id: int, org_id: int, project_ids: frozenset[int], *,
                           unscoped: bool) -> int:
        return len(self._open_actions(owner_id, org_id, project_ids, unscoped))

    def update(self, conversation_id: int, *, title: str, memory_extraction: bool, at: datetime) -> Conversation:
        conversation = self.rows.get(conversation_id)
        if conversation is None:
            raise NotFound("conversation not found")
        if not 1 <= len(title) <= 200:
            raise InvalidInput("conversation is not valid: the title must have 1 to 200 characters")
        changed = replace(conversation, title=title, memory_extraction=memory_extraction,
                          updated_at=max(conversation.updated_at, at))
        self.rows[conversation_id] = changed
        return changed

    def delete(self, conversation_id: int) -> bool:
        self.turn_rows.pop(conversation_id, None)
        return self.rows.pop(conversation_id, None) is not None

    def purge_idle(self, *, last_activity_before: datetime, limit: int) -> int:
        idle = sorted((c for c in self.rows.values() if c.updated_at < last_activity_before),
                      key=lambda c: c.updated_at)[:limit]
        for conversation in idle:
            self.delete(conversation.id)
        return len(idle)

    @staticmethod
    def _encode(conversation: Conversation) -> str:
        key = [conversation.updated_at.isoformat(), conversation.id]
        return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")

    @staticmethod
    def _decode(cursor: str) -> tuple[datetime, int]:
        try:
            at, id_ = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            return datetime.fromisoformat(at), int(id_)
        except (ValueError, TypeError) as exc:
            raise InvalidInput("cursor is not one this server issued; start again without it", field="cursor") from exc
