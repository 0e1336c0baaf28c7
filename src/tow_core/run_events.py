"""Writing a run's events as it works (rules in ``tow_core.agent_runs``; issue 13 item 4, streaming): the
worker's side of the stream its owner follows.

``RunEventLog`` is the text sink a streamed model call writes to and the tool loop's activity listener:
- text deltas are **buffered**: the first is written at once (the owner sees the answer start), then at most
  one write per ``flush_seconds`` (0.1 s: ten a second), and at every round end and before any other event,
  so the order of text and tool activity is kept and no token costs a transaction of its own; text still
  buffered when the model pauses is written ``flush_seconds`` later by a timer (``schedule``), so a slow
  model's words are not held back;
- ``discard`` (the model call is retried) drops the unwritten text and writes ``restart``: the owner's
  client drops the text it shows;
- a failed write (the database restarting) keeps its events for the next write instead of failing the run:
  the stream is a view, the answer is saved with the conversation either way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tow_core.agent_runs import RunEventKind
from tow_core.chat_tools import ToolActivity

log = logging.getLogger("tow.agent_runs")

FLUSH_SECONDS = 0.1
EventWriter = Callable[[Sequence[tuple[RunEventKind, Mapping[str, Any]]]], None]
Schedule = Callable[[float, Callable[[], None]], None]  # call the function after that many seconds


def _timer(seconds: float, function: Callable[[], None]) -> None:
    timer = threading.Timer(seconds, function)
    timer.daemon = True
    timer.start()


class RunEventLog:
    def __init__(self, write: EventWriter, *, monotonic: Callable[[], float] = time.monotonic,
                 flush_seconds: float = FLUSH_SECONDS, schedule: Schedule = _timer) -> None:
        self._write = write
        self._monotonic = monotonic
        self._flush_seconds = flush_seconds
        self._schedule = schedule
        self._lock = threading.RLock()  # the timer's flush and the model's deltas come from two threads
        self._timer_set = False
        self._pending: list[tuple[RunEventKind, Mapping[str, Any]]] = []
        self._text = ""  # deltas not yet written
        self._round = 1
        self._last_write: float | None = None

    # --- the text sink (tow_core.ai.TextSink) ------------------------------------------------------

    def delta(self, text: str) -> None:
        with self._lock:
            self._text += text
            if self._last_write is None or self._monotonic() - self._last_write >= self._flush_seconds:
                self.flush()
            elif not self._timer_set:
                self._timer_set = True
                self._schedule(self._flush_seconds, self._on_timer)

    def _on_timer(self) -> None:
        with self._lock:
            self._timer_set = False
            self.flush()

    def discard(self) -> None:
        with self._lock:
            self._text = ""
            self._pending.append((RunEventKind.RESTART, {"reason": "retry", "round": self._round}))
            self.flush()

    # --- the tool loop's listener --------------------------------------------------------------------

    def round_end(self) -> None:
        with self._lock:
            self.flush()
            self._round += 1

    def activity(self, done: ToolActivity) -> None:
        with self._lock:
            self._take_text()
            self._pending.append((RunEventKind.ACTIVITY, {"round": done.round, "tool": done.tool,
                                                          "records": list(done.records), "error": done.error}))
            self.flush()

    def flush(self) -> None:
        with self._lock:
            self._take_text()
            if not self._pending:
                return
            try:
                self._write(tuple(self._pending))
            except Exception:  # noqa: BLE001 - kept for the next write; the run goes on (module docstring)
                log.exception("writing agent run events failed; retrying with the next ones")
                return
            finally:
                self._last_write = self._monotonic()
            self._pending.clear()

    def _take_text(self) -> None:
        if self._text:
            self._pending.append((RunEventKind.DELTA, {"text": self._text, "round": self._round}))
            self._text = ""
