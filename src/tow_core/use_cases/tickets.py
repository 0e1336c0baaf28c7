"""Tickets: comments, the activity log and links (rules in ``tow_core.tickets``); creating and editing a
ticket go through ``RecordUseCases``. A comment added or edited is published to the ticket's live subscribers
(``tow_core.live``: who may hear of it is decided at delivery)."""

from __future__ import annotations

from dataclasses import dataclass

from tow_core import tickets
from tow_core.live import LiveEvent
from tow_core.records import DisplayId
from tow_core.tickets import ActivityEntry, Comment, Link
from tow_core.unit_of_work import Acting, Credential, Transactions


def _told(acting: Acting, org_id: int, comment: Comment) -> Comment:
    acting.stores.live.publish(LiveEvent.comment_added(org_id, comment.record_id, comment.id,
                                                       acting.principal.user_id))
    return comment


@dataclass(frozen=True)
class TicketUseCases:
    transactions: Transactions

    def comments(self, credential: Credential, org_id: int, display_id: DisplayId, *,
                 after: int | None = None, limit: int = 200) -> list[Comment]:
        with self.transactions.acting_as(credential) as acting:
            return list(tickets.list_comments(acting.workspace(org_id), acting.stores.history.comments, display_id,
                                              after_id=after, limit=limit))

    def add_comment(self, credential: Credential, org_id: int, display_id: DisplayId, body: str) -> Comment:
        """Comment on a ticket the caller writes; its watchers and those it mentions are notified."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            comment = tickets.add_comment(ws, acting.stores.history.comments, display_id, body)
            acting.notifications().comment_added(acting.principal.user_id, tickets.readable_ticket(ws, display_id),
                                                 comment.id, comment.body)
            return _told(acting, org_id, comment)

    def edit_comment(self, credential: Credential, org_id: int, display_id: DisplayId, comment_id: int,
                     body: str) -> Comment:
        """Edit one's own comment; people it now mentions that it did not before are notified."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            ticket = tickets.readable_ticket(ws, display_id)
            before = acting.stores.history.comments.get(ticket.id, comment_id)
            comment = tickets.edit_comment(ws, acting.stores.history.comments, display_id, comment_id, body)
            acting.notifications().comment_edited(acting.principal.user_id, ticket, comment.id,
                                                  before.body if before else "", comment.body)
            return _told(acting, org_id, comment)

    def delete_comment(self, credential: Credential, org_id: int, display_id: DisplayId,
                       comment_id: int) -> None:
        with self.transactions.acting_as(credential) as acting:
            tickets.delete_comment(acting.workspace(org_id), acting.stores.history.comments, display_id, comment_id)

    def activity(self, credential: Credential, org_id: int, display_id: DisplayId, *,
                 after: int | None = None, limit: int = 200) -> list[ActivityEntry]:
        with self.transactions.acting_as(credential) as acting:
            return list(tickets.activity_log(acting.workspace(org_id), acting.stores.history.activity, display_id,
                                             after_id=after, limit=limit))

    def links(self, credential: Credential, org_id: int, display_id: DisplayId) -> list[Link]:
        with self.transactions.acting_as(credential) as acting:
            return list(tickets.list_links(acting.workspace(org_id), acting.stores.history.links, display_id))

    def add_link(self, credential: Credential, org_id: int, display_id: DisplayId, kind: str,
                 target: str) -> Link:
        """Link this ticket (which the caller writes) to ``target`` (which they read)."""
        with self.transactions.acting_as(credential) as acting:
            return tickets.add_link(acting.workspace(org_id), acting.stores.history.links, display_id, kind, target)

    def delete_link(self, credential: Credential, org_id: int, display_id: DisplayId, link_id: int) -> None:
        with self.transactions.acting_as(credential) as acting:
            tickets.delete_link(acting.workspace(org_id), acting.stores.history.links, display_id, link_id)
