"""ConversationUseCases (tow_core.use_cases.conversations) over the in-memory fakes: only the owner reads a
conversation — the organisation's owner, a server admin, another member and an outsider all get "not
found", the same as for one that does not exist — and only while they are a member and read its project;
starting one needs AI configured, everything else does not; idle conversations are purged by retention."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fake_conversations import InMemoryConversations
from tests.fake_unit_of_work import fake_transactions
from tests.unit.records_world import World
from tow_core.access import ProjectRole
from tow_core.conversations import DEFAULT_TITLE, NewTurn, TurnRole, purge_idle_conversations
from tow_core.errors import AiNotConfigured, InvalidInput, NotAuthenticated, NotFound
from tow_core.use_cases.conversations import ConversationUseCases

MISSING = 10**9


class ChatWorld(World):
    """records_world's Acme (Ada owner, Bob viewer of restricted APP, Cy member) where Cy is also a server
    admin, and Oscar outside it."""

    def __init__(self) -> None:
        super().__init__()
        self.directory.set_server_admin(self.ids["cy"], True)
        self.conversations = InMemoryConversations(self.directory)

    def use_cases(self, *, ai_configured: bool = True) -> ConversationUseCases:
        transactions = fake_transactions(self.clock, rollback=(self.directory, self.conversations),
                                         directory=self.directory, conversations=self.conversations)
        return ConversationUseCases(transactions, ai_configured)

    def say(self, conversation_id: int, text: str) -> None:
        """What the tool loop does after ``owned_conversation``: append a turn."""
        self.conversations.add_turn(conversation_id, NewTurn(TurnRole.USER, text), at=self.clock())


@pytest.fixture
def w() -> ChatWorld:
    return ChatWorld()


@pytest.fixture
def chats(w) -> ConversationUseCases:
    return w.use_cases()


def test_the_owner_starts_lists_reads_renames_and_deletes_their_conversation(w, chats):
    bob = w.credential("bob")
    started = chats.start(bob, w.org, "app", "  Release plan ")
    assert (started.owner_id, started.project_id, started.title, started.memory_extraction) == (
        w.ids["bob"], w.projects["APP"], "Release plan", True)
    everywhere = chats.start(bob, w.org, None, None, memory_extraction=False)
    assert (everywhere.project_id, everywhere.title, everywhere.memory_extraction) == (None, DEFAULT_TITLE, False)
    w.say(started.id, "When do we ship?")
    read = chats.get(bob, w.org, started.id)
    assert read.conversation.id == started.id and [t.text for t in read.turns] == ["When do we ship?"]
    assert [c.id for c in chats.list_mine(bob, w.org).items] == [started.id, everywhere.id]  # newest activity first
    renamed = chats.update(bob, w.org, started.id, title="Shipping")
    assert (renamed.title, renamed.memory_extraction) == ("Shipping", True)
    assert chats.update(bob, w.org, started.id, memory_extraction=False).title == "Shipping"
    chats.delete(bob, w.org, started.id)
    with pytest.raises(NotFound):
        chats.get(bob, w.org, started.id)
    assert [c.id for c in chats.list_mine(bob, w.org).items] == [everywhere.id]


@pytest.mark.parametrize("reader", ["ada", "cy", "oscar"])  # organisation owner, server admin + member, outsider
def test_nobody_but_the_owner_reads_changes_or_deletes_a_conversation(w, chats, reader):
    mine = chats.start(w.credential("bob"), w.org, None, "Private thoughts")
    w.say(mine.id, "my salary is ...")
    credential = w.credential(reader)
    for attempt in (lambda i: chats.get(credential, w.org, i), lambda i: chats.delete(credential, w.org, i),
                    lambda i: chats.update(credential, w.org, i, title="mine now")):
        for conversation_id in (mine.id, MISSING):  # the same answer as for one that does not exist
            with pytest.raises(NotFound) as refused:
                attempt(conversation_id)
            assert "salary" not in refused.value.message
    if reader != "oscar":
        assert chats.list_mine(credential, w.org).items == ()
    assert chats.get(w.credential("bob"), w.org, mine.id).conversation.title == "Private thoughts"


def test_a_server_admin_outside_the_organisation_gets_not_found_too(w, chats):
    w.directory.set_server_admin(w.ids["oscar"], True)
    mine = chats.start(w.credential("bob"), w.org, None, "Private")
    for attempt in (lambda: chats.get(w.credential("oscar"), w.org, mine.id),
                    lambda: chats.list_mine(w.credential("oscar"), w.org)):
        with pytest.raises(NotFound):
            attempt()


def test_losing_the_project_hides_its_conversations_at_once_and_getting_it_back_shows_them(w, chats):
    bob = w.credential("bob")
    in_app = chats.start(bob, w.org, "APP", "App questions")
    everywhere = chats.start(bob, w.org, None, "General")
    grant = next(g for g in w.directory.grants(w.projects["APP"]) if g.user_id == w.ids["bob"])
    w.directory.delete_grant(grant.id)
    for attempt in (lambda: chats.get(bob, w.org, in_app.id), lambda: chats.update(bob, w.org, in_app.id, title="x"),
                    lambda: chats.delete(bob, w.org, in_app.id)):
        with pytest.raises(NotFound):
            attempt()
    assert [c.id for c in chats.list_mine(bob, w.org).items] == [everywhere.id]
    with pytest.raises(NotFound):  # nor a new one there
        chats.start(bob, w.org, "APP", "again")
    w.directory.put_grant(w.projects["APP"], user_id=w.ids["bob"], group_id=None, role=ProjectRole.VIEWER)
    assert chats.get(bob, w.org, in_app.id).conversation.title == "App questions"


def test_removed_from_the_organisation_the_owner_reads_none_of_it(w, chats):
    bob = w.credential("bob")
    mine = chats.start(bob, w.org, None, "General")
    w.directory.remove_membership(w.org, w.ids["bob"])
    for attempt in (lambda: chats.get(bob, w.org, mine.id), lambda: chats.list_mine(bob, w.org),
                    lambda: chats.start(bob, w.org, None, "again")):
        with pytest.raises(NotFound):
            attempt()


def test_a_project_the_caller_cannot_read_or_that_does_not_exist_is_not_found_when_starting(w, chats):
    for key in ("SEC", "NOPE"):
        with pytest.raises(NotFound):
            chats.start(w.credential("bob"), w.org, key, "x")
    assert chats.list_mine(w.credential("bob"), w.org).items == ()


def test_a_revoked_session_is_not_authenticated(w, chats):
    bob = w.credential("bob")
    mine = chats.start(bob, w.org, None, "General")
    w.directory.revoke_user_sessions(w.ids["bob"], w.clock())
    with pytest.raises(NotAuthenticated):
        chats.get(bob, w.org, mine.id)


def test_without_ai_starting_is_refused_but_existing_conversations_can_be_read_and_deleted(w):
    bob = w.credential("bob")
    mine = w.use_cases().start(bob, w.org, None, "From before")
    unconfigured = w.use_cases(ai_configured=False)
    with pytest.raises(AiNotConfigured):
        unconfigured.start(bob, w.org, None, "new")
    with pytest.raises(NotFound):  # a non-member learns nothing, not even that AI is off
        unconfigured.start(w.credential("oscar"), w.org, None, "new")
    assert [c.id for c in unconfigured.list_mine(bob, w.org).items] == [mine.id]
    assert unconfigured.update(bob, w.org, mine.id, title="Renamed").title == "Renamed"
    unconfigured.delete(bob, w.org, mine.id)
    assert w.conversations.rows == {}


def test_bad_input_names_the_field_and_changes_nothing(w, chats):
    bob = w.credential("bob")
    with pytest.raises(InvalidInput) as refused:
        chats.start(bob, w.org, None, "x" * 201)
    assert refused.value.field == "title"
    assert w.conversations.rows == {}
    with pytest.raises(InvalidInput) as refused:
        chats.list_mine(bob, w.org, limit=0)
    assert refused.value.field == "limit"


def test_retention_deletes_conversations_idle_longer_than_the_days_kept_and_zero_keeps_all(w, chats):
    bob = w.credential("bob")
    idle, active = chats.start(bob, w.org, None, "idle"), chats.start(bob, w.org, None, "active")
    now = w.clock() + timedelta(days=90)
    w.say(active.id, "still talking")  # a turn is activity: retention counts from it
    assert purge_idle_conversations(w.conversations, now=now + timedelta(days=50), retention_days=0) == 0
    assert purge_idle_conversations(w.conversations, now=now, retention_days=90) == 1
    assert [c.id for c in chats.list_mine(bob, w.org).items] == [active.id]
    assert idle.id not in w.conversations.turn_rows
