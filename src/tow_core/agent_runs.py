"""Agent runs (issue 13, SPEC §6 "AI workflows"): one row per piece of AI work a person asked for — a chat
answer, a memory extraction — that a worker runs outside the request.

A run moves ``queued → running → completed | failed | cancelled`` (``MOVES``). Workers claim runs under a
lease (``tow_core.jobs.RetryPolicy``: ``jobs.lease_seconds``, ``jobs.max_attempts``):
- the handler renews the lease by calling its heartbeat between steps (between tool rounds); a worker
  that dies or hangs stops renewing, the lease expires and another worker claims the run with
  ``attempts + 1``; after ``max_attempts`` expired leases the run is ``failed`` (``lease_expired``);
- finishing a run (complete, fail, cancelled) needs the claim — the run id and the attempt it was claimed
  at — so a worker whose lease was taken over cannot finish it: a crashed worker's run is picked up
  again, never run twice to completion;
- a failing handler fails the run at once (no retry: a rerun would spend tokens and repeat tool calls);
- cancelling a queued run ends it at once; a running run is marked ``cancel_requested`` and its handler
  learns it at its next heartbeat (``AgentRunCancelled``), after which the run ends ``cancelled``.

Conversations are private to their owner: organisation owners/admins see a run's metadata (kind,
status, timings, usage, error code) but never its input, output or error text (``AgentRun.metadata_only``).

Run events (``RunEvent``) are what a run did so far, for its owner to follow live: ``activity`` (a tool
call), ``delta`` (answer text), ``restart`` (a new attempt took the run over or a model call was retried:
text shown so far is void), ``answer`` (the checked answer, saved), ``done`` (the run ended). Each is written
at the attempt that claimed the run, and only the current attempt's are shown; only the run's owner reads
them (they carry conversation text, so not even admins). They are deleted ``EVENTS_KEPT_AFTER_FINISH``
after the run ended (the answer lives in the conversation) and with the conversation whose turns name it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from tow_core.access import Principal, can_administer_org
from tow_core.errors import Conflict, InvalidInput, NotFound, TowError
from tow_core.jobs import RetryPolicy

MAX_INPUT_BYTES = 256 * 1024  # the JSON of one run's input
MAX_KIND_CHARS = 64


class AgentRunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({AgentRunStatus.COMPLETED, AgentRunStatus.FAILED, AgentRunStatus.CANCELLED})

# The allowed moves. RUNNING → QUEUED is not one: a run whose lease expired is claimed again straight
# from RUNNING (attempts + 1); a finished run never moves again.
MOVES: Mapping[AgentRunStatus, frozenset[AgentRunStatus]] = {
    AgentRunStatus.QUEUED: frozenset({AgentRunStatus.RUNNING, AgentRunStatus.CANCELLED}),
    AgentRunStatus.RUNNING: frozenset({AgentRunStatus.RUNNING, AgentRunStatus.COMPLETED, AgentRunStatus.FAILED,
                                       AgentRunStatus.CANCELLED}),
    AgentRunStatus.COMPLETED: frozenset(),
    AgentRunStatus.FAILED: frozenset(),
    AgentRunStatus.CANCELLED: frozenset(),
}


def can_move(before: AgentRunStatus, after: AgentRunStatus) -> bool:
    return after in MOVES[before]


def require_move(before: AgentRunStatus, after: AgentRunStatus) -> None:
    if not can_move(before, after):
        raise Conflict(f"an agent run that is {before.value} cannot become {after.value}", field="status")


# Error codes a run can end with (admins see the code, only the owner the message).
LEASE_EXPIRED = "lease_expired"
HANDLER_FAILED = "handler_failed"
NO_HANDLER = "no_handler"


class AgentRunCancelled(TowError):
    """Raised by a run's heartbeat once its owner (or an admin) asked to cancel it: the handler stops."""

    code = "cancelled"


class AgentRunLeaseLost(TowError):
    """Raised by a run's heartbeat when another worker took the run over (this worker's lease expired)."""

    code = "lease_lost"


class AgentRunFailed(TowError):
    """What a handler raises to fail its run with a stable ``error_code`` (the message is the owner's)."""

    def __init__(self, message: str, *, error_code: str = HANDLER_FAILED) -> None:
        super().__init__(message)
        self.error_code = error_code


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class NewAgentRun:
    kind: str
    owner_id: int
    organisation_id: int
    project_id: int | None  # the scope: None = all projects the owner can read, else one project
    input: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentRun:
    id: int
    kind: str
    owner_id: int
    organisation_id: int
    project_id: int | None
    input: Mapping[str, Any] | None  # None when shown to someone who is not the owner
    output: Mapping[str, Any] | None
    error: str | None  # the message (owner only); error_code is the part everyone may see
    error_code: str | None
    status: AgentRunStatus
    cancel_requested: bool
    attempts: int
    usage: TokenUsage
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    def metadata_only(self) -> AgentRun:
        """The run as an organisation owner/admin who is not its owner sees it: no input, output or message."""
        return replace(self, input=None, output=None, error=None)


@dataclass(frozen=True, slots=True)
class AgentRunResult:
    output: Mapping[str, Any]
    usage: TokenUsage = TokenUsage()


class LeaseState(StrEnum):
    """What a heartbeat found: the lease renewed, renewed but cancel was asked, or the claim lost."""

    HELD = "held"
    CANCEL_REQUESTED = "cancel_requested"
    LOST = "lost"


Heartbeat = Callable[[], None]  # renews the lease; raises AgentRunCancelled or AgentRunLeaseLost
AgentRunHandler = Callable[[AgentRun, Heartbeat], AgentRunResult]


def new_run(kind: str, *, owner_id: int, organisation_id: int, project_id: int | None,
            input: Mapping[str, Any]) -> NewAgentRun:
    """A run to queue: a short kind and an input that is a JSON object of at most ``MAX_INPUT_BYTES``."""
    kind = kind.strip()
    if not kind or len(kind) > MAX_KIND_CHARS:
        raise InvalidInput(f"kind must be 1–{MAX_KIND_CHARS} characters", field="kind")
    if not isinstance(input, Mapping):
        raise InvalidInput("input must be a JSON object", field="input")
    try:
        encoded = json.dumps(dict(input), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"input must be JSON: {exc}", field="input") from exc
    if len(encoded.encode()) > MAX_INPUT_BYTES:
        raise InvalidInput(f"input is larger than {MAX_INPUT_BYTES} bytes of JSON", field="input")
    return NewAgentRun(kind, owner_id, organisation_id, project_id, json.loads(encoded))


# --- who sees what ----------------------------------------------------------------------------------


def require_member(principal: Principal, org_id: int) -> None:
    """NotFound unless an active member of the organisation (SPEC §2: without revealing it exists)."""
    if not principal.is_active or org_id not in principal.org_roles:
        raise NotFound("organisation not found")


def lists_whole_organisation(principal: Principal, org_id: int) -> bool:
    """Owners and admins list the organisation's runs; everyone else only their own."""
    return can_administer_org(principal, org_id)


@dataclass(frozen=True, slots=True)
class RunListing:
    """Which runs a principal lists (``AgentRuns.list``): whole organisations, and their own runs in others."""

    whole_organisations: frozenset[int]
    own_in: frozenset[int]


def listing_for(principal: Principal, org_ids: Collection[int]) -> RunListing:
    """What ``principal`` lists over ``org_ids``: organisations they own or administer whole, their own runs in
    the others they are an active member of; organisations they are not a member of not at all."""
    member_of = frozenset(org_ids) & frozenset(principal.org_roles) if principal.is_active else frozenset()
    whole = frozenset(org for org in member_of if lists_whole_organisation(principal, org))
    return RunListing(whole, member_of - whole)


def shown_to(principal: Principal, run: AgentRun) -> AgentRun | None:
    """The run as ``principal`` may see it: whole to its owner, metadata only to an owner/admin of its
    organisation, None (not found) to anyone else."""
    if run.owner_id == principal.user_id and principal.is_active and run.organisation_id in principal.org_roles:
        return run
    if can_administer_org(principal, run.organisation_id):
        return run.metadata_only()
    return None


class RunEventKind(StrEnum):
    ACTIVITY = "activity"
    DELTA = "delta"
    RESTART = "restart"
    ANSWER = "answer"
    DONE = "done"


EVENTS_KEPT_AFTER_FINISH = timedelta(minutes=10)  # then housekeeping deletes them; the answer is in the turn
MAX_EVENTS_PER_READ = 500


@dataclass(frozen=True, slots=True)
class RunEvent:
    seq: int  # increases across every run's events: read "after seq N" to follow one
    run_id: int
    attempt: int  # the claim that wrote it; only the run's current attempt's events are shown
    kind: RunEventKind
    data: Mapping[str, Any]
    created_at: datetime


def events_readable_by(principal: Principal, run: AgentRun) -> bool:
    """Only the run's owner, an active member of its organisation, reads its events (not even admins)."""
    return run.owner_id == principal.user_id and principal.is_active and run.organisation_id in principal.org_roles


def done_event(run: AgentRun) -> tuple[RunEventKind, dict[str, Any]]:
    """The ``done`` event of a finished run: its status, and for a failure the code and the owner's message."""
    return RunEventKind.DONE, {"status": run.status.value, "error_code": run.error_code, "error": run.error}


class AgentRuns(Protocol):
    """Agent runs in storage, on the caller's transaction (the worker opens one short transaction per call).

    Every ``finish_*`` and ``heartbeat`` is fenced by the claim: it changes the run only while it is running
    at the attempt ``run.attempts`` it was claimed at; otherwise it returns False (or ``LeaseState.LOST``)."""

    def create(self, run: NewAgentRun, *, now: datetime) -> AgentRun: ...

    def get(self, run_id: int) -> AgentRun | None: ...

    def list(self, *, whole_organisations: Collection[int], own_in: Collection[int], owner_id: int,
             after_id: int | None, limit: int) -> Sequence[AgentRun]:
        """Newest first (id descending), ids below ``after_id``: every run of ``whole_organisations`` and
        ``owner_id``'s runs in ``own_in``."""
        ...

    def purge_finished(self, *, finished_before: datetime, limit: int) -> int:
        """Delete at most ``limit`` runs that finished before the cutoff; returns how many."""
        ...

    def latest_for_record(self, organisation_id: int, kind: str, record_id: int) -> AgentRun | None:
        """The newest run of ``kind`` whose input names ``record_id`` (``input.record_id``), whatever its
        status or owner: what a memory extraction's debounce looks at."""
        ...

    def request_cancel(self, run_id: int, *, now: datetime) -> AgentRun | None:
        """Queued: cancelled at once. Running: ``cancel_requested`` set. Finished: unchanged. None: no run."""
        ...

    def claim(self, *, now: datetime, policy: RetryPolicy, kinds: frozenset[str] | None = None) -> AgentRun | None:
        """The next due run (queued, or running with an expired lease; oldest first), leased to the caller
        with ``attempts + 1``, skipping rows other claimers hold (``FOR UPDATE SKIP LOCKED``). A run whose
        lease expired after its last allowed attempt is failed (``lease_expired``) instead, one whose cancel
        was requested is cancelled."""
        ...

    def heartbeat(self, run: AgentRun, *, now: datetime, policy: RetryPolicy) -> LeaseState: ...

    def finish_completed(self, run: AgentRun, result: AgentRunResult, *, now: datetime) -> bool: ...

    def finish_failed(self, run: AgentRun, error_code: str, error: str, *, now: datetime,
                      usage: TokenUsage | None = None) -> bool: ...

    def finish_cancelled(self, run: AgentRun, *, now: datetime) -> bool: ...

    def failed_undismissed(self, owner_id: int, organisation_id: int, project_ids: frozenset[int], *,
                           unscoped: bool, limit: int) -> Sequence[AgentRun]:
        """The owner's failed runs they have not dismissed, scoped to one of ``project_ids`` and, with
        ``unscoped``, those over all projects; newest first."""
        ...

    def count_failed_undismissed(self, owner_id: int, organisation_id: int, project_ids: frozenset[int], *,
                                 unscoped: bool) -> int: ...

    def dismiss(self, run_id: int, *, now: datetime) -> bool:
        """Mark a failed run dismissed (it leaves its owner's inbox; the run itself is kept). False unless the
        run is failed and not dismissed yet."""
        ...

    # --- events -------------------------------------------------------------------------------------

    def append_events(self, run: AgentRun, events: Sequence[tuple[RunEventKind, Mapping[str, Any]]], *,
                      now: datetime) -> bool:
        """Append ``events`` in order at attempt ``run.attempts``; nothing (False) when the run is gone or
        another attempt has claimed it since (a stale worker's events are never written)."""
        ...

    def events_after(self, run_id: int, *, attempt: int, after_seq: int, limit: int) -> Sequence[RunEvent]:
        """The run's events of ``attempt`` with ``seq > after_seq``, oldest first, at most ``limit``."""
        ...

    def purge_events(self, *, finished_before: datetime, limit: int) -> int:
        """Delete the events of runs that finished before the cutoff; how many went."""
        ...


def purge_finished_runs(runs: AgentRuns, *, now: datetime, retention_days: int, limit: int = 1000) -> int:
    """Housekeeping: delete runs that finished longer than ``retention_days`` ago (0: keep every one). The
    answers they produced stay in their conversations; the turns just stop naming the run."""
    if retention_days == 0:
        return 0
    return runs.purge_finished(finished_before=now - timedelta(days=retention_days), limit=limit)
