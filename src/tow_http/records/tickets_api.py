"""Tickets over HTTP: comments, the activity log and links (SPEC §4).

Creating and editing tickets go through ``/records``; every change made there is in the activity log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Router, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from tow_core.records import DisplayId
from tow_core.tickets import MAX_COMMENT, ActivityEntry, Comment, Link, LinkKind
from tow_core.unit_of_work import Credential
from tow_core.use_cases.tickets import TicketUseCases
from tow_http.records.api import BASE
from tow_http.records.shapes import SummaryOut, summary_out
from tow_http.shapes import VISIBLE, DisplayIdText, Strict

Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=500, description="page size (1–500)")]
After = Annotated[int | None, QueryParameter(name="after", description="only entries after this id (the last "
                                                                         "one you have)")]
TICKET = f"{BASE}/records/{{display_id:str}}"


class CommentIn(Strict):
    body: Annotated[str, msgspec.Meta(max_length=MAX_COMMENT, pattern=VISIBLE)]


class CommentOut(msgspec.Struct):
    id: int
    author_id: int | None
    body: str
    created_at: datetime
    updated_at: datetime


class ActivityOut(msgspec.Struct):
    id: int
    actor_id: int | None
    at: datetime
    field: str
    old: Any
    new: Any
    ai_applied: bool


class LinkIn(Strict):
    kind: LinkKind
    target: DisplayIdText


class LinkOut(msgspec.Struct):
    id: int
    kind: str
    direction: str  # outgoing: this ticket <kind> the other; incoming: the other <kind> this ticket
    ticket: SummaryOut
    created_by: int | None
    created_at: datetime


def comment_out(c: Comment) -> CommentOut:
    return CommentOut(c.id, c.author_id, c.body, c.created_at, c.updated_at)


def activity_out(e: ActivityEntry) -> ActivityOut:
    return ActivityOut(e.id, e.actor_id, e.at, e.change.field, e.change.old, e.change.new, e.ai_applied)


def link_out(link: Link) -> LinkOut:
    return LinkOut(link.id, link.kind.value, "outgoing" if link.outgoing else "incoming", summary_out(link.other),
                   link.created_by, link.created_at)


@get(f"{TICKET}/comments", summary="A ticket's comments", description="Oldest first; for the ticket's readers.",
     sync_to_thread=True)
def list_comments(org_id: int, display_id: str, caller: NamedDependency[Credential],
                  tickets: NamedDependency[TicketUseCases], after: After = None, limit: Limit = 200
                  ) -> list[CommentOut]:
    found = tickets.comments(caller, org_id, DisplayId.parse(display_id), after=after, limit=limit)
    return [comment_out(c) for c in found]


@post(f"{TICKET}/comments", summary="Comment on a ticket", description="Needs write access to the ticket's scope.",
      status_code=HTTP_201_CREATED, sync_to_thread=True)
def add_comment(org_id: int, display_id: str, data: JSONBody[CommentIn], caller: NamedDependency[Credential],
                tickets: NamedDependency[TicketUseCases]) -> CommentOut:
    return comment_out(tickets.add_comment(caller, org_id, DisplayId.parse(display_id), data.body))


@patch(f"{TICKET}/comments/{{comment_id:int}}", summary="Edit your comment",
       description="Only the comment's author, while they can write the ticket (else 403).", sync_to_thread=True)
def edit_comment(org_id: int, display_id: str, comment_id: int, data: JSONBody[CommentIn],
                 caller: NamedDependency[Credential], tickets: NamedDependency[TicketUseCases]) -> CommentOut:
    return comment_out(tickets.edit_comment(caller, org_id, DisplayId.parse(display_id), comment_id, data.body))


@delete(f"{TICKET}/comments/{{comment_id:int}}", summary="Delete your comment",
        description="Only the comment's author, while they can write the ticket (else 403).", sync_to_thread=True)
def delete_comment(org_id: int, display_id: str, comment_id: int, caller: NamedDependency[Credential],
                   tickets: NamedDependency[TicketUseCases]) -> None:
    tickets.delete_comment(caller, org_id, DisplayId.parse(display_id), comment_id)


@get(
    f"{TICKET}/activity",
    summary="A ticket's activity log",
    description="Its creation and every change — title, body, status, scope, type, priority, assignee, labels, due "
    "date, parent — with who, when, old → new and `ai_applied`, oldest first, whichever API made the change.",
    sync_to_thread=True,
)
def ticket_activity(org_id: int, display_id: str, caller: NamedDependency[Credential],
                    tickets: NamedDependency[TicketUseCases], after: After = None, limit: Limit = 200
                    ) -> list[ActivityOut]:
    entries = tickets.activity(caller, org_id, DisplayId.parse(display_id), after=after, limit=limit)
    return [activity_out(e) for e in entries]


@get(f"{TICKET}/links", summary="A ticket's links",
     description="Outgoing and incoming; only links whose other ticket you can read.", sync_to_thread=True)
def list_links(org_id: int, display_id: str, caller: NamedDependency[Credential],
               tickets: NamedDependency[TicketUseCases]) -> list[LinkOut]:
    found = tickets.links(caller, org_id, DisplayId.parse(display_id))
    return [link_out(link) for link in found]


@post(
    f"{TICKET}/links",
    summary="Link two tickets",
    description="`kind`: relates_to, blocks or duplicates; `target`: a ticket's display ID. You must write this "
    "ticket and read the target (else 404).",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
)
def add_link(org_id: int, display_id: str, data: JSONBody[LinkIn], caller: NamedDependency[Credential],
             tickets: NamedDependency[TicketUseCases]) -> LinkOut:
    return link_out(tickets.add_link(caller, org_id, DisplayId.parse(display_id), data.kind, data.target))


@delete(f"{TICKET}/links/{{link_id:int}}", summary="Remove a link",
        description="Needs write access to this ticket; 404 unless you can read the other end.", sync_to_thread=True)
def delete_link(org_id: int, display_id: str, link_id: int, caller: NamedDependency[Credential],
                tickets: NamedDependency[TicketUseCases]) -> None:
    tickets.delete_link(caller, org_id, DisplayId.parse(display_id), link_id)


tickets_router = Router(
    path="/api",
    route_handlers=[list_comments, add_comment, edit_comment, delete_comment, ticket_activity, list_links, add_link,
                    delete_link],
    tags=["tickets"],
)
