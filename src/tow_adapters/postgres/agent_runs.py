"""PgAgentRuns: agent runs and their leases (migration 0014_agent_runs), on the caller's connection.

Run events (migration 0017_agent_run_events) are appended in one statement per batch, fenced by the
attempt like a heartbeat: a worker whose lease was taken over writes nothing.

The worker calls each method in its own short transaction. Claiming is one ``SELECT ... FOR UPDATE SKIP
LOCKED`` and one ``UPDATE``, so concurrent workers never claim the same run nor wait on each other's
rows; heartbeats and finishes are fenced by ``attempts = :claimed``, so a worker whose lease was taken
over changes nothing. Times come from the caller (an injected clock), so tests can expire leases.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tow_adapters.postgres.wakeups import AGENT_RUNS_CHANNEL, notify_queued
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

_COLUMNS = ("id, kind, owner_id, organisation_id, project_id, input, output, error, error_code, status, "
            "cancel_requested, attempts, input_tokens, output_tokens, created_at, started_at, finished_at")
_MAX_ERROR_CHARS = 2000

# Due work: queued runs, and running runs whose worker lost its lease; oldest first.
_NEXT_DUE = sa.text(
    f"SELECT {_COLUMNS} FROM agent_runs "
    "WHERE (status = 'queued' OR (status = 'running' AND lease_expires_at <= :now)) "
    "AND (CAST(:kinds AS text[]) IS NULL OR kind = ANY(CAST(:kinds AS text[]))) "
    "ORDER BY CASE WHEN status = 'queued' THEN created_at ELSE lease_expires_at END, id "
    "LIMIT 1 FOR UPDATE SKIP LOCKED"
)
# The inbox's failed runs of one owner, not dismissed (index agent_runs_failed_open_idx, migration 0021_inbox).
_FAILED_OPEN = (
    "FROM agent_runs WHERE organisation_id = :org AND owner_id = :owner AND status = 'failed' "
    "AND dismissed_at IS NULL AND ((project_id IS NULL AND :unscoped) OR project_id = ANY(CAST(:projects AS bigint[])))"
)
_FENCE = "WHERE id = :id AND status = 'running' AND attempts = :attempts"


def _run(row: sa.Row) -> AgentRun:
    (id_, kind, owner, org, project, input_, output, error, error_code, status, cancel, attempts, tokens_in,
     tokens_out, created, started, finished) = row
    return AgentRun(id_, kind, owner, org, project, dict(input_), None if output is None else dict(output), error,
                    error_code, AgentRunStatus(status), cancel, attempts, TokenUsage(tokens_in, tokens_out), created,
                    started, finished)


class PgAgentRuns:
    def __init__(self, connection: sa.Connection) -> None:
        self._conn = connection

    def create(self, run: NewAgentRun, *, now: datetime) -> AgentRun:
        notify_queued(self._conn, AGENT_RUNS_CHANNEL)  # an idle worker claims it on commit, not at its next poll
        return _run(self._conn.execute(
            sa.text("INSERT INTO agent_runs (kind, owner_id, organisation_id, project_id, input, created_at) "
                    f"VALUES (:kind, :owner, :org, :project, CAST(:input AS jsonb), :now) RETURNING {_COLUMNS}"),
            {"kind": run.kind, "owner": run.owner_id, "org": run.organisation_id, "project": run.project_id,
             "input": json.dumps(dict(run.input)), "now": now},
        ).one())

    def get(self, run_id: int) -> AgentRun | None:
        row = self._conn.execute(sa.text(f"SELECT {_COLUMNS} FROM agent_runs WHERE id = :id"), {"id": run_id}).first()
        return _run(row) if row else None

    def list(self, *, whole_organisations: Collection[int], own_in: Collection[int], owner_id: int,
             after_id: int | None, limit: int) -> Sequence[AgentRun]:
        rows = self._conn.execute(
            sa.text(f"SELECT {_COLUMNS} FROM agent_runs "
                    "WHERE (organisation_id = ANY(CAST(:whole AS bigint[])) "
                    "OR (owner_id = :owner AND organisation_id = ANY(CAST(:own AS bigint[])))) "
                    "AND (CAST(:after AS bigint) IS NULL OR id < :after) ORDER BY id DESC LIMIT :limit"),
            {"whole": sorted(whole_organisations), "own": sorted(own_in), "owner": owner_id, "after": after_id,
             "limit": limit},
        )
        return [_run(row) for row in rows]

    def latest_for_record(self, organisation_id: int, kind: str, record_id: int) -> AgentRun | None:
        row = self._conn.execute(
            sa.text(f"SELECT {_COLUMNS} FROM agent_runs WHERE organisation_id = :org AND kind = :kind "
                    "AND input->>'record_id' = :record ORDER BY id DESC LIMIT 1"),  # agent_runs_subject_idx
            {"org": organisation_id, "kind": kind, "record": str(record_id)},
        ).first()
        return _run(row) if row else None
    def purge_finished(self, *, finished_before: datetime, limit: int) -> int:
        # Turns that name a purged run keep their text; their agent_run_id becomes NULL (ON DELETE SET NULL).
        return self._conn.execute(
            sa.text("DELETE FROM agent_runs WHERE id IN (SELECT id FROM agent_runs WHERE finished_at < :before "
                    "AND status IN ('completed', 'failed', 'cancelled') ORDER BY finished_at LIMIT :limit)"),
            {"before": finished_before, "limit": limit},
        ).rowcount

    def failed_undismissed(self, owner_id: int, organisation_id: int, project_ids: frozenset[int], *,
                           unscoped: bool, limit: int) -> list[AgentRun]:
        rows = self._conn.execute(
            sa.text(f"SELECT {_COLUMNS} {_FAILED_OPEN} ORDER BY id DESC LIMIT :limit"),
            {"org": organisation_id, "owner": owner_id, "unscoped": unscoped, "projects": sorted(project_ids),
             "limit": limit},
        )
        return [_run(row) for row in rows]

    def count_failed_undismissed(self, owner_id: int, organisation_id: int, project_ids: frozenset[int], *,
                                 unscoped: bool) -> int:
        return self._conn.execute(
            sa.text(f"SELECT count(*) {_FAILED_OPEN}"),
            {"org": organisation_id, "owner": owner_id, "unscoped": unscoped, "projects": sorted(project_ids)},
        ).scalar_one()

    def dismiss(self, run_id: int, *, now: datetime) -> bool:
        return self._conn.execute(
            sa.text("UPDATE agent_runs SET dismissed_at = :now WHERE id = :id AND status = 'failed' "
                    "AND dismissed_at IS NULL"), {"id": run_id, "now": now},
        ).rowcount == 1

    def request_cancel(self, run_id: int, *, now: datetime) -> AgentRun | None:
        row = self._conn.execute(
            sa.text("UPDATE agent_runs SET cancel_requested = cancel_requested OR status IN ('queued', 'running'), "
                    "status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, "
                    "finished_at = CASE WHEN status = 'queued' THEN :now ELSE finished_at END "
                    f"WHERE id = :id RETURNING {_COLUMNS}"),
            {"id": run_id, "now": now},
        ).first()
        return _run(row) if row else None

    def claim(self, *, now: datetime, policy: RetryPolicy, kinds: frozenset[str] | None = None) -> AgentRun | None:
        params = {"now": now, "kinds": None if kinds is None else sorted(kinds)}
        while (row := self._conn.execute(_NEXT_DUE, params).first()) is not None:
            due = _run(row)
            if due.status is AgentRunStatus.RUNNING and due.cancel_requested:
                self._end(due, AgentRunStatus.CANCELLED, now)
                continue
            if due.status is AgentRunStatus.RUNNING and policy.gives_up_after(due.attempts):
                self._end(due, AgentRunStatus.FAILED, now, LEASE_EXPIRED,
                          f"the worker's lease expired {due.attempts} times (worker crashed or stalled)")
                continue
            return _run(self._conn.execute(
                sa.text("UPDATE agent_runs SET status = 'running', attempts = attempts + 1, lease_expires_at = :lease, "
                        f"started_at = COALESCE(started_at, :now) WHERE id = :id RETURNING {_COLUMNS}"),
                {"id": due.id, "now": now, "lease": now + timedelta(seconds=policy.lease_seconds)},
            ).one())
        return None

    def _end(self, run: AgentRun, status: AgentRunStatus, now: datetime, error_code: str | None = None,
             error: str | None = None, *, output=None, usage: TokenUsage | None = None) -> bool:
        return self._conn.execute(
            sa.text("UPDATE agent_runs SET status = :status, lease_expires_at = NULL, finished_at = :now, "
                    "error_code = :code, error = :error, output = COALESCE(CAST(:output AS jsonb), output), "
                    "input_tokens = COALESCE(:tokens_in, input_tokens), "
                    f"output_tokens = COALESCE(:tokens_out, output_tokens) {_FENCE}"),
            {"status": status.value, "now": now, "code": error_code, "error": error and error[:_MAX_ERROR_CHARS],
             "output": None if output is None else json.dumps(dict(output)),
             "tokens_in": usage and usage.input_tokens, "tokens_out": usage and usage.output_tokens,
             "id": run.id, "attempts": run.attempts},
        ).rowcount == 1

    def heartbeat(self, run: AgentRun, *, now: datetime, policy: RetryPolicy) -> LeaseState:
        cancel = self._conn.execute(
            sa.text(f"UPDATE agent_runs SET lease_expires_at = :lease {_FENCE} RETURNING cancel_requested"),
            {"lease": now + timedelta(seconds=policy.lease_seconds), "id": run.id, "attempts": run.attempts},
        ).scalar_one_or_none()
        if cancel is None:
            return LeaseState.LOST
        return LeaseState.CANCEL_REQUESTED if cancel else LeaseState.HELD

    def finish_completed(self, run: AgentRun, result: AgentRunResult, *, now: datetime) -> bool:
        return self._end(run, AgentRunStatus.COMPLETED, now, output=result.output, usage=result.usage)

    def finish_failed(self, run: AgentRun, error_code: str, error: str, *, now: datetime,
                      usage: TokenUsage | None = None) -> bool:
        return self._end(run, AgentRunStatus.FAILED, now, error_code, error, usage=usage)

    def finish_cancelled(self, run: AgentRun, *, now: datetime) -> bool:
        return self._end(run, AgentRunStatus.CANCELLED, now)

    # --- events -------------------------------------------------------------------------------------

    def append_events(self, run: AgentRun, events: Sequence[tuple[RunEventKind, Mapping[str, Any]]], *,
                      now: datetime) -> bool:
        if not events:
            return True
        return self._conn.execute(
            sa.text("INSERT INTO agent_run_events (run_id, attempt, kind, data, created_at) "
                    "SELECT :id, :attempt, e.item ->> 'kind', e.item -> 'data', :now "
                    "FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS e(item, n) "
                    "WHERE EXISTS (SELECT 1 FROM agent_runs WHERE id = :id AND attempts = :attempt) ORDER BY e.n"),
            {"id": run.id, "attempt": run.attempts, "now": now,
             "events": json.dumps([{"kind": RunEventKind(kind).value, "data": dict(data)} for kind, data in events])},
        ).rowcount > 0

    def events_after(self, run_id: int, *, attempt: int, after_seq: int, limit: int) -> Sequence[RunEvent]:
        rows = self._conn.execute(
            sa.text("SELECT seq, run_id, attempt, kind, data, created_at FROM agent_run_events "
                    "WHERE run_id = :id AND attempt = :attempt AND seq > :after ORDER BY seq LIMIT :limit"),
            {"id": run_id, "attempt": attempt, "after": after_seq, "limit": limit},
        )
        return [RunEvent(seq, run, att, RunEventKind(kind), dict(data), created)
                for seq, run, att, kind, data, created in rows]

    def purge_events(self, *, finished_before: datetime, limit: int) -> int:
        return self._conn.execute(
            sa.text("DELETE FROM agent_run_events WHERE seq IN (SELECT e.seq FROM agent_run_events e "
                    "JOIN agent_runs r ON r.id = e.run_id WHERE r.finished_at < :before LIMIT :limit)"),
            {"before": finished_before, "limit": limit},
        ).rowcount
