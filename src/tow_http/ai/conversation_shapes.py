"""The conversation JSON shapes and their mappers (issue 13), shared by the conversation API and the chat
endpoints that add turns to it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from tow_core.conversations import DEFAULT_TITLE, MAX_TITLE, Conversation, Turn
from tow_core.use_cases.conversations import ConversationWithTurns
from tow_http.shapes import END, Strict

ConversationTitle = Annotated[str, msgspec.Meta(
    max_length=MAX_TITLE, description=f"at most {MAX_TITLE} characters; blank means \"{DEFAULT_TITLE}\"")]
ProjectKey = Annotated[str, msgspec.Meta(pattern=f"^[A-Za-z0-9]{{2,10}}{END}",
                                         description="a project's key, e.g. APP (any case)")]

RULES = """
**Private**: only the person who started a conversation reads, changes or deletes it — not the organisation's
owners or admins, not server admins. For anyone else it is 404, exactly as if it did not exist (the data-egress
ledger, not the conversation, shows administrators what was sent to a provider).

**Scope**: all the projects you read, or one project (`project_key`). The answers only use what you can read, and
a conversation scoped to a project is only yours to open while you still read that project (404 once you lose
access, back when you get it back); leaving the organisation ends access to all of them.

**Retention**: conversations idle (no new turn, rename or change) longer than `ai.chat_retention_days` (default 90;
0 keeps them) are deleted with their turns.
"""


class ConversationIn(Strict):
    title: ConversationTitle = ""
    project_key: ProjectKey | None = None  # None: all the projects you read
    memory_extraction: bool = True


class ConversationPatch(Strict):
    title: ConversationTitle | None = None  # None: leave as it is
    memory_extraction: bool | None = None


class ConversationOut(msgspec.Struct):
    id: int
    organisation_id: int
    project_id: int | None  # None: all projects
    title: str
    memory_extraction: bool  # propose memory changes (as pending diffs) after answers
    created_at: datetime
    updated_at: datetime  # the last activity; retention counts from it


class ConversationPageOut(msgspec.Struct):
    items: list[ConversationOut]
    next_cursor: str | None


class TurnOut(msgspec.Struct):
    id: int
    position: int
    role: str  # user | assistant
    text: str
    tool_activity: list[dict[str, Any]]
    citations: list[dict[str, Any]]  # the citations the server kept
    dropped_citations: list[dict[str, Any]]  # the ones it dropped, each with its reason
    web_sources: list[dict[str, Any]]
    agent_run_id: int | None  # the run that produced an answer
    created_at: datetime
    # what the assistant proposed (a ticket or a memory change), each with its id: `POST .../actions/{id}/apply`;
    # `applied` is null until then, and then names the ticket or the memory diff
    pending_actions: list[dict[str, Any]]


class ConversationWithTurnsOut(ConversationOut):
    turns: list[TurnOut]


def conversation_out(conversation: Conversation) -> ConversationOut:
    c = conversation
    return ConversationOut(c.id, c.organisation_id, c.project_id, c.title, c.memory_extraction, c.created_at,
                           c.updated_at)


def turn_out(turn: Turn) -> TurnOut:
    t = turn
    return TurnOut(t.id, t.position, t.role.value, t.text, [dict(a) for a in t.tool_activity],
                   [dict(c) for c in t.citations], [dict(d) for d in t.dropped_citations],
                   [dict(s) for s in t.web_sources], t.agent_run_id, t.created_at,
                   [dict(a["pending_action"]) for a in t.tool_activity if a.get("pending_action")])


def conversation_with_turns_out(found: ConversationWithTurns) -> ConversationWithTurnsOut:
    c = found.conversation
    return ConversationWithTurnsOut(c.id, c.organisation_id, c.project_id, c.title, c.memory_extraction,
                                    c.created_at, c.updated_at, [turn_out(t) for t in found.turns])
