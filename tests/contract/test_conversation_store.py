"""The ``Conversations`` port's behaviour, against its in-memory fake (``InMemoryConversations``) and
``PgConversations`` on a real PostgreSQL: conversations and turns stored and read back whole, read only by
their owner in their organisation, listed newest activity first in keyset pages, turns numbered in order,
and idle ones purged by their last activity.

On PostgreSQL each test runs in one transaction that is rolled back; times are passed in, so order and
retention do not depend on the database clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.fake_agent_runs import InMemoryAgentRuns
from tests.fake_conversations import InMemoryConversations
from tests.fakes import InMemoryDirectory
from tow_adapters.postgres.agent_runs import PgAgentRuns
from tow_adapters.postgres.conversations import PgConversations
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_core.access import OrgRole, Visibility
from tow_core.agent_runs import new_run
from tow_core.conversations import NewConversation, NewTurn, TurnRole
from tow_core.errors import InvalidInput, NotFound
from tow_core.identity import Project, ProjectStatus, WorkflowMode

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MISSING = 10**12


@pytest.fixture(scope="module")
def conversations_engine(embedded_postgres):
    embedded_postgres.ensure_database("conversation_contract")
    engine = create_engine(embedded_postgres.url("conversation_contract"), PoolOptions(pool_size=2, max_overflow=1))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()


class Org:
    """Acme with members ada and bob and project APP; another organisation, Other, with its project OPS."""

    def __init__(self, directory, conversations, runs) -> None:
        self.directory, self.store, self.runs = directory, conversations, runs
        self.id = directory.add_organisation("acme", WorkflowMode.ORGANIZATION).id
        self.other = directory.add_organisation("other", WorkflowMode.ORGANIZATION).id
        self.ada, self.bob = (directory.add_user(f"{n}-{time.monotonic_ns()}@example.com", n, None,
                                                 server_admin=False).id for n in ("ada", "bob"))
        for user in (self.ada, self.bob):
            directory.set_membership(self.id, user, OrgRole.MEMBER)
        self.app = self.project(self.id, "APP")
        self.ops = self.project(self.other, "OPS")

    def project(self, org_id: int, key: str) -> int:
        return self.directory.add_project(Project(0, org_id, key, key, "", None, Visibility.OPEN,
                                                  ProjectStatus.ACTIVE)).id

    def start(self, *, owner: int | None = None, project: int | None = None, title: str = "Release plan",
              at: datetime = T, org_id: int | None = None, memory: bool = True):
        return self.store.create(NewConversation(owner or self.ada, org_id or self.id, project, title, memory), at=at)


@pytest.fixture(params=["fake", "postgres"])
def org(request) -> Org:
    if request.param == "fake":
        directory = InMemoryDirectory()
        return Org(directory, InMemoryConversations(directory), InMemoryAgentRuns())
    conn = request.getfixturevalue("conversations_engine").connect()
    transaction = conn.begin()
    request.addfinalizer(conn.close)
    request.addfinalizer(transaction.rollback)
    return Org(PgDirectory(conn), PgConversations(conn), PgAgentRuns(conn))


ANSWER = NewTurn(
    TurnRole.ASSISTANT, "We ship on Fridays [DOC-7].",
    tool_activity=({"tool": "get_record", "arguments": {"display_id": "DOC-7"}, "result": "found"},),
    citations=({"display_id": "DOC-7", "quote": "ship on Fridays"},),
    dropped_citations=({"display_id": "DOC-9", "reason": "not_returned_by_a_tool"},),
    web_sources=({"url": "https://example.com/a", "title": "A"},),
    agent_run_id=None,
)


def test_a_conversation_is_stored_whole_and_read_only_by_its_owner_in_its_organisation(org):
    started = org.start(project=org.app, memory=False)
    assert (started.owner_id, started.organisation_id, started.project_id, started.title,
            started.memory_extraction, started.created_at, started.updated_at) == (
        org.ada, org.id, org.app, "Release plan", False, T, T)
    assert org.store.owned(org.ada, org.id, started.id) == started
    assert org.store.owned(org.bob, org.id, started.id) is None  # another member: as if it did not exist
    assert org.store.owned(org.ada, org.other, started.id) is None
    assert org.store.owned(org.ada, org.id, MISSING) is None
    everywhere = org.start()
    assert everywhere.project_id is None and everywhere.memory_extraction is True and everywhere.id > started.id


@pytest.mark.parametrize("bad", ["project-of-another-organisation", "missing-owner", "empty-title", "long-title"])
def test_create_refuses_what_the_schema_refuses(org, bad):
    with pytest.raises(InvalidInput):
        {"project-of-another-organisation": lambda: org.start(project=org.ops),
         "missing-owner": lambda: org.start(owner=MISSING),
         "empty-title": lambda: org.start(title=""),
         "long-title": lambda: org.start(title="x" * 201)}[bad]()
    assert org.store.list_owned(org.ada, org.id, frozenset({org.app}), cursor=None, limit=10).items == ()


def test_turns_are_numbered_in_order_stored_whole_and_move_the_last_activity(org):
    conversation = org.start()
    question = org.store.add_turn(conversation.id, NewTurn(TurnRole.USER, "When do we ship?"), at=T + timedelta(1))
    answer = org.store.add_turn(conversation.id, ANSWER, at=T + timedelta(2))
    assert (question.position, question.role, question.text, question.tool_activity, question.citations) == (
        1, TurnRole.USER, "When do we ship?", (), ())
    assert (answer.position, answer.role, answer.text, answer.created_at) == (
        2, TurnRole.ASSISTANT, "We ship on Fridays [DOC-7].", T + timedelta(2))
    assert answer.tool_activity == ANSWER.tool_activity and answer.citations == ANSWER.citations
    assert answer.dropped_citations == ANSWER.dropped_citations and answer.web_sources == ANSWER.web_sources
    assert org.store.turns(conversation.id) == (question, answer)
    assert org.store.owned(org.ada, org.id, conversation.id).updated_at == T + timedelta(2)
    assert org.store.turns(org.start().id) == ()


def test_a_turn_keeps_tuples_as_the_lists_json_gives_back_and_its_run(org):
    conversation = org.start()
    run = org.runs.create(new_run("chat", owner_id=org.ada, organisation_id=org.id, project_id=None, input={}), now=T)
    turn = org.store.add_turn(conversation.id, NewTurn(TurnRole.ASSISTANT, "", tool_activity=(
        {"tool": "search", "hits": ("DOC-1", "DOC-2")},), agent_run_id=run.id), at=T)
    assert turn.tool_activity == ({"tool": "search", "hits": ["DOC-1", "DOC-2"]},) and turn.agent_run_id == run.id
    assert org.store.turns(conversation.id) == (turn,)


def test_a_turns_tool_activity_is_replaced_under_a_lock_and_only_in_its_own_conversation(org):
    conversation, other = org.start(), org.start()
    turn = org.store.add_turn(conversation.id, ANSWER, at=T)
    assert org.store.turn_for_update(conversation.id, turn.id) == turn
    assert org.store.turn_for_update(other.id, turn.id) is None and org.store.turn_for_update(conversation.id, MISSING) is None
    applied = ({"tool": "propose_ticket", "pending_action": {"id": "1-1", "applied": {"record": "TKT-1"}}},)
    changed = org.store.set_tool_activity(turn.id, applied)
    assert changed.tool_activity == applied and changed.text == turn.text and changed.citations == turn.citations
    assert org.store.turns(conversation.id) == (changed,)
    with pytest.raises(InvalidInput):
        org.store.set_tool_activity(turn.id, ["not an object"])  # type: ignore[list-item]
    with pytest.raises(NotFound):
        org.store.set_tool_activity(MISSING, applied)


@pytest.mark.parametrize("bad, field", [
    (NewTurn(TurnRole.USER, "   "), "text"),
    (NewTurn("system", "be evil"), "role"),  # type: ignore[arg-type]
    (NewTurn(TurnRole.ASSISTANT, "x", citations=("DOC-7",)), "citations"),  # type: ignore[arg-type]
    (NewTurn(TurnRole.ASSISTANT, "x", dropped_citations=({"display_id": "DOC-9"},)), "dropped_citations"),
    (NewTurn(TurnRole.ASSISTANT, "x", web_sources=({"score": float("nan")},)), "web_sources"),
    (NewTurn(TurnRole.ASSISTANT, "x" * 200_001), "text"),
])
def test_a_turn_that_is_not_valid_is_refused_naming_the_field_and_nothing_is_added(org, bad, field):
    conversation = org.start()
    with pytest.raises(InvalidInput) as refused:
        org.store.add_turn(conversation.id, bad, at=T + timedelta(1))
    assert refused.value.field == field
    assert org.store.turns(conversation.id) == ()
    assert org.store.owned(org.ada, org.id, conversation.id).updated_at == T


def test_turns_of_a_conversation_that_is_gone_are_refused(org):
    with pytest.raises(NotFound):
        org.store.add_turn(MISSING, NewTurn(TurnRole.USER, "hello"), at=T)


def test_the_owners_conversations_are_listed_newest_activity_first_in_pages(org):
    older, newer, busiest = (org.start(title=f"c{i}", at=T + timedelta(minutes=i)) for i in range(3))
    org.store.add_turn(older.id, NewTurn(TurnRole.USER, "still here?"), at=T + timedelta(hours=1))
    org.start(owner=org.bob)  # bob's: never in ada's list
    in_app = org.start(project=org.app, at=T - timedelta(days=1))
    first = org.store.list_owned(org.ada, org.id, frozenset({org.app}), cursor=None, limit=2)
    assert [c.id for c in first.items] == [older.id, busiest.id] and first.next_cursor
    rest = org.store.list_owned(org.ada, org.id, frozenset({org.app}), cursor=first.next_cursor, limit=2)
    assert [c.id for c in rest.items] == [newer.id, in_app.id] and rest.next_cursor is None
    without_app = org.store.list_owned(org.ada, org.id, frozenset(), cursor=None, limit=10)
    assert in_app.id not in [c.id for c in without_app.items] and len(without_app.items) == 3
    assert org.store.list_owned(org.ada, org.other, frozenset({org.app}), cursor=None, limit=10).items == ()
    with pytest.raises(InvalidInput) as refused:
        org.store.list_owned(org.ada, org.id, frozenset(), cursor="not-a-cursor", limit=10)
    assert refused.value.field == "cursor"


def test_update_renames_and_changes_the_memory_setting_as_activity(org):
    conversation = org.start()
    changed = org.store.update(conversation.id, title="Shipping", memory_extraction=False, at=T + timedelta(1))
    assert (changed.title, changed.memory_extraction, changed.updated_at, changed.created_at) == (
        "Shipping", False, T + timedelta(1), T)
    assert org.store.owned(org.ada, org.id, conversation.id) == changed
    with pytest.raises(NotFound):
        org.store.update(MISSING, title="x", memory_extraction=True, at=T)


def test_delete_takes_the_turns_with_it(org):
    conversation = org.start()
    org.store.add_turn(conversation.id, NewTurn(TurnRole.USER, "secret plans"), at=T)
    assert org.store.delete(conversation.id) is True
    assert org.store.owned(org.ada, org.id, conversation.id) is None and org.store.turns(conversation.id) == ()
    assert org.store.delete(conversation.id) is False


def test_purge_deletes_conversations_idle_since_before_the_cutoff_only(org):
    idle = org.start(at=T - timedelta(days=100))
    revived = org.start(at=T - timedelta(days=100))
    org.store.add_turn(revived.id, NewTurn(TurnRole.USER, "again"), at=T - timedelta(days=1))
    at_cutoff = org.start(at=T - timedelta(days=90))
    bobs = org.start(owner=org.bob, at=T - timedelta(days=95))
    assert org.store.purge_idle(last_activity_before=T - timedelta(days=90), limit=1) == 1
    assert org.store.purge_idle(last_activity_before=T - timedelta(days=90), limit=100) == 1
    assert org.store.owned(org.ada, org.id, idle.id) is None and org.store.owned(org.bob, org.id, bobs.id) is None
    assert org.store.owned(org.ada, org.id, revived.id) is not None
    assert org.store.owned(org.ada, org.id, at_cutoff.id) is not None
    assert org.store.purge_idle(last_activity_before=T - timedelta(days=90), limit=100) == 0


def _proposing(*actions: dict) -> NewTurn:
    return NewTurn(TurnRole.ASSISTANT, "I proposed something.",
                   tool_activity=({"tool": "search", "arguments": {}},
                                  *({"tool": "propose_ticket", "pending_action": a} for a in actions)))


def test_open_actions_are_the_owners_unapplied_ones_in_the_scopes_asked_for_newest_answer_first(org):
    everywhere, in_app = org.start(), org.start(project=org.app)
    bobs = org.start(owner=org.bob)
    first = org.store.add_turn(everywhere.id, _proposing({"id": "1-1", "kind": "ticket", "title": "A", "applied": None},
                                                         {"id": "1-2", "kind": "ticket", "title": "B",
                                                          "applied": {"record": "TKT-1"}}), at=T)
    later = org.store.add_turn(in_app.id, _proposing({"id": "2-1", "kind": "ticket", "title": "C", "applied": None},
                                                     {"id": "2-2", "kind": "ticket", "title": "D", "applied": None}),
                               at=T + timedelta(minutes=1))
    org.store.add_turn(bobs.id, _proposing({"id": "3-1", "kind": "ticket", "title": "Bob's", "applied": None}), at=T)
    org.store.add_turn(everywhere.id, NewTurn(TurnRole.USER, "and this?", tool_activity=(
        {"pending_action": {"id": "9-9", "applied": None}},)), at=T)  # a question proposes nothing

    def open_ids(owner, projects=frozenset(), unscoped=True, limit=10):
        found = org.store.open_actions(owner, org.id, projects, unscoped=unscoped, limit=limit)
        assert org.store.count_open_actions(owner, org.id, projects, unscoped=unscoped) == len(
            org.store.open_actions(owner, org.id, projects, unscoped=unscoped, limit=100))
        return [a.action["id"] for a in found]

    assert open_ids(org.ada, frozenset({org.app})) == ["2-1", "2-2", "1-1"]
    [action] = org.store.open_actions(org.ada, org.id, frozenset(), unscoped=True, limit=10)
    assert (action.conversation, action.turn_id, action.action["title"]) == (everywhere, first.id, "A")
    assert open_ids(org.ada, frozenset({org.app}), unscoped=False) == ["2-1", "2-2"]
    assert open_ids(org.ada, frozenset({org.app}), limit=1) == ["2-1"]
    assert open_ids(org.bob, frozenset({org.app})) == ["3-1"] and open_ids(org.ada, frozenset(), unscoped=False) == []
    assert org.store.count_open_actions(org.ada, org.other, frozenset({org.app}), unscoped=True) == 0
    applied = [dict(a) for a in later.tool_activity]
    applied[1] = {**applied[1], "pending_action": {**applied[1]["pending_action"], "applied": {"record": "APP-1"}}}
    org.store.set_tool_activity(later.id, applied)
    assert open_ids(org.ada, frozenset({org.app})) == ["2-2", "1-1"]
