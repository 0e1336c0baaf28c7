"""Asking the assistant end to end over the fakes (tow_core.use_cases.chat): a question is a user turn and a
queued ``chat`` run in one unit of work; the run answers as the asker through the tool loop and saves the
answer with citations checked as the asker reads when it is saved. World: tests/unit/records_world.py
(Bob reads APP by a viewer grant and OPS, not SEC)."""

from __future__ import annotations

import pytest

from tests.fake_agent_runs import InMemoryAgentRuns
from tests.fake_conversations import InMemoryConversations
from tests.fake_reasoning import ScriptedReasoningModel, call, step
from tests.fake_unit_of_work import fake_transactions
from tests.unit.records_world import World
from tow_core.agent_runs import AgentRunStatus
from tow_core.ai import UnconfiguredWebSearch
from tow_core.chat import ChatAssistant
from tow_core.conversations import TurnRole
from tow_core.errors import AiNotConfigured, NotFound
from tow_core.records import RecordType
from tow_core.use_cases.chat import CHAT_RUN, ChatRuns, ChatUseCases
from tow_core.use_cases.conversations import ConversationUseCases

DOC = RecordType.DOC
SECRET = "the vault combination is 7-2-9-4"


class Chat:
    def __init__(self, w: World, *steps, ai_configured: bool = True) -> None:
        self.w = w
        self.conversations, self.runs = InMemoryConversations(w.directory), InMemoryAgentRuns()
        self.transactions = fake_transactions(
            w.clock, rollback=(w.records, w.directory, self.conversations, self.runs), directory=w.directory,
            records=w.records, history=w.keeping, conversations=self.conversations, agent_runs=self.runs)
        self.use_cases = ChatUseCases(self.transactions, ai_configured)
        self.start = ConversationUseCases(self.transactions, True).start
        self.model = ScriptedReasoningModel(*steps)
        self.handler = ChatRuns(self.transactions, ChatAssistant(self.model, UnconfiguredWebSearch(), None, 6))
        self.heartbeats = 0

    def heartbeat(self) -> None:
        self.heartbeats += 1

    def answer(self, run):
        return self.handler(self.runs.get(run.id), self.heartbeat)


@pytest.fixture
def w() -> World:
    return World()


def test_a_question_is_answered_as_the_asker_with_only_verified_citations_and_nothing_they_cannot_read(w):
    secret = w.create("ada", DOC, "Vault", w.project("SEC"), body=SECRET)
    plan = w.create("ada", DOC, "Release plan", w.project("OPS"), body="We ship every Friday after the review.")
    sec_id, plan_id = str(secret.display_id), str(plan.display_id)
    chat = Chat(w, step("", call("get_record", display_id=sec_id), call("get_record", display_id=plan_id)),
                step(f'Ship on Fridays [{plan_id} "ship every Friday"]; also [{sec_id} "{SECRET}"] and '
                     f'[{plan_id} "we never ship"].'))
    bob = w.credential("bob")
    conversation = chat.start(bob, w.org, None, "Releases")

    asked = chat.use_cases.ask(bob, w.org, conversation.id, "When do we ship?")
    assert asked.run.kind == CHAT_RUN and asked.run.status is AgentRunStatus.QUEUED
    assert asked.run.owner_id == w.ids["bob"] and asked.question.role is TurnRole.USER

    result = chat.answer(asked.run)
    question, answer = chat.conversations.turns(conversation.id)
    assert question.text == "When do we ship?" and answer.role is TurnRole.ASSISTANT
    assert answer.agent_run_id == asked.run.id
    assert [c["display_id"] for c in answer.citations] == [plan_id]
    assert sorted((d["display_id"], d["reason"]) for d in answer.dropped_citations) == sorted(
        [(sec_id, "not_returned_by_tool"), (plan_id, "quote_not_found")])
    assert result.output["dropped_citations"] == {"not_returned_by_tool": 1, "quote_not_found": 1}
    assert SECRET not in answer.text and SECRET not in repr(answer.tool_activity)
    assert SECRET not in chat.model.sent_text()  # nothing of the hidden doc left for the model
    assert result.usage.input_tokens == 20 and result.usage.output_tokens == 10  # two rounds summed
    assert chat.heartbeats >= 3  # before, per tool call, after: a cancel or a lost lease is seen


def test_a_grant_revoked_while_the_run_works_drops_the_citation_when_the_answer_is_saved(w):
    spec = w.create("ada", DOC, "App spec", w.project("APP"), body="The app signs in with passkeys.")
    spec_id = str(spec.display_id)
    grant = next(g for g in w.directory.grants(w.projects["APP"]) if g.user_id == w.ids["bob"])

    def answer_after_revocation(request):
        w.directory.delete_grant(grant.id)  # revoked between the tool call and the answer being saved
        return step(f'It uses passkeys [{spec_id} "signs in with passkeys"].')

    chat = Chat(w, step("", call("get_record", display_id=spec_id)), answer_after_revocation)
    bob = w.credential("bob")
    conversation = chat.start(bob, w.org, None, "App")
    chat.answer(chat.use_cases.ask(bob, w.org, conversation.id, "How do we sign in?").run)
    answer = chat.conversations.turns(conversation.id)[-1]
    assert answer.citations == () and [d["reason"] for d in answer.dropped_citations] == ["not_readable"]
    assert answer.dropped_citations[0]["quote"] is None  # the words of a record Bob no longer reads are not kept


def test_only_the_owner_asks_in_a_conversation_and_without_ai_nothing_is_saved(w):
    chat = Chat(w)
    conversation = chat.start(w.credential("bob"), w.org, None, "Mine")
    with pytest.raises(NotFound):  # the organisation's owner is no exception
        chat.use_cases.ask(w.credential("ada"), w.org, conversation.id, "What did Bob ask?")
    off = ChatUseCases(chat.transactions, ai_configured=False)
    with pytest.raises(AiNotConfigured):
        off.ask(w.credential("bob"), w.org, conversation.id, "Anyone there?")
    assert chat.conversations.turns(conversation.id) == ()
    assert chat.runs.list(whole_organisations={w.org}, own_in=(), owner_id=0, after_id=None, limit=10) == []


def test_an_owner_who_lost_the_conversations_project_gets_no_answer(w):
    chat = Chat(w, step("I looked."))
    bob = w.credential("bob")
    conversation = chat.start(bob, w.org, "APP", "App work")
    run = chat.use_cases.ask(bob, w.org, conversation.id, "Status?").run
    grant = next(g for g in w.directory.grants(w.projects["APP"]) if g.user_id == w.ids["bob"])
    w.directory.delete_grant(grant.id)
    with pytest.raises(NotFound):
        chat.answer(run)
    assert [t.role for t in chat.conversations.turns(conversation.id)] == [TurnRole.USER]
