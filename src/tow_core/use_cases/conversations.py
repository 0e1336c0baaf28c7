"""Conversations with the assistant (SPEC §6, issue 13): start, list, read, change and delete one's own.

The rules are in ``tow_core.conversations``: only the owner reads a conversation, and only while they are a
member and read its project. Asking a question (the tool loop, agent runs) is another use case; it appends
turns through ``Conversations.add_turn`` after ``owned_conversation``.

Without AI configured (``ai_configured`` False: no OPENAI_API_KEY) starting a conversation is refused with
AiNotConfigured; listing, reading, changing and deleting existing ones still work, so people can always see
and delete what they said.
"""

from __future__ import annotations

from dataclasses import dataclass

from tow_core import conversations as rules
from tow_core.ai import AI_NOT_CONFIGURED_MESSAGE
from tow_core.conversations import MAX_PAGE, Conversation, NewConversation, Turn
from tow_core.errors import AiNotConfigured, InvalidInput
from tow_core.records import Page
from tow_core.unit_of_work import Credential, Transactions


@dataclass(frozen=True)
class ConversationWithTurns:
    conversation: Conversation
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class ConversationUseCases:
    transactions: Transactions
    ai_configured: bool

    def start(self, credential: Credential, org_id: int, project_key: str | None, title: str | None = None,
              *, memory_extraction: bool = True) -> Conversation:
        """A new, empty conversation of the caller's, over all projects (``project_key`` None) or one they read."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            if not self.ai_configured:
                raise AiNotConfigured(AI_NOT_CONFIGURED_MESSAGE)
            new = NewConversation(acting.principal.user_id, org_id, rules.project_scope(ws, project_key),
                                  rules.conversation_title(title), memory_extraction)
            return acting.stores.conversations.create(new, at=acting.now)

    def list_mine(self, credential: Credential, org_id: int, *, cursor: str | None = None,
                  limit: int = 50) -> Page[Conversation]:
        """The caller's conversations, newest activity first; those of projects they no longer read are left out."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be from 1 to {MAX_PAGE}", field="limit")
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            return acting.stores.conversations.list_owned(acting.principal.user_id, org_id,
                                                          rules.readable_project_ids(ws), cursor=cursor, limit=limit)

    def get(self, credential: Credential, org_id: int, conversation_id: int) -> ConversationWithTurns:
        with self.transactions.acting_as(credential) as acting:
            found = rules.owned_conversation(acting.workspace(org_id), acting.stores.conversations, conversation_id)
            return ConversationWithTurns(found, acting.stores.conversations.turns(found.id))

    def update(self, credential: Credential, org_id: int, conversation_id: int, *, title: str | None = None,
               memory_extraction: bool | None = None) -> Conversation:
        """Rename it and/or turn memory extraction after answers on or off (None: leave as it is)."""
        with self.transactions.acting_as(credential) as acting:
            found = rules.owned_conversation(acting.workspace(org_id), acting.stores.conversations, conversation_id)
            return acting.stores.conversations.update(
                found.id, title=found.title if title is None else rules.conversation_title(title),
                memory_extraction=found.memory_extraction if memory_extraction is None else memory_extraction,
                at=acting.now)

    def delete(self, credential: Credential, org_id: int, conversation_id: int) -> None:
        """Deleted with every turn; nothing of it is kept."""
        with self.transactions.acting_as(credential) as acting:
            found = rules.owned_conversation(acting.workspace(org_id), acting.stores.conversations, conversation_id)
            acting.stores.conversations.delete(found.id)
