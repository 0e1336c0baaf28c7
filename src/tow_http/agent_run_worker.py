"""The agent run worker: ``jobs.ai_queue_max_concurrency`` threads, each claiming one agent run at a time
and running the handler of its kind (rules in ``tow_core.agent_runs``).

It runs beside the job worker (``tow serve`` in-process, ``tow worker`` in the foreground, ``--once``
drains), but not on it: the job worker runs one job at a time, and an agent run lasts minutes of model
calls, so exports would wait behind chat answers; runs get their own bounded pool of claimers instead.

The handler renews its lease by calling the heartbeat it is given between steps; no background thread
beats for it, so a handler that hangs loses its run exactly like a worker that died. The heartbeat raises
``AgentRunCancelled`` once a cancel was requested (the run then ends ``cancelled``) and
``AgentRunLeaseLost`` once another worker took the run over (this worker then records nothing).

An idle claimer sleeps until the poll interval ends or it is woken: ``listener_for`` (PostgreSQL LISTEN in
production, ``tow_adapters.postgres.wakeups``) wakes the claimers when a run is queued anywhere, so a question
is picked up at once rather than at the next poll; the poll stays as the fallback.

The database going away (``DatabaseUnavailable``: restarting, failed over) is waited out, not recorded as the
run's outcome: an outcome reached meanwhile is recorded once it answers again (retried every poll interval for
at most the lease, after which the run is another worker's anyway), and a handler the outage interrupted gives
its run back, claimable again at once, instead of failing it or leaving it to the lease.

For the owner following the run's events: a run claimed again (a new attempt) gets a ``restart`` event in
the claiming transaction, and a run that ends gets its ``done`` event in the transaction that records the end.
That transaction (``ending``, the full unit of work in production) also tells the owner, through
``owner_told_of_end`` (``tow_core.use_cases.agent_runs``), that it completed or failed: the end, its event, the
notification and the one nudge of their open pages commit together or not at all (a lost lease records none).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Protocol

from tow_core.agent_runs import (
    HANDLER_FAILED,
    NO_HANDLER,
    AgentRun,
    AgentRunCancelled,
    AgentRunFailed,
    AgentRunHandler,
    AgentRunLeaseLost,
    AgentRuns,
    LeaseState,
    RunEventKind,
    done_event,
)
from tow_core.errors import DatabaseUnavailable, TowError
from tow_core.jobs import RetryPolicy
from tow_http.background import when_database_answers

log = logging.getLogger("tow.agent_runs")

RunsTransaction = Callable[[], AbstractContextManager[AgentRuns]]  # one short transaction per call
# The transaction that records a run's end: its runs store and what tells the owner (``agent_run_ended``).
EndTransaction = Callable[[], AbstractContextManager[tuple[AgentRuns, Callable[[AgentRun], object]]]]


class Listener(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class AgentRunWorker:
    def __init__(self, runs: RunsTransaction, handlers: Mapping[str, AgentRunHandler], *, policy: RetryPolicy,
                 concurrency: int, poll_interval_seconds: float, clock: Callable[[], datetime],
                 listener_for: Callable[[Callable[[], None]], Listener] | None = None,
                 ending: EndTransaction | None = None) -> None:
        self._runs = runs
        self._ending = ending or self._runs_only
        self._handlers = dict(handlers)
        self._policy = policy
        self._concurrency = concurrency
        self._poll_interval = poll_interval_seconds
        self._clock = clock
        self._stop = threading.Event()
        self._woken = threading.Event()
        self._listener = listener_for(self.wake) if listener_for is not None else None
        self._threads: list[threading.Thread] = []

    def wake(self) -> None:
        """Have the idle claimers look for a due run now."""
        self._woken.set()

    def run_once(self) -> AgentRun | None:
        """Claim one due run and run it to its end; None when nothing was due."""
        with self._runs() as runs:
            run = runs.claim(now=self._clock(), policy=self._policy)
            if run is not None and run.attempts > 1:  # the owner's client drops what an earlier attempt showed
                runs.append_events(run, [(RunEventKind.RESTART, {"reason": "new_attempt", "attempt": run.attempts})],
                                   now=self._clock())
        if run is None:
            return None
        handler = self._handlers.get(run.kind)
        try:
            if handler is None:
                raise AgentRunFailed(f"no handler for agent runs of kind {run.kind!r}", error_code=NO_HANDLER)
            result = handler(run, self._heartbeat(run))
        except AgentRunLeaseLost:
            log.warning("agent run %s (%s) attempt %s lost its lease; another worker has it", run.id, run.kind,
                        run.attempts)
        except AgentRunCancelled:
            self._finish(run, "cancelled", lambda runs: runs.finish_cancelled(run, now=self._clock()))
        except DatabaseUnavailable as exc:  # the outage interrupted it: not the run's outcome
            log.warning("agent run %s (%s) attempt %s was interrupted by the database (%s); giving it back",
                        run.id, run.kind, run.attempts, exc.message)
            self._when_database_answers(run, lambda: self._give_back(run))
        except Exception as exc:
            code = exc.error_code if isinstance(exc, AgentRunFailed) else HANDLER_FAILED
            error = exc.message if isinstance(exc, TowError) else f"{type(exc).__name__}: {exc}"
            log.warning("agent run %s (%s) attempt %s failed: %s", run.id, run.kind, run.attempts, error)
            self._finish(run, "failed", lambda runs: runs.finish_failed(run, code, error, now=self._clock()))
        else:
            self._finish(run, "completed", lambda runs: runs.finish_completed(run, result, now=self._clock()))
        return run

    def _finish(self, run: AgentRun, outcome: str, finish: Callable[[AgentRuns], bool]) -> None:
        if not self._when_database_answers(run, lambda: self._record_end(run, finish)):
            log.warning("agent run %s (%s) ended %s after its lease was lost; not recorded", run.id, run.kind,
                        outcome)

    @contextmanager
    def _runs_only(self) -> Iterator[tuple[AgentRuns, Callable[[AgentRun], object]]]:
        with self._runs() as runs:
            yield runs, lambda _run: None

    def _record_end(self, run: AgentRun, finish: Callable[[AgentRuns], bool]) -> bool:
        with self._ending() as (runs, tell_owner):
            if not finish(runs):
                return False
            ended = runs.get(run.id)
            if ended is not None:
                runs.append_events(ended, [done_event(ended)], now=self._clock())
                tell_owner(ended)
            return True

    def _give_back(self, run: AgentRun) -> bool:
        """End this attempt's lease now (a renewal of zero seconds): the next claim takes the run again."""
        now_policy = RetryPolicy(lease_seconds=0, max_attempts=self._policy.max_attempts)
        with self._runs() as runs:
            return runs.heartbeat(run, now=self._clock(), policy=now_policy) is not LeaseState.LOST

    def _when_database_answers(self, run: AgentRun, record: Callable[[], bool]) -> bool:
        return bool(when_database_answers(record, lease_seconds=self._policy.lease_seconds,
                                          poll_seconds=self._poll_interval, what=f"agent run {run.id}", log=log))

    def _heartbeat(self, run: AgentRun) -> Callable[[], None]:
        def heartbeat() -> None:
            try:
                with self._runs() as runs:
                    state = runs.heartbeat(run, now=self._clock(), policy=self._policy)
            except Exception:  # a missed beat (the database restarting) is not fatal: the lease has time left,
                log.exception("renewing the lease of agent run %s failed", run.id)  # and finishing is fenced
                return
            if state is LeaseState.LOST:
                raise AgentRunLeaseLost(f"agent run {run.id} was taken over by another worker")
            if state is LeaseState.CANCEL_REQUESTED:
                raise AgentRunCancelled(f"agent run {run.id} was cancelled")

        return heartbeat

    def drain(self) -> int:
        """Run every due run, one after another, until none is left; returns how many ran."""
        handled = 0
        while self.run_once() is not None:
            handled += 1
        return handled

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.run_once() is not None:
                    continue
            except DatabaseUnavailable as exc:  # one line per poll, not a traceback: it is expected to return
                log.warning("agent run worker: %s; polling again", exc.message)
            except Exception:  # the database restarting must not kill the worker: log, wait, retry
                log.exception("agent run worker loop failed; retrying after the poll interval")
            self._woken.wait(self._poll_interval)
            self._woken.clear()  # every idle claimer woke with it; the one that claims the run takes it

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        self._threads = [threading.Thread(target=self._loop, name=f"tow-agent-runs-{n}", daemon=True)
                         for n in range(self._concurrency)]
        for thread in self._threads:
            thread.start()
        if self._listener is not None:
            self._listener.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Finish the runs in hand, then stop. Safe to call twice."""
        self._stop.set()
        self._woken.set()
        if self._listener is not None:
            self._listener.stop()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def request_stop(self) -> None:
        self._stop.set()
        self._woken.set()

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)
