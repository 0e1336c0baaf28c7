"""Live updates (tow_core.live, issue 19 item 3) over the in-memory fakes: what a save publishes, which
subscribers the hub hands it to, and what each is told at delivery — as themselves, at that moment."""

from __future__ import annotations

import pytest

from tests.fake_live import FakeLiveFeed
from tests.unit.records_world import World
from tow_core.access import ProjectRole
from tow_core.errors import Conflict, DependencyUnavailable, InvalidInput, NotAuthenticated, NotFound, Throttled
from tow_core.live import LiveEvent, LiveHub, LiveKind, LiveMessage
from tow_core.records import RecordType
from tow_core.use_cases.live import LiveUseCases
from tow_core.use_cases.records import RecordUseCases
from tow_core.use_cases.tickets import TicketUseCases


class Stream:
    """One subscriber's open stream: the events the hub handed it, then told as the stream would."""

    def __init__(self, live: LiveUseCases, credential, org_id: int, records=()) -> None:
        self.live, self.credential, self.org_id = live, credential, org_id
        self.heard: list[LiveEvent] = []
        self.ended = False  # told to end: the server is shutting down
        self.leave = live.subscribe(credential, org_id, list(records), self.heard.append, self.end)

    def end(self) -> None:
        self.ended = True

    def told(self) -> list[LiveMessage]:
        heard, self.heard = self.heard, []
        return [m for m in (self.live.deliver(self.credential, self.org_id, e) for e in heard) if m is not None]


@pytest.fixture
def w() -> World:
    return World()


@pytest.fixture
def feed() -> FakeLiveFeed:
    return FakeLiveFeed()


@pytest.fixture
def live(w, feed) -> LiveUseCases:
    return LiveUseCases(w.transactions, LiveHub(feed, max_subscribers=3))


def committed(w: World, feed: FakeLiveFeed) -> None:
    """What the world's units of work published reaches the process's listener (NOTIFY on commit)."""
    feed.hear(*w.live.take())


def save(w: World, name: str, record, **change):
    current = w.now(record)
    return RecordUseCases(w.transactions).update(w.credential(name), w.org, current.display_id,
                                                 version=current.version, **change)


def test_someone_elses_save_reaches_every_reader_of_the_record_with_the_actors_name(w, feed, live):
    doc = w.create("ada", RecordType.DOC, "Plan", w.project("OPS"), body="v1")
    bob, cy = Stream(live, w.credential("bob"), w.org, [doc.display_id]), Stream(live, w.credential("cy"), w.org,
                                                                                 [doc.display_id])
    w.live.take()
    save(w, "ada", doc, body="v2")
    committed(w, feed)
    for stream in (bob, cy):
        assert stream.told() == [LiveMessage("record_changed", {"record": str(doc.display_id),
                                                                "version": w.now(doc).version, "by": "Ada"})]


def test_the_actor_is_never_told_of_their_own_change(w, feed, live):
    doc = w.create("ada", RecordType.DOC, "Plan", w.org_scope)
    ada = Stream(live, w.credential("ada"), w.org, [doc.display_id])
    save(w, "ada", doc, title="Plan B")
    committed(w, feed)
    assert ada.heard == []
    assert live.deliver(w.credential("ada"), w.org, LiveEvent.record_changed(w.org, doc.id, w.ids["ada"])) is None


def test_a_revoked_grant_stops_the_events_at_once_and_names_nobody(w, feed, live):
    ticket = w.create("ada", RecordType.TICKET, "Secret fix", w.project("APP"))
    bob = Stream(live, w.credential("bob"), w.org, [ticket.display_id])  # a viewer of APP
    grant = next(g for g in w.directory.grants(w.projects["APP"]) if g.user_id == w.ids["bob"])
    w.directory.delete_grant(grant.id)
    save(w, "ada", ticket, title="Secret fix, by Ada")
    TicketUseCases(w.transactions).add_comment(w.credential("ada"), w.org, ticket.display_id, "done")
    committed(w, feed)
    assert len(bob.heard) == 2  # the hub routes by topic only ...
    assert bob.told() == []  # ... delivery decides, as Bob now


def test_a_stream_cannot_follow_a_record_its_user_cannot_read(w, live):
    secret = w.create("ada", RecordType.DOC, "Audit", w.project("SEC"))
    with pytest.raises(NotFound):
        Stream(live, w.credential("bob"), w.org, [secret.display_id])
    with pytest.raises(NotFound):  # nor in an organisation they are not a member of
        Stream(live, w.credential("oscar"), w.org)


def test_comments_are_announced_to_the_tickets_other_readers(w, feed, live):
    ticket = w.create("ada", RecordType.TICKET, "Ship it", w.project("OPS"))
    bob = Stream(live, w.credential("bob"), w.org, [ticket.display_id])
    comment = TicketUseCases(w.transactions).add_comment(w.credential("ada"), w.org, ticket.display_id, "Shipped")
    committed(w, feed)
    assert bob.told() == [LiveMessage("comment_added", {"record": str(ticket.display_id),
                                                        "version": ticket.version, "by": "Ada",
                                                        "comment_id": comment.id})]


def test_a_change_rolled_back_publishes_nothing(w, live):
    doc = w.create("ada", RecordType.DOC, "Plan", w.org_scope)
    w.live.take()
    with pytest.raises(Conflict):  # a stale version
        RecordUseCases(w.transactions).update(w.credential("bob"), w.org, doc.display_id, version=99, body="x")
    assert w.live.sent == []


def test_a_nudge_reaches_only_its_user(w, feed, live):
    bob, cy = Stream(live, w.credential("bob"), w.org), Stream(live, w.credential("cy"), w.org)
    feed.hear(LiveEvent.user_nudged(w.org, w.ids["bob"]))
    assert [m.kind for m in bob.told()] == ["nudge"]
    assert cy.heard == [] and cy.told() == []


def test_a_diff_awaiting_review_nudges_only_the_reviewers_of_its_scope(w, feed, live):
    ada, bob, cy = (Stream(live, w.credential(n), w.org) for n in ("ada", "bob", "cy"))
    w.directory.put_grant(w.projects["SEC"], user_id=w.ids["cy"], group_id=None, role=ProjectRole.MEMBER)
    feed.hear(LiveEvent.reviews_changed(w.project("SEC")))
    assert [len(s.told()) for s in (ada, bob, cy)] == [1, 0, 1]  # the owner and SEC's member; not Bob


def test_a_snapshot_entering_review_is_published_for_its_scope(w, feed, live):
    snapshot = w.create("ada", RecordType.SNAPSHOT, "Weekly", w.project("OPS"),
                        fields={"snapshot_type": "weekly_review"})
    w.live.take()
    save(w, "ada", snapshot, status="pending_review")
    kinds = {e.kind: e for e in w.live.take()}
    assert kinds[LiveKind.REVIEWS_CHANGED].scope == w.project("OPS")


def test_a_signed_out_subscriber_is_told_nothing_more(w, feed, live):
    doc = w.create("ada", RecordType.DOC, "Plan", w.org_scope)
    credential = w.credential("bob")
    Stream(live, credential, w.org, [doc.display_id])
    w.directory.revoke_session(credential.token_hash, w.clock())
    with pytest.raises(NotAuthenticated):
        live.deliver(credential, w.org, LiveEvent.record_changed(w.org, doc.id, w.ids["ada"]))
    with pytest.raises(NotAuthenticated):
        live.check(credential, w.org)


def test_the_hub_holds_a_bounded_number_of_streams_and_forgets_those_that_leave(w, feed, live):
    streams = [Stream(live, w.credential(n), w.org) for n in ("ada", "bob", "cy")]
    with pytest.raises(Throttled):
        Stream(live, w.credential("ada"), w.org)
    streams[0].leave()
    Stream(live, w.credential("ada"), w.org)
    assert feed.starts == 1  # one listening connection for the process, however many streams


def test_closing_the_hub_ends_every_stream_refuses_new_ones_until_it_opens_and_stops_listening(w, feed, live):
    streams = [Stream(live, w.credential(n), w.org) for n in ("ada", "bob")]
    streams[1].leave()
    live.hub.close()  # the server is shutting down
    assert [s.ended for s in streams] == [True, False]  # only those still joined are told
    assert feed.stopped and live.hub.subscriber_count == 0
    with pytest.raises(DependencyUnavailable):
        Stream(live, w.credential("cy"), w.org)
    live.hub.close()  # again (the app's own shutdown after the server's): nothing more to do
    live.hub.open()  # an app started again
    again = Stream(live, w.credential("cy"), w.org)
    assert feed.starts == 2 and not again.ended  # listening anew


def test_a_stream_follows_a_bounded_number_of_records(w, live):
    doc = w.create("ada", RecordType.DOC, "Plan", w.org_scope)
    with pytest.raises(InvalidInput):
        Stream(live, w.credential("bob"), w.org, [doc.display_id] * 21)


def test_an_event_carries_ids_only_and_reads_back_whole(w):
    doc = w.create("ada", RecordType.DOC, "Confidential merger plan", w.org_scope, body="the secret body")
    for event in (LiveEvent.record_changed(w.org, doc.id, w.ids["ada"]), LiveEvent.comment_added(w.org, doc.id, 7, 3),
                  LiveEvent.user_nudged(w.org, 5), LiveEvent.reviews_changed(w.project("APP"))):
        payload = event.payload()
        assert "merger" not in payload and "secret" not in payload and "Ada" not in payload
        assert LiveEvent.from_payload(payload) == event
    for stranger in ("", "hello", '{"k":"record_changed"}', '{"k":"x","o":1}', '{"k":"user_nudged","o":"1"}'):
        with pytest.raises(ValueError):
            LiveEvent.from_payload(stranger)
