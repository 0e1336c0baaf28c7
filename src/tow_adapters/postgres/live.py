"""Live updates across processes over PostgreSQL ``NOTIFY`` / ``LISTEN`` (``tow_core.live``; no broker).

``PgLiveEvents.publish`` sends ``NOTIFY tow_live`` with the event's small JSON of ids in the publishing
transaction: PostgreSQL delivers it on commit, to every listening session of every process, and never for a
transaction rolled back (https://www.postgresql.org/docs/current/sql-notify.html). The payload names ids only —
any session may LISTEN, and logs may show it. ``PgLiveFeed`` is a process's one listening connection (the
``Wakeups`` machinery: its own connection outside the pool, reopened after a database restart); an event missed
while it reconnects is lost, which costs a reader a stale "changed" hint, never data (pages are fresh on load).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from tow_adapters.postgres.wakeups import Wakeups
from tow_core.live import LiveEvent

log = logging.getLogger("tow.live")

LIVE_CHANNEL = "tow_live"
LISTEN_WAIT_SECONDS = 5.0  # the first subscriber waits this long for the listening connection


class PgLiveEvents:
    def __init__(self, connection: sa.Connection) -> None:
        self._connection = connection

    def publish(self, event: LiveEvent) -> None:
        self._connection.execute(sa.text("SELECT pg_notify(:channel, :payload)"),
                                 {"channel": LIVE_CHANNEL, "payload": event.payload()})

    def publish_all(self, events: Sequence[LiveEvent]) -> None:
        if events:
            self._connection.execute(sa.text("SELECT pg_notify(:channel, p) "
                                             "FROM unnest(CAST(:payloads AS text[])) AS p"),
                                     {"channel": LIVE_CHANNEL, "payloads": [e.payload() for e in events]})


class _LiveListener(Wakeups):
    def __init__(self, engine: sa.Engine, on_event: Callable[[LiveEvent], None]) -> None:
        super().__init__(engine, LIVE_CHANNEL, lambda: None)
        self._on_event = on_event

    def _received(self, payload: str) -> None:
        try:
            event = LiveEvent.from_payload(payload)
        except ValueError:
            log.warning("ignored a notification on %s that is not a live event", LIVE_CHANNEL)
            return
        try:
            self._on_event(event)
        except Exception:  # noqa: BLE001 - one subscriber's failure must not stop the process's listener
            log.exception("handing a live event to this process's subscribers failed")


class PgLiveFeed:
    """``LiveFeed``: the process's one listening connection, opened by the first subscriber."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._listener: _LiveListener | None = None

    def start(self, on_event: Callable[[LiveEvent], None]) -> None:
        if self._listener is None:
            self._listener = _LiveListener(self._engine, on_event)
            self._listener.start()
        if not self._listener.listening.wait(LISTEN_WAIT_SECONDS):
            log.warning("live updates: not listening on %s yet; events reach this process once it is", LIVE_CHANNEL)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
