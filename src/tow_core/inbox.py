"""The inbox (SPEC §6 workflow 4, issue 14 item 3): what waits for one person in one organisation.

Four kinds of item:
- **memory diffs** still pending, in a scope the person reads and writes — the reviewers' rule of
  ``tow_core.memory_review`` on the diff's scope (approving also needs write access to each item a diff
  changes; an item elsewhere that they only read is refused at approval with the review's own message);
- **snapshots** in ``pending_review`` that the person can write (so they can edit and activate them);
- **chat actions** the assistant proposed in the person's *own* conversations that nobody applied yet;
- **failed agent runs** of theirs that they have not dismissed (they own them: code and message shown).

Rules:
- Every item is selected inside its store's query by the one access policy (the visibility predicate
  generated from ``tow_core.access``'s rule tables, or the owner in the WHERE clause): an item the person
  cannot read is neither listed nor counted, and a revoked grant counts from the next request.
- Scope, as on every page: with "All projects" everything above, conversations and runs included when
  they are scoped to no project or to one the person still reads; with a project picked, only that
  project's diffs, snapshots, conversations and runs.
- Counts are exact; a listing holds the newest ``MAX_ITEMS`` of each kind.
- Dismissing is the owner's act on a failed run: the run is kept (the run listing still shows it), it only
  leaves the inbox. Anything else is "not found" (someone else's run) or Conflict (not failed, or dismissed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tow_core.access import Principal
from tow_core.agent_runs import AgentRun, AgentRuns, AgentRunStatus, require_member
from tow_core.conversations import Conversations, OpenAction
from tow_core.errors import Conflict, NotFound
from tow_core.memory_diffs import MemoryDiffStore
from tow_core.memory_review import DiffSummary
from tow_core.records import Record, RecordQuery, RecordStore, RecordType

MAX_ITEMS = 100


class InboxKind(StrEnum):
    MEMORY_DIFF = "memory_diff"
    SNAPSHOT = "snapshot"
    CHAT_ACTION = "chat_action"
    FAILED_RUN = "failed_run"


@dataclass(frozen=True, slots=True)
class InboxDesk:
    """The stores the inbox reads, all in the caller's one transaction."""

    records: RecordStore
    diffs: MemoryDiffStore
    conversations: Conversations
    runs: AgentRuns


@dataclass(frozen=True, slots=True)
class Within:
    """Whose inbox, in which organisation, over which projects (see the module's scope rule)."""

    principal_id: int
    org_id: int
    project_id: int | None  # the picked project; None: all projects
    project_ids: frozenset[int]  # conversations and runs scoped to one of these are covered ...
    unscoped: bool  # ... and, when True, those over all projects


def within(principal: Principal, org_id: int, picked: int | None, readable_project_ids: Iterable[int]) -> Within:
    """The inbox of ``principal`` (a member: the caller checked) for the picked project, or for all the
    projects they read (``readable_project_ids``)."""
    if picked is not None:
        return Within(principal.user_id, org_id, picked, frozenset({picked}), unscoped=False)
    return Within(principal.user_id, org_id, None, frozenset(readable_project_ids), unscoped=True)


@dataclass(frozen=True, slots=True)
class InboxCounts:
    memory_diffs: int = 0
    snapshots: int = 0
    chat_actions: int = 0
    failed_runs: int = 0

    @property
    def total(self) -> int:
        return self.memory_diffs + self.snapshots + self.chat_actions + self.failed_runs

    def by_kind(self) -> dict[InboxKind, int]:
        return {InboxKind.MEMORY_DIFF: self.memory_diffs, InboxKind.SNAPSHOT: self.snapshots,
                InboxKind.CHAT_ACTION: self.chat_actions, InboxKind.FAILED_RUN: self.failed_runs}


@dataclass(frozen=True, slots=True)
class Inbox:
    counts: InboxCounts
    memory_diffs: tuple[DiffSummary, ...]
    snapshots: tuple[Record, ...]
    chat_actions: tuple[OpenAction, ...]
    failed_runs: tuple[AgentRun, ...]
    # Diffs listed that the person proposed (or a run of theirs did) while the organisation requires a second
    # reviewer: they may reject them, not approve them (``memory_review.needs_second_reviewer``).
    awaiting_second_reviewer: frozenset[int] = frozenset()


def _snapshots(where: Within) -> RecordQuery:
    return RecordQuery(frozenset({RecordType.SNAPSHOT}), frozenset({"pending_review"}), where.project_id,
                       writable=True)


def count(desk: InboxDesk, where: Within) -> InboxCounts:
    """The exact counts: four indexed counting queries (the shell shows their total on every page)."""
    return InboxCounts(
        desk.diffs.count_pending_writable(where.principal_id, where.org_id, where.project_id),
        desk.records.count_readable(where.principal_id, where.org_id, _snapshots(where)),
        desk.conversations.count_open_actions(where.principal_id, where.org_id, where.project_ids,
                                              unscoped=where.unscoped),
        desk.runs.count_failed_undismissed(where.principal_id, where.org_id, where.project_ids,
                                           unscoped=where.unscoped),
    )


def gather(desk: InboxDesk, where: Within, *, limit: int = MAX_ITEMS) -> Inbox:
    """The counts and the newest ``limit`` items of each kind."""
    diffs = desk.diffs.list_pending_writable(where.principal_id, where.org_id, where.project_id, limit=limit)
    snapshots = desk.records.list_readable(where.principal_id, where.org_id, _snapshots(where), cursor=None,
                                           limit=limit)
    actions = desk.conversations.open_actions(where.principal_id, where.org_id, where.project_ids,
                                              unscoped=where.unscoped, limit=limit)
    runs = desk.runs.failed_undismissed(where.principal_id, where.org_id, where.project_ids,
                                        unscoped=where.unscoped, limit=limit)
    return Inbox(count(desk, where), tuple(DiffSummary.of(d) for d in diffs), snapshots.items, tuple(actions),
                 tuple(runs))


def action_title(action: Mapping[str, Any]) -> str:
    """What a pending chat action proposes, in a few words: "New ticket: …", "Change MEM-3" …"""
    if action.get("kind") == "ticket":
        return f"New ticket: {action.get('title')}"
    operation = action.get("operation")
    if operation == "create":
        return f"New memory: {action.get('title')}"
    verb = "Retire" if operation == "retire" else "Change"
    return f"{verb} {action.get('display_id')}"


def dismiss_run(runs: AgentRuns, principal: Principal, org_id: int, run_id: int, *, now: datetime) -> None:
    """The owner dismisses a failed run of theirs from the inbox (see the module rules)."""
    require_member(principal, org_id)
    run = runs.get(run_id)
    if run is None or run.organisation_id != org_id or run.owner_id != principal.user_id:
        raise NotFound("agent run not found")
    if run.status is not AgentRunStatus.FAILED:
        raise Conflict(f"only a failed run can be dismissed; this one is {run.status.value}", field="status")
    if not runs.dismiss(run.id, now=now):
        raise Conflict("this run was already dismissed", field="run_id")
