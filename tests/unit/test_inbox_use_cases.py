"""The inbox and the Today page over the fakes (tow_core.inbox, tow_core.use_cases.inbox): who sees which
item, and that nothing a person cannot read is listed or counted — on the page, in the API's listing and in
the shell's count. World: tests/unit/records_world.py (Ada owns Acme; Bob is an APP viewer, in group Eng; Cy
is a plain member; OPS is open; SEC is restricted to nobody but the owner)."""

from __future__ import annotations

import pytest

from tests.fake_unit_of_work import fake_transactions
from tests.fake_uploads import InMemoryUploadRecords
from tests.unit.records_world import World
from tests.unit.test_chat_actions import Chat
from tow_core.access import ProjectRole
from tow_core.conversations import NewTurn, TurnRole
from tow_core.errors import Conflict, NotFound
from tow_core.inbox import InboxCounts
from tow_core.jobs import RetryPolicy
from tow_core.memory_diffs import CreateItem
from tow_core.records import RecordType
from tow_core.use_cases.frame import FrameUseCases
from tow_core.use_cases.inbox import InboxUseCases
from tow_core.use_cases.memory import MemoryReviewUseCases

POLICY = RetryPolicy(lease_seconds=30, max_attempts=3)


class Desk:
    """The world with every store the inbox reads, and the use cases that act on its items."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.chat = chat = Chat(w)
        uploads = InMemoryUploadRecords(w.directory, w.records, w.clock)
        transactions = fake_transactions(
            w.clock, rollback=(w.records, w.directory, chat.conversations, chat.runs, chat.diffs),
            directory=w.directory, records=w.records, history=w.keeping, conversations=chat.conversations,
            agent_runs=chat.runs, memory_diffs=chat.diffs, uploads=uploads)
        self.inbox = InboxUseCases(transactions)
        self.memory = MemoryReviewUseCases(transactions)
        self.frames = FrameUseCases(transactions)

    def propose(self, name: str, kind: str, ref: int | None, title: str = "A fact"):
        fields = {"memory_type": "fact"}
        return self.memory.propose(self.w.credential(name), self.w.org, kind, ref, [CreateItem(title, "", fields)])

    def conversation_with_actions(self, name: str, project: str | None, *titles: str):
        """A conversation of ``name`` whose answer proposes one ticket per title (as the tool loop stores it)."""
        conversation = self.chat.start(self.w.credential(name), self.w.org, project, "Planning")
        activity = [{"round": 1, "tool": "propose_ticket", "arguments": {}, "records": [], "web_sources": [],
                     "error": None, "pending_action": {"id": f"9-{n}", "kind": "ticket", "title": title, "body": "",
                                                       "priority": None, "applied": None}}
                    for n, title in enumerate(titles, start=1)]
        self.chat.conversations.add_turn(conversation.id, NewTurn(TurnRole.USER, "Plan it"), at=self.w.clock())
        self.chat.conversations.add_turn(conversation.id, NewTurn(TurnRole.ASSISTANT, "Proposed.",
                                                                  tool_activity=activity), at=self.w.clock())
        return conversation

    def failed_run(self, name: str, project: str | None = None, message: str = "the provider did not answer"):
        from tow_core.agent_runs import new_run
        run = self.chat.runs.create(new_run("chat", owner_id=self.w.ids[name], organisation_id=self.w.org,
                                            project_id=self.w.projects[project] if project else None, input={}),
                                    now=self.w.clock())
        claimed = self.chat.runs.claim(now=self.w.clock(), policy=POLICY)
        assert claimed.id == run.id
        self.chat.runs.finish_failed(claimed, "provider_unavailable", message, now=self.w.clock())
        return run

    def counts(self, name: str, project: str | None = None) -> InboxCounts:
        return self.inbox.inbox(self.w.credential(name), self.w.org, project).counts

    def nav_count(self, name: str, project: str | None = None) -> int:
        return self.frames.frame(self.w.credential(name), self.w.org, project).inbox_count


@pytest.fixture
def w() -> World:
    return World()


@pytest.fixture
def desk(w) -> Desk:
    return Desk(w)


def test_each_person_sees_the_diffs_they_may_review_and_snapshots_they_may_activate(w, desk):
    org_diff = desk.propose("cy", "organisation", None, "Everyone writes here")
    sec_diff = desk.propose("ada", "project", w.projects["SEC"], "Only Ada reads SEC")
    app_diff = desk.propose("ada", "project", w.projects["APP"], "Bob only views APP")
    private = desk.propose("cy", "user", w.ids["cy"], "Cy's own")
    snapshot = w.create("ada", RecordType.SNAPSHOT, "State of APP", w.project("APP"),
                        fields={"snapshot_type": "current_company_state"})

    ada = desk.inbox.inbox(w.credential("ada"), w.org)
    assert {d.id for d in ada.memory_diffs} == {org_diff.summary.id, sec_diff.summary.id, app_diff.summary.id}
    assert [s.display_id for s in ada.snapshots] == [snapshot.display_id]
    bob = desk.inbox.inbox(w.credential("bob"), w.org)  # reads APP but may not write it: not his to review
    assert [d.id for d in bob.memory_diffs] == [org_diff.summary.id] and bob.snapshots == ()
    cy = desk.inbox.inbox(w.credential("cy"), w.org)
    assert {d.id for d in cy.memory_diffs} == {org_diff.summary.id, private.summary.id}
    assert desk.counts("bob") == InboxCounts(memory_diffs=1) and desk.nav_count("bob") == 1
    assert desk.counts("ada") == InboxCounts(memory_diffs=3, snapshots=1) and desk.nav_count("ada") == 4


def test_a_diff_in_a_restricted_project_is_never_shown_nor_counted_and_a_revoked_grant_is_gone_at_once(w, desk):
    grant = w.directory.put_grant(w.projects["SEC"], user_id=w.ids["bob"], group_id=None, role=ProjectRole.MEMBER)
    diff = desk.propose("ada", "project", w.projects["SEC"], "The vault combination changed")
    assert [d.id for d in desk.inbox.inbox(w.credential("bob"), w.org).memory_diffs] == [diff.summary.id]
    assert desk.nav_count("bob") == 1 and desk.nav_count("bob", "SEC") == 1

    assert desk.counts("cy") == InboxCounts() and desk.nav_count("cy") == 0  # never granted: nothing, not even 1
    w.directory.delete_grant(grant.id)
    assert desk.counts("bob") == InboxCounts() and desk.nav_count("bob") == 0  # the very next request
    with pytest.raises(NotFound):  # and the project's own inbox does not exist for him any more
        desk.inbox.inbox(w.credential("bob"), w.org, "SEC")


def test_pending_actions_are_only_those_of_the_callers_own_conversations_not_yet_applied(w, desk):
    mine = desk.conversation_with_actions("bob", None, "Fix the build", "Write the notes")
    desk.conversation_with_actions("cy", None, "Cy's secret plan")
    bob = w.credential("bob")

    listed = desk.inbox.inbox(bob, w.org).chat_actions
    assert [(a.conversation.id, a.action["title"]) for a in listed] == [(mine.id, "Fix the build"),
                                                                        (mine.id, "Write the notes")]
    assert desk.counts("ada") == InboxCounts()  # the owner of the organisation does not see Bob's chats
    assert [a.action["title"] for a in desk.inbox.inbox(w.credential("cy"), w.org).chat_actions] == [
        "Cy's secret plan"]

    desk.chat.use_cases.apply_action(bob, w.org, mine.id, listed[0].action["id"])  # applied: the ticket exists
    assert [a.action["title"] for a in desk.inbox.inbox(bob, w.org).chat_actions] == ["Write the notes"]
    assert desk.counts("bob").chat_actions == 1


def test_a_project_scoped_conversation_follows_the_picked_project_and_the_owners_access(w, desk):
    grant = w.directory.put_grant(w.projects["SEC"], user_id=w.ids["bob"], group_id=None, role=ProjectRole.MEMBER)
    in_sec = desk.conversation_with_actions("bob", "SEC", "Rotate the vault")
    anywhere = desk.conversation_with_actions("bob", None, "Tidy up")
    bob = w.credential("bob")
    assert {a.conversation.id for a in desk.inbox.inbox(bob, w.org).chat_actions} == {in_sec.id, anywhere.id}
    assert [a.conversation.id for a in desk.inbox.inbox(bob, w.org, "SEC").chat_actions] == [in_sec.id]
    assert desk.inbox.inbox(bob, w.org, "OPS").chat_actions == ()

    w.directory.delete_grant(grant.id)
    assert [a.conversation.id for a in desk.inbox.inbox(bob, w.org).chat_actions] == [anywhere.id]
    assert desk.nav_count("bob") == 1


def test_failed_runs_are_their_owners_with_code_and_message_until_dismissed(w, desk):
    run = desk.failed_run("bob", message="the provider did not answer")
    desk.failed_run("cy")
    bob = w.credential("bob")
    [failed] = desk.inbox.inbox(bob, w.org).failed_runs
    assert (failed.id, failed.error_code, failed.error) == (run.id, "provider_unavailable",
                                                            "the provider did not answer")
    assert desk.counts("ada").failed_runs == 0  # an admin's run listing shows metadata; the inbox is the owner's

    with pytest.raises(NotFound):  # someone else's run: not found
        desk.inbox.dismiss_run(w.credential("cy"), w.org, run.id)
    desk.inbox.dismiss_run(bob, w.org, run.id)
    assert desk.inbox.inbox(bob, w.org).failed_runs == () and desk.nav_count("bob") == 0
    assert desk.chat.runs.get(run.id) is not None  # kept: only the inbox forgets it
    with pytest.raises(Conflict):
        desk.inbox.dismiss_run(bob, w.org, run.id)


def test_a_run_that_did_not_fail_cannot_be_dismissed(w, desk):
    from tow_core.agent_runs import new_run
    queued = desk.chat.runs.create(new_run("chat", owner_id=w.ids["bob"], organisation_id=w.org, project_id=None,
                                           input={}), now=w.clock())
    with pytest.raises(Conflict):
        desk.inbox.dismiss_run(w.credential("bob"), w.org, queued.id)


def test_approving_from_the_inbox_uses_the_review_and_empties_the_inbox(w, desk):
    diff = desk.propose("cy", "organisation", None, "We ship on Fridays")
    ada = w.credential("ada")
    [listed] = desk.inbox.inbox(ada, w.org).memory_diffs
    desk.memory.approve(ada, w.org, listed.id)
    assert desk.counts("ada") == InboxCounts() and desk.counts("cy") == InboxCounts()
    [item] = [r for r in w.records.rows.values() if r.type is RecordType.MEMORY]
    assert item.title == "We ship on Fridays" and diff.summary.id == listed.id


def test_outsiders_have_no_inbox_in_the_organisation(w, desk):
    with pytest.raises(NotFound):
        desk.inbox.inbox(w.credential("oscar"), w.org)
    with pytest.raises(NotFound):
        desk.inbox.today_page(w.credential("oscar"), w.org, None)


def test_today_shows_recent_activity_active_snapshots_and_my_open_tickets_in_scope(w, desk):
    w.create("ada", RecordType.DOC, "Secret plan", w.project("SEC"))
    plan = w.create("ada", RecordType.DOC, "Release plan", w.project("OPS"))
    mine = w.create("ada", RecordType.TICKET, "Ship it", w.project("OPS"), fields={"assignee_id": w.ids["bob"]})
    w.create("ada", RecordType.TICKET, "Not Bob's", w.project("OPS"), fields={"assignee_id": w.ids["cy"]})
    done = w.create("ada", RecordType.TICKET, "Shipped", w.project("OPS"), fields={"assignee_id": w.ids["bob"]})
    w.update("ada", done, status="done")
    hidden = w.create("ada", RecordType.TICKET, "Vault", w.project("SEC"), fields={"assignee_id": w.ids["ada"]})
    snapshot = w.create("ada", RecordType.SNAPSHOT, "State", w.org_scope, fields={"snapshot_type": "cto_state"})
    w.update("ada", snapshot, status="active")
    desk.propose("cy", "organisation", None)

    today = desk.inbox.today_page(w.credential("bob"), w.org, None)
    assert today.frame.inbox_count == 1 and today.content.counts.memory_diffs == 1
    recent = [str(r.display_id) for r in today.content.recent]
    assert str(plan.display_id) in recent and "DOC-1" not in recent and str(hidden.display_id) not in recent
    assert [r.display_id for r in today.content.snapshots] == [snapshot.display_id]
    assert [r.display_id for r in today.content.tickets] == [mine.display_id] and not today.content.empty

    in_app = desk.inbox.today_page(w.credential("bob"), w.org, "APP").content
    assert (in_app.recent, in_app.tickets, in_app.snapshots, in_app.empty) == ((), (), (), False)


def test_a_new_organisation_is_empty_so_today_offers_first_steps(w, desk):
    today = desk.inbox.today_page(w.credential("ada"), w.org, None)
    assert today.content.empty and today.content.recent == () and today.frame.inbox_count == 0


def test_the_first_steps_are_ticked_from_what_exists_and_only_offered_to_managers(w, desk):
    # The world already has other members and projects: a fresh organisation has neither.
    steps = desk.inbox.today_page(w.credential("ada"), w.org, None).content.first_steps
    assert (steps.invited, steps.project, steps.doc) == (True, True, False)
    assert desk.inbox.today_page(w.credential("bob"), w.org, None).content.first_steps is None  # not a manager
    assert desk.inbox.today_page(w.credential("ada"), w.org, None, first_steps=False).content.first_steps is None
    w.create("ada", RecordType.DOC, "Handbook", w.org_scope)
    assert desk.inbox.today_page(w.credential("ada"), w.org, None).content.first_steps is None  # all done: gone


def test_the_frame_carries_the_top_of_the_readable_doc_tree(w, desk):
    handbook = w.create("ada", RecordType.DOC, "Handbook", w.project("APP"))
    w.create("ada", RecordType.DOC, "Onboarding", w.project("APP"), fields={"parent_id": handbook.id})
    w.create("ada", RecordType.DOC, "Salaries", w.project("SEC"))
    frame = desk.inbox.today_page(w.credential("bob"), w.org, None).frame
    assert [(b.summary.title, b.has_children) for b in frame.doc_roots] == [("Handbook", True)]
    assert not frame.more_docs
