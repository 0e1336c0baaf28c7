"""What the chat page shows of the answer to the latest question (tow_core.use_cases.chat_pages): still
answering while its run is queued or running, the run's error code once it failed, nothing pending once the
answer is a turn. World: tests/unit/records_world.py."""

from __future__ import annotations

import pytest

from tests.fake_reasoning import step
from tests.unit.records_world import World
from tests.unit.test_chat_use_cases import Chat
from tow_core.agent_runs import AgentRunStatus
from tow_core.errors import NotFound
from tow_core.jobs import RetryPolicy
from tow_core.use_cases.chat_pages import ChatPageUseCases

POLICY = RetryPolicy(lease_seconds=30, max_attempts=3)


@pytest.fixture
def w() -> World:
    return World()


def test_the_latest_question_is_answering_until_its_answer_is_a_turn(w):
    chat = Chat(w, step("We ship on Fridays."))
    pages = ChatPageUseCases(chat.transactions, True)
    bob = w.credential("bob")
    conversation = chat.start(bob, w.org, None, "Releases")
    assert pages.turns(bob, w.org, conversation.id).pending is None  # nothing asked yet

    asked = chat.use_cases.ask(bob, w.org, conversation.id, "When do we ship?")
    pending = pages.turns(bob, w.org, conversation.id).pending
    assert pending.run_id == asked.run.id and pending.status is AgentRunStatus.QUEUED and pending.answering

    chat.answer(asked.run)
    thread = pages.turns(bob, w.org, conversation.id)
    assert thread.pending is None and [t.text for t in thread.turns] == ["When do we ship?", "We ship on Fridays."]


def test_a_failed_run_is_shown_with_its_error_code_and_is_not_waited_for(w):
    chat = Chat(w)
    pages = ChatPageUseCases(chat.transactions, True)
    bob = w.credential("bob")
    conversation = chat.start(bob, w.org, None, "Releases")
    asked = chat.use_cases.ask(bob, w.org, conversation.id, "When do we ship?")
    claimed = chat.runs.claim(now=w.clock(), policy=POLICY)
    assert claimed.id == asked.run.id
    chat.runs.finish_failed(claimed, "provider_unavailable", "the provider did not answer", now=w.clock())

    pending = pages.turns(bob, w.org, conversation.id).pending
    assert pending.status is AgentRunStatus.FAILED and pending.error_code == "provider_unavailable"
    assert not pending.answering


def test_only_the_owner_reads_the_turns(w):
    chat = Chat(w)
    pages = ChatPageUseCases(chat.transactions, True)
    conversation = chat.start(w.credential("bob"), w.org, None, "Mine")
    with pytest.raises(NotFound):
        pages.turns(w.credential("ada"), w.org, conversation.id)
