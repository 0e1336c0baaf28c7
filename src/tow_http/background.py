"""What the background workers (jobs, agent runs, email) share.

- ``when_database_answers``: a worker's outcome (job done, run ended, lease given back) is retried every poll
  interval while the database is unavailable, for at most the lease — after it the work is claimable by others
  and the fenced write would be refused anyway — so an outage between the work and its record does not lose the
  record (issue 17's outage drill);
- ``PollingThread``: one daemon thread that runs ``step()`` until it finds nothing to do, then waits the poll
  interval; an outage is logged as one line per poll (it is expected to end), anything else with its traceback,
  and neither kills the thread. ``stop()`` lets the work in hand finish.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from tow_core.errors import DatabaseUnavailable

T = TypeVar("T")


def when_database_answers(record: Callable[[], T], *, lease_seconds: float, poll_seconds: float, what: str,
                          log: logging.Logger) -> T | None:
    """``record()``; retried while the database is unavailable, for at most ``lease_seconds`` (None then)."""
    waited = 0.0
    while True:
        try:
            return record()
        except DatabaseUnavailable as exc:
            if waited >= lease_seconds:
                log.warning("%s: the database stayed unavailable for its whole lease (%s)", what, exc.message)
                return None
        threading.Event().wait(poll_seconds)
        waited += poll_seconds


class PollingThread:
    """Subclasses give ``step()`` (True: something was done, look again at once), a ``thread_name`` and a
    ``log``, and call ``__init__`` with their poll interval."""

    thread_name = "tow-worker"
    log = logging.getLogger("tow.workers")

    def __init__(self, poll_interval_seconds: float) -> None:
        self._poll_interval = poll_interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> bool:
        raise NotImplementedError

    def run_until_stopped(self) -> None:
        while not self._stop.is_set():
            try:
                if self.step():
                    continue
            except DatabaseUnavailable as exc:  # one line per poll, not a traceback: it is expected to return
                self.log.warning("%s: %s; polling again", self.thread_name, exc.message)
            except Exception:  # the database restarting must not kill the worker: log, wait, retry
                self.log.exception("%s loop failed; retrying after the poll interval", self.thread_name)
            self._stop.wait(self._poll_interval)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_until_stopped, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish the work in hand, then stop. Safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request_stop(self) -> None:
        """Ask the loop to stop after the work in hand (from a signal handler)."""
        self._stop.set()
