"""The inbox and the Today page (issue 14 item 3; rules in ``tow_core.inbox``): what waits for the caller, and
the signed-in home around it — the inbox count, recent activity, active snapshots and the caller's open tickets,
all in the current scope and all read through the stores' visibility-filtered queries, in one transaction.

Acting on an item uses the use case that owns it (approve/reject: ``MemoryReviewUseCases``, activate:
``RecordUseCases.update``, apply: ``ChatUseCases.apply_action``), so the inbox adds no second rule; only
dismissing a failed run is the inbox's own act.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tow_core import accounts, administration, inbox, knowledge, memory_review
from tow_core.conversations import readable_project_ids
from tow_core.inbox import Inbox, InboxCounts
from tow_core.records import Record, RecordQuery, RecordType
from tow_core.unit_of_work import Acting, Credential, Transactions
from tow_core.use_cases.frame import Framed, frame_of, inbox_desk, inbox_within

OPEN_TICKET_STATUSES = frozenset({"backlog", "todo", "in_progress", "blocked", "in_review"})
RECENT = 10
SNAPSHOTS = 10
TICKETS = 20


@dataclass(frozen=True)
class FirstSteps:
    """A new organisation's first-run checklist, shown to its owners and admins; each step is ticked from what
    exists: someone else joined or an invite was made, a project exists, a doc exists (that the caller reads)."""

    invited: bool
    project: bool
    doc: bool

    @property
    def done(self) -> bool:
        return self.invited and self.project and self.doc


def first_steps_of(acting: Acting, ws: knowledge.Workspace, org_id: int, projects: int) -> FirstSteps:
    directory, principal = acting.stores.directory, acting.principal
    invited = (len(administration.list_members(directory, principal, org_id=org_id)) > 1
               or bool(accounts.list_invites(directory, principal, org_id=org_id)))
    doc = knowledge.count_records(ws, RecordQuery(frozenset({RecordType.DOC}))) > 0
    return FirstSteps(invited, projects > 0, doc)


@dataclass(frozen=True)
class Today:
    """The signed-in home. ``empty``: the caller reads no record at all in the organisation (a new one), so
    the page offers first steps instead of empty lists."""

    counts: InboxCounts
    recent: tuple[Record, ...]  # latest changed records the caller reads, newest first
    snapshots: tuple[Record, ...]  # active snapshots
    tickets: tuple[Record, ...]  # open tickets assigned to the caller
    empty: bool
    first_steps: FirstSteps | None = None  # owners and admins, until every step is done or they hide it


def _with_review_rule(ws: knowledge.Workspace, box: Inbox) -> Inbox:
    """The diffs of the caller's own that the organisation's second-reviewer rule keeps them from approving."""
    own = frozenset(d.id for d in box.memory_diffs if d.author_id == ws.principal.user_id)
    ruled = bool(own) and memory_review.needs_second_reviewer(ws, ws.principal.user_id)
    return replace(box, awaiting_second_reviewer=own if ruled else frozenset())


@dataclass(frozen=True)
class InboxUseCases:
    transactions: Transactions

    def inbox(self, credential: Credential, org_id: int, project_key: str | None = None) -> Inbox:
        """The caller's inbox in the organisation, or in one project they read (else NotFound)."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            picked = knowledge.project_filter(ws, project_key.strip().upper() if project_key else None)
            where = inbox.within(acting.principal, org_id, picked, readable_project_ids(ws))
            return _with_review_rule(ws, inbox.gather(inbox_desk(acting), where))

    def counts(self, credential: Credential, org_id: int, project_key: str | None = None
               ) -> inbox.InboxCounts:
        """Only the counts (the shell's badge, refetched when a live stream nudges the page)."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            picked = knowledge.project_filter(ws, project_key.strip().upper() if project_key else None)
            return inbox.count(inbox_desk(acting), inbox.within(acting.principal, org_id, picked,
                                                                readable_project_ids(ws)))

    def inbox_page(self, credential: Credential, org_id: int, project_key: str | None) -> Framed[Inbox]:
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            where = inbox_within(acting, org_id, frame.project, frame.projects)
            return Framed(frame, _with_review_rule(acting.workspace(org_id), inbox.gather(inbox_desk(acting), where)))

    def today_page(self, credential: Credential, org_id: int, project_key: str | None, *,
                   first_steps: bool = True) -> Framed[Today]:
        """``first_steps``: offer the first-run checklist (False once the person hid it)."""
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            ws = acting.workspace(org_id)
            picked = frame.project.id if frame.project else None
            counts = inbox.count(inbox_desk(acting), inbox_within(acting, org_id, frame.project, frame.projects))
            recent = knowledge.list_records(ws, RecordQuery(project_id=picked), cursor=None, limit=RECENT).items
            snapshots = knowledge.list_records(
                ws, RecordQuery(frozenset({RecordType.SNAPSHOT}), frozenset({"active"}), picked), cursor=None,
                limit=SNAPSHOTS).items
            tickets = knowledge.list_records(
                ws, RecordQuery(frozenset({RecordType.TICKET}), OPEN_TICKET_STATUSES, picked,
                                assignee_id=acting.principal.user_id), cursor=None, limit=TICKETS).items
            empty = not recent and (picked is None or knowledge.count_records(ws, RecordQuery()) == 0)
            steps = first_steps_of(acting, ws, org_id, len(frame.projects)) \
                if first_steps and frame.role.manages_org else None
            return Framed(frame, Today(counts, recent, snapshots, tickets, empty,
                                       None if steps is None or steps.done else steps))

    def dismiss_run(self, credential: Credential, org_id: int, run_id: int) -> None:
        """The caller's failed run leaves their inbox (kept in the run listing)."""
        with self.transactions.acting_as(credential) as acting:
            inbox.dismiss_run(acting.stores.agent_runs, acting.principal, org_id, run_id, now=acting.now)
