"""The storage docs and tickets add to records, and the ``knowledge.RecordHistory`` hook over it.

``knowledge.create_record`` / ``update_record`` call the hook inside their transaction for every
record, so a doc's revisions and tree rules (``tow_core.docs``) and a ticket's activity log and parent
rules (``tow_core.tickets``) hold whichever API made the change. Other record types pass through. Every
change of any record publishes ``record_changed`` to live subscribers (``tow_core.live``), and a snapshot
entering or leaving review ``reviews_changed`` for its scope — in the same transaction, so only on commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from tow_core import docs, tickets
from tow_core.knowledge import Workspace
from tow_core.live import LiveEvent, LiveEvents
from tow_core.records import Record, RecordType


@dataclass(frozen=True, slots=True)
class RecordKeeping:
    revisions: docs.DocRevisions
    tree: docs.RecordTree
    activity: tickets.TicketActivity
    comments: tickets.TicketComments
    links: tickets.TicketLinks
    live: LiveEvents

    def created(self, ws: Workspace, record: Record) -> None:
        if _in_review(record):
            self.live.publish(LiveEvent.reviews_changed(record.scope))
        if record.type is RecordType.DOC:
            docs.on_created(ws, self.tree, record)
        elif record.type is RecordType.TICKET:
            tickets.on_created(ws, self.tree, self.activity, record)

    def changed(self, ws: Workspace, before: Record, after: Record) -> Record:
        self.live.publish(LiveEvent.record_changed(ws.org_id, after.id, ws.principal.user_id))
        if _in_review(before) or _in_review(after):
            for scope in {before.scope, after.scope}:
                self.live.publish(LiveEvent.reviews_changed(scope))
        if after.type is RecordType.DOC:
            return docs.on_changed(ws, self.revisions, self.tree, before, after)
        if after.type is RecordType.TICKET:
            tickets.on_changed(ws, self.tree, self.activity, before, after)
        return after


def _in_review(record: Record) -> bool:
    """A snapshot awaiting review counts in its reviewers' inboxes (``tow_core.inbox``)."""
    return record.type is RecordType.SNAPSHOT and record.status == "pending_review"
