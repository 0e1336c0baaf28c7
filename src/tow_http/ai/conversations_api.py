"""Conversations with the assistant over HTTP (issue 13, SPEC §6): start, list, read, change and delete your own.

Asking a question queues an agent run that answers it (``tow_core.use_cases.chat``); the answer is read back
from the conversation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Response, Router, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED

from tow_core.unit_of_work import Credential
from tow_core.use_cases.chat import ChatUseCases
from tow_core.use_cases.conversations import ConversationUseCases
from tow_http.ai.conversation_shapes import (
    RULES,
    ConversationIn,
    ConversationOut,
    ConversationPageOut,
    ConversationPatch,
    ConversationWithTurnsOut,
    TurnOut,
    conversation_out,
    conversation_with_turns_out,
    turn_out,
)
from tow_http.shapes import Cursor, Limit, Strict

BASE = "/organisations/{org_id:int}/conversations"
ONE = BASE + "/{conversation_id:int}"


@post(BASE, summary="Start a conversation with the assistant",
      description="A new, empty conversation of yours, over all the projects you read or one of them "
      "(`project_key`; 404 for a project you cannot read). 503 `ai_not_configured` without OPENAI_API_KEY.\n"
      + RULES, status_code=HTTP_201_CREATED, sync_to_thread=True)
def start_conversation(org_id: int, data: JSONBody[ConversationIn], caller: NamedDependency[Credential],
                       conversations: NamedDependency[ConversationUseCases]) -> ConversationOut:
    return conversation_out(conversations.start(caller, org_id, data.project_key, data.title,
                                                memory_extraction=data.memory_extraction))


@get(BASE, summary="List your conversations",
     description="Yours only, newest activity first, with cursor pagination; conversations of projects you no "
     "longer read are left out. Works without AI configured.\n" + RULES, sync_to_thread=True)
def list_conversations(org_id: int, caller: NamedDependency[Credential],
                       conversations: NamedDependency[ConversationUseCases], cursor: Cursor = None,
                       limit: Limit = 50) -> ConversationPageOut:
    page = conversations.list_mine(caller, org_id, cursor=cursor, limit=limit)
    return ConversationPageOut([conversation_out(c) for c in page.items], page.next_cursor)


@get(ONE, summary="A conversation of yours with its turns",
     description="Every turn in order: your questions and the answers, with their tool activity, the citations "
     "the server kept and the ones it dropped (with the reason), web sources and the agent run that produced "
     "each answer. Works without AI configured.\n" + RULES, sync_to_thread=True)
def get_conversation(org_id: int, conversation_id: int, caller: NamedDependency[Credential],
                     conversations: NamedDependency[ConversationUseCases]) -> ConversationWithTurnsOut:
    return conversation_with_turns_out(conversations.get(caller, org_id, conversation_id))


@patch(ONE, summary="Rename a conversation or change its memory setting",
       description="`title` renames it; `memory_extraction` turns proposing memory changes after answers on or "
       "off; a field left out stays as it is. Works without AI configured.\n" + RULES, sync_to_thread=True)
def update_conversation(org_id: int, conversation_id: int, data: JSONBody[ConversationPatch],
                        caller: NamedDependency[Credential],
                        conversations: NamedDependency[ConversationUseCases]) -> ConversationOut:
    return conversation_out(conversations.update(caller, org_id, conversation_id, title=data.title,
                                                 memory_extraction=data.memory_extraction))


@delete(ONE, summary="Delete a conversation",
        description="Deleted at once with every turn; nothing of it is kept. Works without AI configured, so you "
        "can always delete what you said.\n" + RULES, sync_to_thread=True)
def delete_conversation(org_id: int, conversation_id: int, caller: NamedDependency[Credential],
                        conversations: NamedDependency[ConversationUseCases]) -> Response[None]:
    conversations.delete(caller, org_id, conversation_id)
    return Response(None, status_code=204)


class QuestionIn(Strict):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000, description="your question")]


class AskedOut(msgspec.Struct):
    question: TurnOut
    run_id: Annotated[int, msgspec.Meta(description="the agent run answering it: `GET .../agent-runs/{run_id}`")]
    run_status: str
    events_url: Annotated[str, msgspec.Meta(
        description="follow the answer live: server-sent events of the run (`GET .../agent-runs/{run_id}/events`)")]


@post(ONE + "/questions", summary="Ask the assistant in a conversation of yours",
      description="Saves your question as a turn and queues an agent run (kind `chat`) that answers it as you: "
      "every tool call (search, get a record, backlinks, web search and page fetch when configured) reads only "
      "what you may read, at that moment. The answer is added to the conversation when the run completes "
      "(`GET` the conversation or the run); follow it live at `events_url` (server-sent events: text deltas, tool "
      "activity, the checked answer, done). Citations are kept only for records a tool returned in the run that "
      "you can still read when the answer is saved and that contain any quoted words; the others are listed as "
      "dropped with the reason. 503 `ai_not_configured` without OPENAI_API_KEY.\n" + RULES,
      status_code=HTTP_202_ACCEPTED, sync_to_thread=True)
def ask_question(org_id: int, conversation_id: int, data: JSONBody[QuestionIn],
                 caller: NamedDependency[Credential], chat: NamedDependency[ChatUseCases]) -> AskedOut:
    asked = chat.ask(caller, org_id, conversation_id, data.text)
    return AskedOut(turn_out(asked.question), asked.run.id, asked.run.status.value,
                    f"/api/organisations/{org_id}/agent-runs/{asked.run.id}/events")


class AppliedActionOut(msgspec.Struct):
    action_id: str
    kind: Annotated[str, msgspec.Meta(description="`ticket` or `memory_change`")]
    applied_at: datetime
    record_display_id: Annotated[str | None, msgspec.Meta(description="the ticket it created")] = None
    memory_diff_id: Annotated[int | None, msgspec.Meta(
        description="the pending memory diff it proposed: `GET .../memory-diffs/{id}`")] = None


@post(ONE + "/actions/{action_id:str}/apply", summary="Apply an action the assistant proposed",
      description="The assistant never writes: when it proposes a new ticket or a memory change, the answer's turn "
      "lists it in `pending_actions` (each with an `id`), and you apply it here, as yourself and with your access "
      "now. A ticket is created in the conversation's project (or the organisation, for a conversation over all "
      "projects) — 403 if you can read but not write there. A memory change becomes a **pending memory diff** you "
      "propose (source `chat`), reviewed like any other; it is never applied directly. An update or retirement is "
      "proposed in the scope of the item it changes, and is a 409 when the item changed since. Each action applies "
      "once: a second apply is 409, and the turn's action then names the ticket or the diff (`applied`). Works "
      "without AI configured.\n" + RULES, status_code=HTTP_201_CREATED, sync_to_thread=True)
def apply_action(org_id: int, conversation_id: int, action_id: str, caller: NamedDependency[Credential],
                 chat: NamedDependency[ChatUseCases]) -> AppliedActionOut:
    applied = chat.apply_action(caller, org_id, conversation_id, action_id)
    return AppliedActionOut(applied.action_id, applied.kind, applied.applied_at,
                            str(applied.record.display_id) if applied.record else None,
                            applied.memory_diff.summary.id if applied.memory_diff else None)


conversations_router = Router(
    path="/api",
    route_handlers=[start_conversation, list_conversations, get_conversation, update_conversation,
                    delete_conversation, ask_question, apply_action],
    tags=["conversations"],
)
