"""The in-memory ``AgentRuns`` (tow_core.agent_runs); tests/contract/test_agent_runs.py holds it to the
same contract as ``PgAgentRuns``. A lock stands in for row locks, so two claimers never get one run."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from tow_core.agent_runs import (
    LEASE_EXPIRED,
    AgentRun,
    AgentRunResult,
    AgentRunStatus,
    LeaseState,
    NewAgentRun,
    RunEvent,
    RunEventKind,
    TokenUsage,
)
from tow_core.jobs import RetryPolicy

_MAX_ERROR_CHARS = 2000


class InMemoryAgentRuns:
    def __init__(self) -> None:
        self._runs: dict[int, AgentRun] = {}
        self._leases: dict[int, datetime] = {}
        self.dismissed: dict[int, datetime] = {}  # the dismissed_at column of migration 0021_inbox
        self._lock = threading.Lock()
        self.events: list[RunEvent] = []
        self._seq = itertools.count(1)

    def create(self, run: NewAgentRun, *, now: datetime) -> AgentRun:
        with self._lock:
            run_id = max(self._runs, default=0) + 1
            created = AgentRun(run_id, run.kind, run.owner_id, run.organisation_id, run.project_id, dict(run.input),
                               None, None, None, AgentRunStatus.QUEUED, False, 0, TokenUsage(), now, None, None)
            self._runs[run_id] = created
            return created

    def get(self, run_id: int) -> AgentRun | None:
        return self._runs.get(run_id)

    def list(self, *, whole_organisations: Collection[int], own_in: Collection[int], owner_id: int,
             after_id: int | None, limit: int) -> list[AgentRun]:
        runs = [r for r in sorted(self._runs.values(), key=lambda r: -r.id)
                if (r.organisation_id in whole_organisations
                    or (r.owner_id == owner_id and r.organisation_id in own_in))
                and (after_id is None or r.id < after_id)]
        return runs[:limit]

    def latest_for_record(self, organisation_id: int, kind: str, record_id: int) -> AgentRun | None:
        found = [r for r in self._runs.values() if r.organisation_id == organisation_id and r.kind == kind
                 and str(r.input.get("record_id")) == str(record_id)]
        return max(found, key=lambda r: r.id, default=None)
    def purge_finished(self, *, finished_before: datetime, limit: int) -> int:
        with self._lock:
            done = sorted((r for r in self._runs.values() if r.status.finished and r.finished_at is not None
                           and r.finished_at < finished_before), key=lambda r: r.finished_at)[:limit]
            for run in done:
                del self._runs[run.id]
            return len(done)

    def _failed_undismissed(self, owner_id: int, organisation_id: int, project_ids: frozenset[int],
                            unscoped: bool) -> list[AgentRun]:
        return [r for r in sorted(self._runs.values(), key=lambda r: -r.id)
                if (r.owner_id, r.organisation_id) == (owner_id, organisation_id)
                and r.status is AgentRunStatus.FAILED and r.id not in self.dismissed
                and (r.project_id in project_ids if r.project_id is not None else unscoped)]

    def failed_undismissed(self, owner_id: int, organisation_id: int, project_ids: frozenset[int], *,
                           unscoped: bool, limit: int) -> list[AgentRun]:
        return self._failed_undismissed(owner_id, organisation_id, project_ids, unscoped)[:limit]

    def count_failed_undismissed(self, owner_id: int, organisation_id: int, project_ids: frozenset[int], *,
                                 unscoped: bool) -> int:
        return len(self._failed_undismissed(owner_id, organisation_id, project_ids, unscoped))

    def dismiss(self, run_id: int, *, now: datetime) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.status is not AgentRunStatus.FAILED or run_id in self.dismissed:
                return False
            self.dismissed[run_id] = now
            return True

    def request_cancel(self, run_id: int, *, now: datetime) -> AgentRun | None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return None
            if run.status is AgentRunStatus.QUEUED:
                run = replace(run, status=AgentRunStatus.CANCELLED, cancel_requested=True, finished_at=now)
            elif run.status is AgentRunStatus.RUNNING:
                run = replace(run, cancel_requested=True)
            self._runs[run_id] = run
            return run

    def claim(self, *, now: datetime, policy: RetryPolicy, kinds: frozenset[str] | None = None) -> AgentRun | None:
        with self._lock:
            while True:
                due = [r for r in self._runs.values() if (kinds is None or r.kind in kinds) and (
                    r.status is AgentRunStatus.QUEUED
                    or (r.status is AgentRunStatus.RUNNING and self._leases[r.id] <= now))]
                if not due:
                    return None
                run = min(due, key=lambda r: (r.created_at if r.status is AgentRunStatus.QUEUED
                                              else self._leases[r.id], r.id))
                if run.status is AgentRunStatus.RUNNING and run.cancel_requested:
                    self._end(run, AgentRunStatus.CANCELLED, now)
                    continue
                if run.status is AgentRunStatus.RUNNING and policy.gives_up_after(run.attempts):
                    self._end(run, AgentRunStatus.FAILED, now, LEASE_EXPIRED,
                              f"the worker's lease expired {run.attempts} times (worker crashed or stalled)")
                    continue
                claimed = replace(run, status=AgentRunStatus.RUNNING, attempts=run.attempts + 1,
                                  started_at=run.started_at or now)
                self._runs[run.id] = claimed
                self._leases[run.id] = now + timedelta(seconds=policy.lease_seconds)
                return claimed

    def _holds(self, run: AgentRun) -> bool:
        current = self._runs.get(run.id)
        return current is not None and current.status is AgentRunStatus.RUNNING and current.attempts == run.attempts

    def _end(self, run: AgentRun, status: AgentRunStatus, now: datetime, error_code: str | None = None,
             error: str | None = None, *, output=None, usage: TokenUsage | None = None) -> None:
        current = self._runs[run.id]
        self._runs[run.id] = replace(current, status=status, finished_at=now, error_code=error_code,
                                     error=error and error[:_MAX_ERROR_CHARS],
                                     output=dict(output) if output is not None else current.output,
                                     usage=usage or current.usage)
        self._leases.pop(run.id, None)

    def heartbeat(self, run: AgentRun, *, now: datetime, policy: RetryPolicy) -> LeaseState:
        with self._lock:
            if not self._holds(run):
                return LeaseState.LOST
            self._leases[run.id] = now + timedelta(seconds=policy.lease_seconds)
            return LeaseState.CANCEL_REQUESTED if self._runs[run.id].cancel_requested else LeaseState.HELD

    def finish_completed(self, run: AgentRun, result: AgentRunResult, *, now: datetime) -> bool:
        with self._lock:
            if not self._holds(run):
                return False
            self._end(run, AgentRunStatus.COMPLETED, now, output=result.output, usage=result.usage)
            return True

    def finish_failed(self, run: AgentRun, error_code: str, error: str, *, now: datetime,
                      usage: TokenUsage | None = None) -> bool:
        with self._lock:
            if not self._holds(run):
                return False
            self._end(run, AgentRunStatus.FAILED, now, error_code, error, usage=usage)
            return True

    def finish_cancelled(self, run: AgentRun, *, now: datetime) -> bool:
        with self._lock:
            if not self._holds(run):
                return False
            self._end(run, AgentRunStatus.CANCELLED, now)
            return True

    def append_events(self, run: AgentRun, events: Sequence[tuple[RunEventKind, Mapping[str, Any]]], *,
                      now: datetime) -> bool:
        with self._lock:
            current = self._runs.get(run.id)
            if current is None or current.attempts != run.attempts:
                return False
            self.events.extend(RunEvent(next(self._seq), run.id, run.attempts, RunEventKind(kind),
                                        json.loads(json.dumps(dict(data))), now) for kind, data in events)
            return True

    def events_after(self, run_id: int, *, attempt: int, after_seq: int, limit: int) -> list[RunEvent]:
        with self._lock:
            return [e for e in self.events if e.run_id == run_id and e.attempt == attempt and e.seq > after_seq
                    ][:limit]

    def purge_events(self, *, finished_before: datetime, limit: int) -> int:
        with self._lock:
            gone = [e for e in self.events if (run := self._runs.get(e.run_id)) is not None
                    and run.finished_at is not None and run.finished_at < finished_before][:limit]
            self.events = [e for e in self.events if e not in gone]
            return len(gone)

    def delete_events_of(self, run_ids: set[int]) -> None:
        """What deleting a conversation does to the events of the runs its turns name (PgConversations)."""
        with self._lock:
            self.events = [e for e in self.events if e.run_id not in run_ids]
