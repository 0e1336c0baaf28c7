"""The live stream's loop (tow_http/live/api.py) over a database that is busy: it rides it out — a heartbeat
whose check cannot run keeps the stream, an event that cannot be checked is sent as ``resync`` (never as the
event itself) — and ends only when the check refuses (signed out)."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from datetime import UTC, datetime

from tests.fake_live import FakeLiveFeed
from tow_core.errors import DatabaseBusy, NotAuthenticated
from tow_core.live import LiveEvent, LiveHub
from tow_core.unit_of_work import SessionCredential, Transactions
from tow_core.use_cases.live import LiveUseCases
from tow_http.live.api import _follow


def failing_with(error: Exception) -> LiveUseCases:
    @contextmanager
    def unit_of_work():
        raise error
        yield

    return LiveUseCases(Transactions(unit_of_work, lambda: datetime(2026, 1, 1, tzinfo=UTC)),
                        LiveHub(FakeLiveFeed(), max_subscribers=1))


def stream(live: LiveUseCases, events: list[LiveEvent], *, take: int) -> tuple[list, list[bool]]:
    """The first ``take`` messages of a stream (heartbeat 0.05 s) fed ``events``, and whether it left the hub."""
    left: list[bool] = []

    async def run() -> list:
        queue: asyncio.Queue = asyncio.Queue()
        for event in events:
            queue.put_nowait(event)
        follow = _follow(live, SessionCredential("x"), 1, queue, lambda: left.append(True), 0.05)
        messages = []
        async for message in follow:
            messages.append(message)
            if len(messages) == take:
                break
        await follow.aclose()
        return messages

    return asyncio.run(run()), left


def test_an_event_that_cannot_be_checked_is_sent_as_resync_and_the_stream_goes_on():
    busy = failing_with(DatabaseBusy("all connections are in use", retry_after_seconds=1))
    messages, left = stream(busy, [LiveEvent.record_changed(1, 7, 2)], take=4)
    assert [m.event for m in messages[:2]] == ["ready", "resync"]
    assert [m.comment for m in messages[2:]] == ["keep-alive", "keep-alive"]  # heartbeats go on while busy
    assert left == [True]


def test_a_refused_check_ends_the_stream_and_leaves_the_hub():
    signed_out = failing_with(NotAuthenticated("sign in first"))
    messages, left = stream(signed_out, [], take=10)
    assert [m.event for m in messages] == ["ready"]
    assert left == [True]
