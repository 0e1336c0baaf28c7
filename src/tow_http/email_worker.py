"""The email worker: sends what the outbox holds (``tow_core.outbox``), one message at a time.

``EmailWorker.start()`` runs it on a daemon thread (``tow serve`` does this beside the web server, and
``tow worker``); ``stop()`` lets it finish the message in hand. ``drain()`` sends every due message and
returns (``tow worker --once``, tests). Run as many as you like on the same database: they share the
outbox through ``FOR UPDATE SKIP LOCKED``. Between messages it deletes sent and dead-lettered ones older
than ``FINISHED_KEPT``, at most every ``purge_interval_seconds``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from tow_core.jobs import RetryPolicy
from tow_core.outbox import FINISHED_KEPT, Attempt, EmailDelivery, EmailStatus, MailTransport, send_next

log = logging.getLogger("tow.email")


class EmailWorker:
    def __init__(self, delivery: EmailDelivery, transport: MailTransport, *, policy: RetryPolicy,
                 poll_interval_seconds: float, clock: Callable[[], datetime],
                 purge_interval_seconds: float = 3600.0) -> None:
        self._delivery, self._transport, self._policy = delivery, transport, policy
        self._poll_interval, self._clock = poll_interval_seconds, clock
        self._purge_interval = timedelta(seconds=purge_interval_seconds)
        self._last_purge: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> Attempt | None:
        """Send one due message; None when nothing was due."""
        attempt = send_next(self._delivery, self._transport, clock=self._clock, policy=self._policy)
        if attempt is not None and attempt.status is not EmailStatus.SENT:
            log.warning("email %s to %s, attempt %s, not sent: %s -> %s", attempt.email.id, attempt.email.message.to,
                        attempt.email.attempts, attempt.error or "claim lost",
                        attempt.status.value if attempt.status else "claim lost")
        return attempt

    def purge(self, *, force: bool = False) -> None:
        now = self._clock()
        if force or self._last_purge is None or now - self._last_purge >= self._purge_interval:
            self._last_purge = now
            self._delivery.purge_finished(before=now - FINISHED_KEPT)

    def drain(self) -> int:
        """Send every due message until none is left; how many attempts were made."""
        self.purge(force=True)
        attempts = 0
        while self.run_once() is not None:
            attempts += 1
        return attempts

    def run_until_stopped(self) -> None:
        while not self._stop.is_set():
            try:
                self.purge()
                if self.run_once() is not None:
                    continue
            except Exception:  # the database restarting must not kill the worker: log, wait, retry
                log.exception("email worker loop failed; retrying after the poll interval")
            self._stop.wait(self._poll_interval)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_until_stopped, name="tow-email-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish the message in hand, then stop. Safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
