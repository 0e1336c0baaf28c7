"""The storage docs and tickets add to records, and the ``knowledge.RecordHistory`` hook over it.

``knowledge.create_record`` / ``update_record`` call the hook inside their transaction for every
record, so a doc's revisions and tree rules (``tow_core.docs``) and a ticket's activity log and parent
rules (``tow_core.tickets``) hold whichever API made the change. Other record types pass through.
"""

from __future__ import annotations

from dataclasses import dataclass

from tow_core import docs, tickets
from tow_core.knowledge import Workspace
from tow_core.records import Record, RecordType


@dataclass(frozen=True, slots=True)
class RecordKeeping:
    revisions: docs.DocRevisions
    tree: docs.RecordTree
    activity: tickets.TicketActivity
    comments: tickets.TicketComments
    links: tickets.TicketLinks

    def created(self, ws: Workspace, record: Record) -> None:
        if record.type is RecordType.DOC:
            docs.on_created(ws, self.tree, record)
        elif record.type is RecordType.TICKET:
            tickets.on_created(ws, self.tree, self.activity, record)

    def changed(self, ws: Workspace, before: Record, after: Record) -> Record:
        if after.type is RecordType.DOC:
            return docs.on_changed(ws, self.revisions, self.tree, before, after)
        if after.type is RecordType.TICKET:
            tickets.on_changed(ws, self.tree, self.activity, before, after)
        return after
