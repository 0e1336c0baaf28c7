"""Notifications through the use cases over the fakes (tow_core.notifications): who is told of an assignment,
a mention, a comment on something they watch; never the actor; never someone who cannot read the record; what
a notification shows once its reader lost the record; watching, preferences and mention candidates.
World: tests/unit/records_world.py (Ada owns Acme; Bob is an APP viewer, in group Eng; Cy is a plain member;
OPS is open; SEC is restricted to nobody but the owner)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from tests.fake_notifications import InMemoryNotifications
from tests.fake_unit_of_work import fake_transactions, fake_unit_of_work
from tests.unit.records_world import World
from tow_core.agent_runs import AgentRunFailed, AgentRunResult, new_run
from tow_core.errors import InvalidInput, NotFound
from tow_core.jobs import RetryPolicy
from tow_core.memory_diffs import CreateItem
from tow_core.notifications import LOST, LOST_DIFF, Delivery, NotificationKind, mention_markup, mentioned_ids
from tow_core.records import RecordType
from tow_core.unit_of_work import notifications_of
from tow_core.use_cases.frame import FrameUseCases
from tow_core.use_cases.memory import MemoryReviewUseCases
from tow_core.use_cases.notifications import NotificationUseCases
from tow_core.use_cases.records import RecordUseCases
from tow_core.use_cases.tickets import TicketUseCases
from tow_http.agent_run_worker import AgentRunWorker

SECRET = "Secret merger plan"


class Desk:
    def __init__(self) -> None:
        w = self.w = World()
        inbox = _inbox_stores(w)
        self.diffs = inbox["memory_diffs"]
        self.store = InMemoryNotifications(w.records, w.directory, diffs=self.diffs)
        transactions = fake_transactions(w.clock, rollback=(w.records, w.directory, w.comments),
                                         directory=w.directory, records=w.records, history=w.keeping,
                                         notifications=self.store, **inbox)
        self.records = RecordUseCases(transactions)
        self.memory = MemoryReviewUseCases(transactions)
        self.tickets = TicketUseCases(transactions)
        self.notifications = NotificationUseCases(transactions)
        self.frames = FrameUseCases(transactions)

    def c(self, name: str):
        return self.w.credential(name)

    def mention(self, name: str) -> str:
        return mention_markup(self.w.ids[name], name.title())

    def ticket(self, by: str, scope: tuple[str, int | None], title: str = "Fix login", body: str = "",
               assignee: str | None = None):
        fields = {"assignee_id": self.w.ids[assignee]} if assignee else {}
        return self.records.create(self.c(by), self.w.org, record_type=RecordType.TICKET, scope=scope, title=title,
                                   body=body, fields=fields)

    def shown(self, name: str, **kwargs):
        return self.notifications.list(self.c(name), self.w.org, **kwargs)


def _inbox_stores(w: World) -> dict[str, object]:
    from tests.fake_agent_runs import InMemoryAgentRuns
    from tests.fake_conversations import InMemoryConversations
    from tests.fake_records import InMemoryMemoryDiffStore
    from tests.fake_uploads import InMemoryUploadRecords
    return {"memory_diffs": InMemoryMemoryDiffStore(w.directory, w.clock),
            "conversations": InMemoryConversations(w.directory), "agent_runs": InMemoryAgentRuns(),
            "uploads": InMemoryUploadRecords(w.directory, w.records, w.clock)}


@pytest.fixture
def d() -> Desk:
    return Desk()


def ops(d: Desk) -> tuple[str, int]:
    return ("project", d.w.projects["OPS"])


def test_the_mention_syntax_names_ids_and_survives_renames():
    text = "ask @[Ada Lovelace](user:12) and @[Bob](user:7), not @Ada or @[x](user:abc)"
    assert mentioned_ids(text) == {12, 7}
    assert mention_markup(3, "Cy ]Evil\nName") == "@[Cy Evil Name](user:3)"


def test_an_assignee_is_told_and_clicks_through_to_the_ticket(d):
    ticket = d.ticket("ada", ops(d), assignee="bob")
    listing = d.shown("bob")
    assert [(n.kind, n.record.display_id) for n in listing.items] == [(NotificationKind.ASSIGNED, ticket.display_id)]
    assert listing.unread == 1 and listing.items[0].text == f"Ada assigned you {ticket.display_id} Fix login"
    assert d.frames.frame(d.c("bob"), d.w.org, None).notification_count == 1
    assert d.notifications.open(d.c("bob"), d.w.org, listing.items[0].id).link == f"/o/{d.w.org}/r/{ticket.display_id}"
    assert d.shown("bob").unread == 0 and d.shown("bob").items[0].read_at is not None


def test_nobody_is_told_about_their_own_act(d):
    d.ticket("ada", ops(d), assignee="ada", body=f"note to self {d.mention('ada')}")
    assert d.shown("ada").items == ()


def test_reassigning_tells_the_new_assignee_only(d):
    ticket = d.ticket("ada", ops(d), assignee="bob")
    d.records.update(d.c("ada"), d.w.org, ticket.display_id, version=ticket.version,
                     fields={"assignee_id": d.w.ids["cy"]})
    assert [n.kind for n in d.shown("cy").items] == [NotificationKind.ASSIGNED]
    assert len(d.shown("bob").items) == 1


def test_only_newly_added_mentions_notify(d):
    doc = d.records.create(d.c("ada"), d.w.org, record_type=RecordType.DOC, scope=ops(d), title="Plan",
                           body=f"hi {d.mention('bob')}")
    assert [n.kind for n in d.shown("bob").items] == [NotificationKind.MENTIONED]
    saved = d.records.update(d.c("ada"), d.w.org, doc.display_id, version=doc.version,
                             body=f"hi {d.mention('bob')} and {d.mention('cy')}")
    assert len(d.shown("bob").items) == 1 and len(d.shown("cy").items) == 1
    d.records.update(d.c("ada"), d.w.org, doc.display_id, version=saved.version, body=f"{d.mention('cy')} again")
    assert len(d.shown("cy").items) == 1


def test_a_mention_of_someone_who_cannot_read_the_record_creates_nothing(d):
    sec = ("project", d.w.projects["SEC"])
    d.records.create(d.c("ada"), d.w.org, record_type=RecordType.DOC, scope=sec, title=SECRET,
                     body=f"{d.mention('bob')} {d.mention('cy')} {d.mention('oscar')}")
    assert d.store.rows == {}
    with pytest.raises(NotFound):
        d.notifications.list(d.c("oscar"), d.w.org)


def test_assigning_a_ticket_the_assignee_cannot_read_creates_nothing(d):
    d.ticket("ada", ("project", d.w.projects["SEC"]), title=SECRET, assignee="cy")
    assert d.shown("cy").items == () and d.shown("cy").unread == 0


def test_comments_tell_watchers_and_commenters_become_watchers(d):
    ticket = d.ticket("ada", ops(d), assignee="bob")
    d.tickets.add_comment(d.c("cy"), d.w.org, ticket.display_id, "I can reproduce it")
    assert [n.kind for n in d.shown("ada").items] == [NotificationKind.COMMENTED]
    assert [n.kind for n in d.shown("bob").items] == [NotificationKind.COMMENTED, NotificationKind.ASSIGNED]
    assert d.shown("cy").items == ()  # the commenter is not told of their own comment
    d.tickets.add_comment(d.c("bob"), d.w.org, ticket.display_id, f"thanks {d.mention('ada')}")
    assert [n.kind for n in d.shown("cy").items] == [NotificationKind.COMMENTED]  # a watcher now
    assert [n.kind for n in d.shown("ada").items] == [NotificationKind.MENTIONED, NotificationKind.COMMENTED]


def test_unwatching_stops_comment_notifications_and_watching_needs_read_access(d):
    ticket = d.ticket("ada", ops(d))
    assert d.notifications.watching(d.c("ada"), d.w.org, ticket.display_id)
    assert d.notifications.set_watching(d.c("ada"), d.w.org, ticket.display_id, False) is False
    d.tickets.add_comment(d.c("bob"), d.w.org, ticket.display_id, "hello")
    assert d.shown("ada").items == ()
    secret = d.ticket("ada", ("project", d.w.projects["SEC"]), title=SECRET)
    with pytest.raises(NotFound):
        d.notifications.set_watching(d.c("bob"), d.w.org, secret.display_id, True)


def test_a_watcher_who_lost_access_is_skipped(d):
    app = ("project", d.w.projects["APP"])
    ticket = d.ticket("ada", app, title=SECRET)
    d.notifications.set_watching(d.c("bob"), d.w.org, ticket.display_id, True)
    grant = next(g for g in d.w.directory.grants(d.w.projects["APP"]) if g.user_id == d.w.ids["bob"])
    d.w.directory.delete_grant(grant.id)
    d.tickets.add_comment(d.c("ada"), d.w.org, ticket.display_id, "the plan changed")
    assert d.shown("bob").items == ()


def test_a_notification_whose_record_was_lost_shows_nothing_of_it(d):
    ticket = d.ticket("ada", ("project", d.w.projects["APP"]), title=SECRET)
    d.tickets.add_comment(d.c("ada"), d.w.org, ticket.display_id, f"{d.mention('bob')} look")
    assert d.shown("bob").items[0].record.title == SECRET
    grant = next(g for g in d.w.directory.grants(d.w.projects["APP"]) if g.user_id == d.w.ids["bob"])
    d.w.directory.delete_grant(grant.id)
    (shown,) = d.shown("bob").items
    assert shown.lost and shown.record is None and shown.actor_name is None and shown.comment_id is None
    assert SECRET not in shown.text and LOST in shown.text
    assert d.notifications.open(d.c("bob"), d.w.org, shown.id).link is None


def test_reading_and_marking_touch_only_ones_own_notifications(d):
    d.ticket("ada", ops(d), assignee="bob")
    d.ticket("ada", ops(d), title="Second", assignee="cy")
    (bobs,) = d.shown("bob").items
    assert d.notifications.mark_read(d.c("cy"), [bobs.id]) == 0
    assert d.shown("bob").unread == 1
    assert d.notifications.mark_all_read(d.c("cy"), d.w.org) == 1
    assert d.shown("bob").unread == 1 and d.shown("bob", unread_only=True).items[0].id == bobs.id
    with pytest.raises(InvalidInput):
        d.shown("bob", limit=0)


def test_preferences_turn_a_kind_off(d):
    prefs = d.notifications.preferences(d.c("bob")).kinds
    assert set(prefs.values()) == {Delivery.IN_APP} and set(prefs) == set(NotificationKind)
    d.notifications.set_preferences(d.c("bob"), {NotificationKind.ASSIGNED: Delivery.OFF})
    d.ticket("ada", ops(d), assignee="bob")
    assert d.shown("bob").items == ()
    assert d.notifications.preferences(d.c("bob")).kinds[NotificationKind.ASSIGNED] is Delivery.OFF


def test_mention_candidates_are_members_who_read_the_record(d):
    secret = d.ticket("ada", ("project", d.w.projects["APP"]), title=SECRET)
    names = [m.display_name for m in d.notifications.mentionable(d.c("ada"), d.w.org, secret.display_id)]
    assert names == ["Ada", "Bob"]  # Cy does not read APP; Oscar is not a member
    (bob,) = d.notifications.mentionable(d.c("ada"), d.w.org, secret.display_id, "bo")
    assert bob.markup == f"@[Bob](user:{d.w.ids['bob']})"
    with pytest.raises(NotFound):
        d.notifications.mentionable(d.c("cy"), d.w.org, secret.display_id)


class Runs:
    """Bob's agent runs, run by the worker whose end transaction tells the owner (as ``composition`` builds it)."""

    def __init__(self, d: Desk) -> None:
        from tests.fake_agent_runs import InMemoryAgentRuns
        self.d, self.runs = d, InMemoryAgentRuns()
        d.store.runs = self.runs
        self.uow = fake_unit_of_work(directory=d.w.directory, records=d.w.records, notifications=d.store,
                                     agent_runs=self.runs)

    def worker(self, handler) -> AgentRunWorker:  # noqa: ANN001 - an AgentRunHandler
        @contextmanager
        def runs():
            with self.uow() as stores:
                yield stores.agent_runs

        @contextmanager
        def ending():
            with self.uow() as stores:
                yield stores.agent_runs, notifications_of(stores, self.d.w.clock()).agent_run_ended

        return AgentRunWorker(runs, {"chat": handler, "snapshot_generation": handler}, ending=ending,
                              policy=RetryPolicy(lease_seconds=30, max_attempts=1), concurrency=1,
                              poll_interval_seconds=0.1, clock=self.d.w.clock)

    def queue(self, kind: str = "chat", owner: str = "bob") -> int:
        new = new_run(kind, owner_id=self.d.w.ids[owner], organisation_id=self.d.w.org, project_id=None,
                      input={"question": "q"})
        return self.runs.create(new, now=self.d.w.clock()).id


def _answers(run, heartbeat):  # noqa: ANN001
    return AgentRunResult({"ok": True})


def _breaks(run, heartbeat):  # noqa: ANN001
    raise AgentRunFailed("the model said no", error_code="model_failed")


def test_the_owner_is_told_when_their_agent_run_finishes_or_fails(d):
    runs = Runs(d)
    finished = runs.queue("chat")
    runs.worker(_answers).run_once()
    failed = runs.queue("snapshot_generation")
    runs.worker(_breaks).run_once()
    listing = d.shown("bob")
    assert [(n.kind, n.agent_run_id, n.text) for n in listing.items] == [
        (NotificationKind.RUN_FAILED, failed, "Your snapshot generation failed"),
        (NotificationKind.RUN_FINISHED, finished, "Your chat answer finished")]
    assert all(n.actor_name is None and n.record is None and not n.lost for n in listing.items)
    assert [len(n.items) for n in (d.shown("ada"), d.shown("cy"))] == [0, 0]  # the org owner is not told


def test_a_cancelled_run_tells_nobody_and_a_switched_off_kind_is_not_created(d):
    runs = Runs(d)
    d.notifications.set_preferences(d.c("bob"), {NotificationKind.RUN_FINISHED: Delivery.OFF})
    runs.queue("chat")
    runs.worker(_answers).run_once()

    def cancelled(run, heartbeat):  # noqa: ANN001
        runs.runs.request_cancel(run.id, now=d.w.clock())
        heartbeat()

    runs.queue("chat")
    runs.worker(cancelled).run_once()
    assert not d.shown("bob").items
    assert {NotificationKind.RUN_FINISHED, NotificationKind.RUN_FAILED} <= set(d.notifications.preferences(d.c("bob")).kinds)


def test_a_run_notification_never_shows_a_run_the_reader_does_not_own(d):
    runs = Runs(d)
    run_id = runs.queue("chat", owner="cy")
    runs.worker(_answers).run_once()
    note = d.store.rows[max(d.store.rows)].new
    from dataclasses import replace as changed
    d.store.add(changed(note, user_id=d.w.ids["bob"]))  # a row about Cy's run addressed to Bob (a forged id)
    shown = d.shown("bob").items[0]
    assert shown.agent_run_id is None and shown.run_kind is None and shown.text == "Your agent run finished"
    assert d.shown("cy").items[0].agent_run_id == run_id


def test_a_snapshot_entering_review_tells_who_may_write_its_scope_but_not_its_author(d):
    snap = d.records.create(d.c("cy"), d.w.org, record_type=RecordType.SNAPSHOT, scope=ops(d), title="Q3 state",
                            body="where we are", fields={"snapshot_type": "cto_state"})
    assert snap.status == "pending_review"
    told = {name: [n.text for n in d.shown(name).items if n.kind is NotificationKind.REVIEW]
            for name in ("ada", "bob", "cy")}
    text = f"Cy put {snap.display_id} Q3 state up for your review"
    assert told == {"ada": [text], "bob": [text], "cy": []}  # OPS is open: its members write it
    secret = d.records.create(d.c("ada"), d.w.org, record_type=RecordType.SNAPSHOT,
                              scope=("project", d.w.projects["SEC"]), title=SECRET, body="x",
                              fields={"snapshot_type": "cto_state"})
    assert secret.status == "pending_review"
    assert all(SECRET not in n.text for name in ("bob", "cy") for n in d.shown(name).items)


def test_review_notifications_are_capped_at_the_first_writers_by_id(d, monkeypatch):
    import tow_core.notifications as notifications_module
    monkeypatch.setattr(notifications_module, "MAX_REVIEWERS_TOLD", 1)
    d.records.create(d.c("cy"), d.w.org, record_type=RecordType.SNAPSHOT, scope=ops(d), title="Capped", body="b",
                     fields={"snapshot_type": "cto_state"})
    told = [name for name in ("ada", "bob") if any(n.kind is NotificationKind.REVIEW for n in d.shown(name).items)]
    assert told == ["ada"]  # the first writer by user id


def propose(d: Desk, by: str, scope: tuple[str, int | None], *titles: str):
    return d.memory.propose(d.c(by), d.w.org, scope[0], scope[1],
                            [CreateItem(title, "remember this", {"memory_type": "fact"}) for title in titles])


def reviews(d: Desk, name: str) -> list:
    return [n for n in d.shown(name).items if n.kind is NotificationKind.REVIEW]


def test_a_proposed_memory_diff_tells_who_may_review_it_but_not_its_author(d):
    diff = propose(d, "cy", ops(d), "Deploys freeze on Fridays", "On-call rotates weekly")
    text = f"Cy proposed memory diff #{diff.summary.id} (2 changes) for your review"
    told = {name: [n.text for n in reviews(d, name)] for name in ("ada", "bob", "cy")}
    assert told == {"ada": [text], "bob": [text], "cy": []}  # OPS is open: its members write it
    (note,) = reviews(d, "bob")
    assert note.link == f"/o/{d.w.org}/memory-diffs/{diff.summary.id}" and note.record is None
    opened = d.notifications.open(d.c("bob"), d.w.org, note.id)
    assert opened.link == note.link and d.shown("bob").unread == 0


def test_a_diff_in_a_scope_someone_only_reads_does_not_tell_them(d):
    propose(d, "ada", ("project", d.w.projects["APP"]), "Release checklist")  # Bob only views APP
    propose(d, "ada", ("project", d.w.projects["SEC"]), SECRET)  # restricted to the owner
    assert reviews(d, "bob") == [] and reviews(d, "cy") == []


def test_a_diff_notification_whose_scope_was_lost_shows_nothing_of_it(d):
    propose(d, "ada", ops(d), SECRET)
    (note,) = reviews(d, "bob")
    ops_project = d.w.directory.project(d.w.projects["OPS"])
    from dataclasses import replace as changed

    from tow_core.access import Visibility
    d.w.directory.update_project(changed(ops_project, visibility=Visibility.RESTRICTED))  # Bob loses OPS
    (shown,) = reviews(d, "bob")
    assert shown.lost and shown.lost_diff and shown.memory_diff_id is None and shown.actor_name is None
    assert shown.link is None and LOST_DIFF in shown.text and SECRET not in shown.text and "#" not in shown.text
    assert d.notifications.open(d.c("bob"), d.w.org, shown.id).link is None


def test_diff_notifications_can_be_switched_off_and_are_capped(d, monkeypatch):
    d.notifications.set_preferences(d.c("bob"), {NotificationKind.REVIEW: Delivery.OFF})
    propose(d, "cy", ops(d), "Quiet please")
    assert reviews(d, "bob") == [] and len(reviews(d, "ada")) == 1
    import tow_core.notifications as notifications_module
    monkeypatch.setattr(notifications_module, "MAX_REVIEWERS_TOLD", 1)
    d.notifications.set_preferences(d.c("bob"), {NotificationKind.REVIEW: Delivery.IN_APP})
    propose(d, "ada", ops(d), "Only the first writer")
    assert (len(reviews(d, "bob")), len(reviews(d, "cy"))) == (1, 0)  # the first writer by user id but Ada
    propose(d, "cy", ops(d), "Capped")
    assert (len(reviews(d, "ada")), len(reviews(d, "bob"))) == (2, 1)


def test_the_first_qualifying_candidates_are_found_a_batch_at_a_time():
    from tow_core.notifications import first_among
    asked: list[list[int]] = []

    def evens(users: list[int]) -> frozenset[int]:
        asked.append(users)
        return frozenset(u for u in users if u % 2 == 0)

    assert first_among(list(range(1, 101)), evens, 5) == [2, 4, 6, 8, 10] and len(asked) == 1  # one batch did
    asked.clear()
    assert first_among(list(range(1, 101)), lambda users: evens(users) & {98, 100}, 3) == [98, 100]
    assert [len(batch) for batch in asked] == [20] * 5  # every member, a batch at a time, when few qualify
    assert first_among([], evens, 5) == []


def _told(store: InMemoryNotifications, live, jobs) -> tuple[list, list, list]:
    """What telling created: (recipient, kind, record, actor) of each notification, the live nudges, and the
    recipient of each queued email."""
    rows = [(r.new.user_id, r.new.kind, r.new.record_id, r.new.actor_id) for r in store.rows.values()]
    emailed = [store.rows[j.payload["notification_id"]].new.user_id for j in jobs.jobs.values()]
    return rows, [e.user_id for e in live.sent], emailed


def test_telling_many_at_once_creates_what_telling_each_in_turn_would(d):
    from tests.fake_exports import InMemoryJobQueue
    from tests.fake_live import InMemoryLiveEvents
    from tow_core.notifications import Digest, Notifications

    ids = d.w.ids
    app = d.records.create(d.c("ada"), d.w.org, record_type=RecordType.DOC, scope=("project", d.w.projects["APP"]),
                           title=SECRET, body="b")
    lunch = d.records.create(d.c("ada"), d.w.org, record_type=RecordType.DOC, scope=ops(d), title="Lunch", body="b")
    recipients = [ids["cy"], ids["ada"], ids["bob"], ids["oscar"]]  # Ada is the actor; Oscar is not a member
    told = {}
    for way in ("at once", "one by one"):
        store = InMemoryNotifications(d.w.records, d.w.directory)
        store.set_preference(ids["bob"], NotificationKind.MENTIONED, Delivery.EMAIL)  # emailed at once
        store.set_preference(ids["cy"], NotificationKind.MENTIONED, Delivery.EMAIL)
        store.set_digest(ids["cy"], Digest.DAILY, now=d.w.clock())  # emailed in her digest, not now
        live, jobs = InMemoryLiveEvents(), InMemoryJobQueue()
        notifications = Notifications(store, d.w.records, d.w.clock(), jobs, live)
        for record in (lunch, app):
            if way == "at once":
                notifications.deliver_many(ids["ada"], recipients, d.w.org, NotificationKind.MENTIONED, record=record)
            else:
                for user in recipients:
                    notifications.deliver(ids["ada"], user, d.w.org, NotificationKind.MENTIONED, record=record)
        told[way] = _told(store, live, jobs)
    mentioned = NotificationKind.MENTIONED
    assert told["at once"] == told["one by one"] == (
        [(ids["cy"], mentioned, lunch.id, ids["ada"]), (ids["bob"], mentioned, lunch.id, ids["ada"]),
         (ids["bob"], mentioned, app.id, ids["ada"])],  # Cy does not read APP; Oscar reads neither
        [ids["cy"], ids["bob"], ids["bob"]], [ids["bob"], ids["bob"]])
    once = Notifications(InMemoryNotifications(d.w.records, d.w.directory), d.w.records, d.w.clock())
    assert once.deliver_many(ids["ada"], [ids["bob"], ids["cy"], ids["bob"]], d.w.org, NotificationKind.MENTIONED,
                             record=lunch) == [ids["bob"], ids["cy"]]  # named twice, told once


def test_a_group_whose_access_changed_tells_its_members_but_not_the_actor_nor_who_turned_it_off(d, monkeypatch):
    import tow_core.notifications as notifications_module
    from tow_core.notifications import Notifications

    ids, directory = d.w.ids, d.w.directory
    for name in ("ada", "cy"):
        directory.add_group_member(d.w.eng, ids[name])
    d.notifications.set_preferences(d.c("cy"), {NotificationKind.ACCESS: Delivery.OFF})
    notifications = Notifications(d.store, d.w.records, d.w.clock())
    notifications.group_access_changed(ids["ada"], directory.group(d.w.eng))
    assert {name: [n.kind for n in d.shown(name).items] for name in ("ada", "bob", "cy")} == {
        "ada": [], "bob": [NotificationKind.ACCESS], "cy": []}
    monkeypatch.setattr(notifications_module, "MAX_GROUP_TOLD", 1)  # the first member by user id: Ada, the actor
    notifications.group_access_changed(ids["ada"], directory.group(d.w.eng))
    assert len(d.shown("bob").items) == 1

