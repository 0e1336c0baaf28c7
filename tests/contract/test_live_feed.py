"""The live-update ports over real PostgreSQL LISTEN/NOTIFY (``tow_adapters.postgres.live``) beside their fakes
(tests/fake_live.py): an event published in a transaction is heard, whole, by every process's feed once it
commits — in order, one by one or many at once, never when it rolls back; a stranger's notification on the channel is ignored; a stopped
feed hears nothing more."""

from __future__ import annotations

import queue
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from tests.fake_history import rolled_back_on_error
from tests.fake_live import FakeLiveFeed, InMemoryLiveEvents
from tow_adapters.postgres.live import LIVE_CHANNEL, PgLiveEvents, PgLiveFeed
from tow_core.access import Scope
from tow_core.live import LiveEvent

EVENTS = [LiveEvent.record_changed(1, 10, 2), LiveEvent.comment_added(1, 10, 5, 2), LiveEvent.user_nudged(1, 3),
          LiveEvent.reviews_changed(Scope.project(1, 4))]
WAIT = 10.0


class Heard:
    def __init__(self) -> None:
        self.events: queue.Queue[LiveEvent] = queue.Queue()

    def __call__(self, event: LiveEvent) -> None:
        self.events.put(event)

    def next(self, timeout: float = WAIT) -> LiveEvent:
        return self.events.get(timeout=timeout)

    def nothing_within(self, seconds: float) -> bool:
        try:
            self.events.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


@contextmanager
def feeds(engine: sa.Engine, count: int):
    """``count`` processes' listening connections on one database, each with what it heard."""
    started = [(PgLiveFeed(engine), Heard()) for _ in range(count)]
    for feed, heard in started:
        feed.start(heard)
    try:
        yield [heard for _, heard in started]
    finally:
        for feed, _ in started:
            feed.stop()


def test_a_committed_event_reaches_every_process_in_order_and_whole(engine):
    with feeds(engine, 2) as (a, b):
        with engine.begin() as connection:
            for event in EVENTS:
                PgLiveEvents(connection).publish(event)
        for heard in (a, b):
            assert [heard.next() for _ in EVENTS] == EVENTS


def test_events_published_at_once_reach_every_process_in_order_and_whole(engine):
    nudges = [LiveEvent.user_nudged(1, user) for user in range(3, 203)]  # a 200-member group told of a grant
    with feeds(engine, 2) as (a, b):
        with engine.begin() as connection:
            PgLiveEvents(connection).publish_all(nudges)
            PgLiveEvents(connection).publish_all([])
        for heard in (a, b):
            assert [heard.next() for _ in nudges] == nudges
            assert heard.nothing_within(0.2)


def test_nothing_is_sent_before_commit_nor_for_a_rollback(engine):
    with feeds(engine, 1) as (heard,):
        with pytest.raises(RuntimeError), engine.begin() as connection:
            PgLiveEvents(connection).publish(EVENTS[0])
            assert heard.nothing_within(0.3)  # not before commit
            raise RuntimeError("roll back")
        with engine.begin() as connection:
            PgLiveEvents(connection).publish(EVENTS[2])
        assert heard.next() == EVENTS[2]  # the rolled-back one never came


def test_a_strangers_notification_on_the_channel_is_ignored(engine):
    with feeds(engine, 1) as (heard,):
        with engine.begin() as connection:
            connection.execute(sa.text("SELECT pg_notify(:c, :p)"), {"c": LIVE_CHANNEL, "p": '{"title": "x"}'})
            PgLiveEvents(connection).publish(EVENTS[1])
        assert heard.next() == EVENTS[1]


def test_a_stopped_feed_hears_nothing_more(engine):
    feed, heard = PgLiveFeed(engine), Heard()
    feed.start(heard)
    feed.stop()
    with engine.begin() as connection:
        PgLiveEvents(connection).publish(EVENTS[0])
    assert heard.nothing_within(0.5)


def test_the_fakes_keep_what_was_published_only_when_the_transaction_ends_well():
    events, feed, heard = InMemoryLiveEvents(), FakeLiveFeed(), Heard()
    with pytest.raises(RuntimeError), rolled_back_on_error(events):
        events.publish(EVENTS[0])
        raise RuntimeError("roll back")
    with rolled_back_on_error(events):
        events.publish(EVENTS[1])
    feed.start(heard)
    feed.hear(*events.take())
    assert heard.next(0) == EVENTS[1] and heard.nothing_within(0)
