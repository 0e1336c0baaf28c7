"""Fakes of the live-update ports (``tow_core.live``): the events a unit of work published (a list, so
``rolled_back_on_error`` takes back those of a transaction that raised — as NOTIFY is only sent on commit), and
a feed a test drives by hand, standing for the process's listening connection."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tow_core.live import LiveEvent


class InMemoryLiveEvents:
    def __init__(self) -> None:
        self.sent: list[LiveEvent] = []

    def publish(self, event: LiveEvent) -> None:
        self.sent.append(event)

    def publish_all(self, events: Sequence[LiveEvent]) -> None:
        self.sent.extend(events)

    def take(self) -> list[LiveEvent]:
        """The events sent since the last ``take``."""
        taken, self.sent = self.sent, []
        return taken


class FakeLiveFeed:
    def __init__(self) -> None:
        self.on_event: Callable[[LiveEvent], None] | None = None
        self.starts = 0
        self.stopped = False

    def start(self, on_event: Callable[[LiveEvent], None]) -> None:
        self.on_event = on_event
        self.starts += 1

    def stop(self) -> None:
        self.stopped = True

    def hear(self, *events: LiveEvent) -> None:
        """As the listening connection hears committed events (from this process or any other)."""
        assert self.on_event is not None, "nobody subscribed yet: the feed was never started"
        for event in events:
            self.on_event(event)
