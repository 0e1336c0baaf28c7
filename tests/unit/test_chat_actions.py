"""Pending actions over the fakes (tow_core.chat_actions): the assistant proposes a ticket or a memory change,
nothing is written during the run, and the conversation's owner applies each proposal once, as themselves at
that moment — a ticket through the records rule, a memory change as a pending memory diff.
World: tests/unit/records_world.py (Bob is an APP member here, made so by a grant; OPS is open)."""

from __future__ import annotations

import json

import pytest

from tests.fake_agent_runs import InMemoryAgentRuns
from tests.fake_conversations import InMemoryConversations
from tests.fake_notifications import InMemoryNotifications
from tests.fake_reasoning import ScriptedReasoningModel, call, step
from tests.fake_records import InMemoryMemoryDiffStore
from tests.fake_unit_of_work import fake_transactions
from tests.unit.records_world import World
from tow_core.access import ProjectRole
from tow_core.ai import UnconfiguredWebSearch
from tow_core.chat import ChatAssistant
from tow_core.errors import AccessDenied, Conflict, NotFound
from tow_core.memory_diffs import ArchiveItems, CreateItem, DiffSource, DiffStatus
from tow_core.notifications import NotificationKind
from tow_core.records import RecordType
from tow_core.use_cases.chat import ChatRuns, ChatUseCases
from tow_core.use_cases.conversations import ConversationUseCases

TICKET, MEMORY = RecordType.TICKET, RecordType.MEMORY


class Chat:
    def __init__(self, w: World, *steps) -> None:
        self.w = w
        self.conversations, self.runs = InMemoryConversations(w.directory), InMemoryAgentRuns()
        self.diffs = InMemoryMemoryDiffStore(w.directory, w.clock)
        self.notifications = InMemoryNotifications(w.records, w.directory, diffs=self.diffs)
        self.transactions = fake_transactions(
            w.clock, rollback=(w.records, w.directory, self.conversations, self.runs, self.diffs),
            directory=w.directory, records=w.records, history=w.keeping, conversations=self.conversations,
            agent_runs=self.runs, memory_diffs=self.diffs, notifications=self.notifications)
        self.use_cases = ChatUseCases(self.transactions, True)
        self.start = ConversationUseCases(self.transactions, True).start
        self.model = ScriptedReasoningModel(*steps)
        self.handler = ChatRuns(self.transactions, ChatAssistant(self.model, UnconfiguredWebSearch(), None, 6))

    def ask(self, name: str, conversation_id: int, text: str):
        run = self.use_cases.ask(self.w.credential(name), self.w.org, conversation_id, text).run
        self.handler(self.runs.get(run.id), lambda: None)
        return self.conversations.turns(conversation_id)[-1]

    def records_of(self, record_type: RecordType) -> list:
        return [r for r in self.w.records.rows.values() if r.type is record_type]


def actions(turn) -> list[dict]:
    return [a["pending_action"] for a in turn.tool_activity if "pending_action" in a]


@pytest.fixture
def w() -> World:
    world = World()
    world.directory.put_grant(world.projects["APP"], user_id=world.ids["bob"], group_id=None,
                              role=ProjectRole.MEMBER)
    return world


def proposing(*calls):
    return (step("", *calls), step("I proposed a ticket and a memory item for you to apply."))


def test_proposals_write_nothing_during_the_run_and_applying_creates_the_ticket_and_a_pending_diff(w):
    chat = Chat(w, *proposing(
        call("propose_ticket", title="Rotate the API keys", body="Before the release.", priority=2),
        call("propose_memory_change", operation="create", title="Keys rotate quarterly", body="Every quarter.",
             memory_type="commitment", importance=4)))
    bob = w.credential("bob")
    conversation = chat.start(bob, w.org, "APP", "Keys")
    answer = chat.ask("bob", conversation.id, "Plan the key rotation")

    assert chat.records_of(TICKET) == [] and chat.records_of(MEMORY) == [] and chat.diffs.rows == {}
    ticket, memory = actions(answer)
    assert (ticket["kind"], ticket["title"], ticket["priority"], ticket["applied"]) == (
        "ticket", "Rotate the API keys", 2, None)
    assert (memory["kind"], memory["operation"], memory["memory_type"]) == ("memory_change", "create", "commitment")
    tool_answers = [o.output for o in chat.model.requests[1].input_items if hasattr(o, "output")]
    assert all("awaits the user" in o for o in tool_answers)  # the model is told nothing was written

    applied = chat.use_cases.apply_action(bob, w.org, conversation.id, ticket["id"])
    [created] = chat.records_of(TICKET)
    assert applied.record == created and created.title == "Rotate the API keys"
    assert created.scope == w.project("APP") and created.fields["priority"] == 2
    assert created.author_id == w.ids["bob"]  # as the user, not the assistant

    proposed = chat.use_cases.apply_action(bob, w.org, conversation.id, memory["id"])
    [diff] = chat.diffs.rows.values()
    assert diff.status is DiffStatus.PENDING and diff.author_id == w.ids["bob"] and diff.source is DiffSource.CHAT
    assert diff.scope == w.project("APP") and proposed.memory_diff.summary.id == diff.id
    assert isinstance(diff.operations[0], CreateItem) and diff.operations[0].title == "Keys rotate quarterly"
    assert chat.records_of(MEMORY) == []  # a pending diff, never an approved change
    told = lambda name: [n.memory_diff_id for n in chat.notifications.shown(  # noqa: E731
        w.ids[name], w.org, unread_only=False, before_id=None, limit=10) if n.kind is NotificationKind.REVIEW]
    assert (told("ada"), told("bob")) == ([diff.id], [])  # APP's writers review it; not its author

    stored = actions(chat.conversations.turns(conversation.id)[-1])
    assert stored[0]["applied"]["record"] == str(created.display_id)
    assert stored[1]["applied"]["memory_diff_id"] == diff.id


def test_an_action_applies_once(w):
    chat = Chat(w, *proposing(call("propose_ticket", title="Fix the build")))
    bob = w.credential("bob")
    conversation = chat.start(bob, w.org, None, "Build")
    [ticket] = actions(chat.ask("bob", conversation.id, "Make a ticket for the build"))
    chat.use_cases.apply_action(bob, w.org, conversation.id, ticket["id"])
    with pytest.raises(Conflict):
        chat.use_cases.apply_action(bob, w.org, conversation.id, ticket["id"])
    [created] = chat.records_of(TICKET)
    assert created.scope == w.org_scope  # a conversation over all projects: the organisation


def test_only_the_owner_applies_and_an_unknown_action_is_not_found(w):
    chat = Chat(w, *proposing(call("propose_ticket", title="Fix the build")))
    bob = w.credential("bob")
    conversation = chat.start(bob, w.org, None, "Build")
    [ticket] = actions(chat.ask("bob", conversation.id, "Make a ticket"))
    with pytest.raises(NotFound):  # not even the organisation's owner
        chat.use_cases.apply_action(w.credential("ada"), w.org, conversation.id, ticket["id"])
    with pytest.raises(NotFound):
        chat.use_cases.apply_action(bob, w.org, conversation.id, "999-1")
    assert chat.records_of(TICKET) == [] and actions(chat.conversations.turns(conversation.id)[-1])[0]["applied"] is None


def test_an_owner_who_lost_write_access_applies_nothing(w):
    chat = Chat(w, *proposing(call("propose_ticket", title="Ship it"),
                              call("propose_memory_change", operation="create", title="We ship", memory_type="fact")))
    bob = w.credential("bob")
    conversation = chat.start(bob, w.org, "APP", "App")
    ticket, memory = actions(chat.ask("bob", conversation.id, "Propose things"))
    w.directory.put_grant(w.projects["APP"], user_id=w.ids["bob"], group_id=None, role=ProjectRole.VIEWER)
    for action in (ticket, memory):
        with pytest.raises(AccessDenied):
            chat.use_cases.apply_action(bob, w.org, conversation.id, action["id"])
    assert chat.records_of(TICKET) == [] and chat.diffs.rows == {}
    assert [a["applied"] for a in actions(chat.conversations.turns(conversation.id)[-1])] == [None, None]


def test_bad_proposals_answer_the_model_an_error_and_record_nothing(w):
    item = w.create("ada", MEMORY, "Deploys on Fridays", w.project("OPS"), fields={"memory_type": "fact"})
    chat = Chat(w, *proposing(
        call("propose_ticket", title="  ", priority=2),
        call("propose_ticket", title="Too urgent", priority=9),
        call("propose_memory_change", operation="create", title="No type"),
        call("propose_memory_change", operation="retire", display_id=str(item.display_id), base_version=7),
        call("propose_memory_change", operation="delete", display_id=str(item.display_id), base_version=1),
        call("propose_memory_change", operation="retire", display_id="MEM-999", base_version=1),
        call("propose_memory_change", operation="retire", display_id=str(item.display_id),
             base_version=item.version)))
    bob = w.credential("bob")
    conversation = chat.start(bob, w.org, None, "Memory")
    answer = chat.ask("bob", conversation.id, "Tidy up")
    errors = [a["error"] for a in answer.tool_activity]
    assert all(errors[:6]) and errors[6] is None
    assert "priority" in errors[1] and "memory_type" in errors[2] and "version" in errors[3]
    assert "operation" in errors[4] and "not found" in errors[5]
    [retire] = actions(answer)
    chat.use_cases.apply_action(bob, w.org, conversation.id, retire["id"])
    [diff] = chat.diffs.rows.values()
    assert isinstance(diff.operations[0], ArchiveItems) and diff.scope == w.project("OPS")  # where the item lives
    assert w.now(item).status == "active"  # still pending review
    assert json.dumps(retire)  # stored as plain JSON


def test_a_proposal_about_an_item_names_it_in_the_next_requests_ledger_records_and_a_hidden_one_names_nothing(w):
    item = w.create("ada", MEMORY, "Deploys on Fridays", w.project("OPS"), fields={"memory_type": "fact"})
    hidden = w.create("ada", MEMORY, "Vault code", w.project("SEC"), fields={"memory_type": "fact"})
    item_id = str(item.display_id)
    chat = Chat(w, *proposing(
        call("propose_memory_change", operation="retire", display_id=item_id, base_version=7),  # stale
        call("propose_memory_change", operation="retire", display_id=item_id, base_version=item.version),
        call("propose_memory_change", operation="retire", display_id=str(hidden.display_id), base_version=1)))
    conversation = chat.start(w.credential("bob"), w.org, None, "Memory")
    answer = chat.ask("bob", conversation.id, "Tidy up")
    assert [a["records"] for a in answer.tool_activity] == [[item_id], [item_id], []]
    # the request after the tools carries the item's version and status: its ledger row names it, not the hidden one
    assert chat.model.requests[-1].record_display_ids == (item_id,)
