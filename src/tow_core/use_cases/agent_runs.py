"""Agent runs (rules in ``tow_core.agent_runs``): what the API lists, shows and cancels.

A run's owner sees it whole; organisation owners and admins see every run of the organisation but only
its metadata (kind, status, timings, usage, error code) — conversations are private to their owner;
anyone else gets NotFound, as for a run that does not exist. Runs are listed, shown and cancelled either in
one organisation (``org_id``) or across every organisation the caller belongs to (``org_id`` None). An
owner/admin cancelling someone else's run is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from tow_core import agent_runs as rules
from tow_core.agent_runs import AgentRun, AgentRunStatus
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import InvalidInput, NotFound
from tow_core.live import LiveEvent
from tow_core.records import Page
from tow_core.unit_of_work import Acting, Credential, Stores, Transactions, notifications_of

MAX_PAGE = 200


def owner_told_of_end(stores: Stores, now: datetime) -> Callable[[AgentRun], bool]:
    """How the run worker tells a run's owner that it ended, in the transaction that records the end: by a
    notification (which nudges their open pages itself), or — for a failed run whose notification they switched
    off — by the nudge alone, since the failed run waits in their inbox all the same. Once, never both: returns
    whether a notification was created."""
    notifications = notifications_of(stores, now)

    def tell(run: AgentRun) -> bool:
        notified = notifications.agent_run_ended(run)
        if not notified and run.status is AgentRunStatus.FAILED:
            stores.live.publish(LiveEvent.user_nudged(run.organisation_id, run.owner_id))
        return notified

    return tell


@dataclass(frozen=True, slots=True)
class VisibleAgentRun:
    run: AgentRun  # with input, output and error text removed unless content_visible
    content_visible: bool  # the caller owns the run


def _after_id(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise InvalidInput("cursor is not one this listing gave", field="cursor")
    return int(cursor)


@dataclass(frozen=True)
class AgentRunUseCases:
    transactions: Transactions

    def list(self, credential: Credential, org_id: int | None, *, cursor: str | None = None,
             limit: int = 50) -> Page[VisibleAgentRun]:
        """The caller's runs, newest first — in ``org_id``, or in every organisation they belong to (None) —
        and every run of the organisations they own or administer."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        after_id = _after_id(cursor)
        with self.transactions.acting_as(credential) as acting:
            if org_id is not None:
                rules.require_member(acting.principal, org_id)
            listing = rules.listing_for(acting.principal, acting.principal.org_roles if org_id is None else (org_id,))
            runs = acting.stores.agent_runs.list(
                whole_organisations=listing.whole_organisations, own_in=listing.own_in,
                owner_id=acting.principal.user_id, after_id=after_id, limit=limit + 1)
            items = tuple(self._visible(acting, run) for run in runs[:limit])
            return Page(items, str(runs[limit - 1].id) if len(runs) > limit else None)

    def get(self, credential: Credential, org_id: int | None, run_id: int) -> VisibleAgentRun:
        with self.transactions.acting_as(credential) as acting:
            return self._visible(acting, self._find(acting, org_id, run_id))

    def cancel(self, credential: Credential, org_id: int | None, run_id: int) -> VisibleAgentRun:
        """A queued run is cancelled at once; a running one when its handler next heartbeats (the answer says
        ``cancel_requested``). Conflict for a run that already ended."""
        with self.transactions.acting_as(credential) as acting:
            run = self._find(acting, org_id, run_id)
            rules.require_move(run.status, AgentRunStatus.CANCELLED)
            cancelled = acting.stores.agent_runs.request_cancel(run.id, now=acting.now)
            if cancelled is None:
                raise NotFound("agent run not found")
            if run.owner_id != acting.principal.user_id:  # an owner/admin stopping someone else's work
                acting.stores.directory.audit(AuditEntry(
                    run.organisation_id, acting.principal.user_id, AuditAction.AGENT_RUN_CANCELLED,
                    f"agent_run:{run.id}", {"kind": run.kind, "owner_id": run.owner_id,
                                            "status": run.status.value}))
            return self._visible(acting, cancelled)

    @staticmethod
    def _find(acting: Acting, org_id: int | None, run_id: int) -> AgentRun:
        if org_id is not None:
            rules.require_member(acting.principal, org_id)
        run = acting.stores.agent_runs.get(run_id)
        if run is None or org_id not in (None, run.organisation_id) or rules.shown_to(acting.principal, run) is None:
            raise NotFound("agent run not found")
        return run

    @staticmethod
    def _visible(acting: Acting, run: AgentRun) -> VisibleAgentRun:
        shown = rules.shown_to(acting.principal, run)
        if shown is None:  # listed runs are the caller's or (owners/admins) the organisation's
            raise NotFound("agent run not found")
        return VisibleAgentRun(shown, content_visible=run.owner_id == acting.principal.user_id)
