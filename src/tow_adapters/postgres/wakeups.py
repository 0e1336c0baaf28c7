"""Waking idle workers when work is queued: PostgreSQL ``NOTIFY`` on create, ``LISTEN`` in each worker
process, the poll interval as the fallback (https://www.postgresql.org/docs/current/sql-notify.html).

``notify_queued`` runs in the transaction that queues the work, so the notification is delivered on commit
and never for work rolled back. ``Wakeups`` holds one connection of its own outside the pool (detached from
it, autocommit) that listens and calls ``on_wake`` for each notification; a lost connection (the database
restarting) is logged and opened again after ``retry_seconds`` — meanwhile the workers still poll, so a
notification missed then only costs the poll interval. Works across processes and machines on one database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import sqlalchemy as sa

log = logging.getLogger("tow.wakeups")

AGENT_RUNS_CHANNEL = "tow_agent_runs"


def notify_queued(connection: sa.Connection, channel: str) -> None:
    connection.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": channel})


class Wakeups:
    def __init__(self, engine: sa.Engine, channel: str, on_wake: Callable[[], None], *,
                 retry_seconds: float = 2.0) -> None:
        self._engine = engine
        self._channel = channel
        self._on_wake = on_wake
        self._retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while a LISTEN connection is open (tests wait on it)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"tow-listen-{self._channel}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception:  # noqa: BLE001 - the workers poll meanwhile (module docstring)
                log.warning("listening for %s failed; the workers poll until it is back", self._channel,
                            exc_info=True)
            finally:
                self.listening.clear()
            self._stop.wait(self._retry_seconds)

    def _listen(self) -> None:
        pooled = self._engine.raw_connection()
        connection = pooled.driver_connection
        pooled.detach()  # held for as long as the worker runs: not the pool's to hand out
        try:
            connection.rollback()  # whatever the pool's connect hooks began
            connection.autocommit = True
            connection.execute(f'LISTEN "{self._channel}"')
            self.listening.set()
            while not self._stop.is_set():
                for notify in connection.notifies(timeout=1.0):
                    self._received(notify.payload)
        finally:
            connection.close()

    def _received(self, payload: str) -> None:
        """A notification arrived; these wake-ups carry nothing (``tow_adapters.postgres.live`` reads its)."""
        self._on_wake()
