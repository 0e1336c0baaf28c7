"""The chat pages (SPEC §6 workflow 1, issue 13): one's conversations, and one conversation with its turns
and the state of the answer to its latest question. Starting, asking and deleting are ``ConversationUseCases``
and ``ChatUseCases``; these are the reads, each page in one unit of work with its frame.

The answer to a question arrives when the worker completes the ``chat`` run that ``ChatUseCases.ask`` queued
with the question; until then the latest turn is the question, and the page shows that run's state — still
answering, or failed with the run's error code (which the owner may see with its message).
"""

from __future__ import annotations

from dataclasses import dataclass

from tow_core import conversations as rules
from tow_core.agent_runs import AgentRunStatus
from tow_core.conversations import Conversation, Turn, TurnRole
from tow_core.unit_of_work import Acting, Credential, Transactions
from tow_core.use_cases.frame import Framed, frame_of


@dataclass(frozen=True)
class ChatList:
    conversations: tuple[Conversation, ...]
    next_cursor: str | None
    ai_configured: bool


@dataclass(frozen=True)
class PendingAnswer:
    """The run answering the latest question, when that question has no answer yet."""

    run_id: int | None  # None: no run answers it (it was lost; asking again queues one)
    status: AgentRunStatus | None
    error_code: str | None
    error: str | None

    @property
    def answering(self) -> bool:
        """Still worth waiting for: the run is queued or running (or completed a moment before its turn shows)."""
        return self.status in (AgentRunStatus.QUEUED, AgentRunStatus.RUNNING, AgentRunStatus.COMPLETED)


@dataclass(frozen=True)
class ChatThread:
    conversation: Conversation
    turns: tuple[Turn, ...]
    pending: PendingAnswer | None  # None: the latest question (if any) has its answer
    ai_configured: bool


@dataclass(frozen=True)
class ChatPageUseCases:
    transactions: Transactions
    ai_configured: bool

    def list_page(self, credential: Credential, org_id: int, project_key: str | None, *,
                  cursor: str | None = None, limit: int = 50) -> Framed[ChatList]:
        """The caller's conversations, newest activity first (every scope: the picked project is where a new
        one goes)."""
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            ws = acting.workspace(org_id)
            found = acting.stores.conversations.list_owned(acting.principal.user_id, org_id,
                                                           rules.readable_project_ids(ws), cursor=cursor,
                                                           limit=limit)
            return Framed(frame, ChatList(found.items, found.next_cursor, self.ai_configured))

    def conversation_page(self, credential: Credential, org_id: int, project_key: str | None,
                          conversation_id: int) -> Framed[ChatThread]:
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            return Framed(frame, self._thread(acting, org_id, conversation_id))

    def turns(self, credential: Credential, org_id: int, conversation_id: int) -> ChatThread:
        """The conversation without the frame: what the page polls while an answer is on its way."""
        with self.transactions.acting_as(credential) as acting:
            return self._thread(acting, org_id, conversation_id)

    def _thread(self, acting: Acting, org_id: int, conversation_id: int) -> ChatThread:
        conversation = rules.owned_conversation(acting.workspace(org_id), acting.stores.conversations,
                                                conversation_id)
        turns = acting.stores.conversations.turns(conversation.id)
        pending = None
        if turns and turns[-1].role is TurnRole.USER:
            run_id = turns[-1].agent_run_id
            run = acting.stores.agent_runs.get(run_id) if run_id is not None else None
            pending = (PendingAnswer(run.id, run.status, run.error_code, run.error) if run is not None
                       else PendingAnswer(None, None, None, None))
        return ChatThread(conversation, turns, pending, self.ai_configured)
