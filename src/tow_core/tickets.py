"""Tickets (SPEC §2, §4): comments, the activity log, links and the parent ticket.

Rules:
- Comments: a ticket's readers list its comments (or read one by id: ``readable_comment``); writers of its
  scope add them; only a comment's
  author edits or deletes it (403 for anyone else), and only while they can still write the ticket
  (commenting is writing, SPEC §2 project roles). A ticket the caller cannot read is 404 throughout.
- Activity: the creation and every change of a ticket — title, body, status, scope and each field
  (type, priority, assignee, labels, due date, parent) — is logged with who, when, old → new and
  ``ai_applied`` (whether an AI workflow applied it; false until those exist). The log is written by
  the hook every create and update runs (``knowledge.RecordHistory``), whatever API made the change,
  and is read by the ticket's readers, oldest first.
- Links (relates_to, blocks, duplicates) join two tickets: the caller must write the source and read
  the target (else 404, so nothing is learned about tickets one cannot read). A link is listed, and can
  be deleted (by writers of the ticket it is viewed from), only when the caller can read its other end.
  ``relates_to`` is symmetric: A relates_to B is the same link as B relates_to A.
- ``fields.parent_id`` names a ticket of the same organisation the caller can read (else 404), never the
  ticket itself nor one of its sub-tickets (422); ``assignee_id`` names a member of the organisation (422,
  checked with every field that names ids by ``knowledge.check_named_ids``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from tow_core.access import can_write_scope
from tow_core.docs import RecordTree, checked_parent
from tow_core.errors import AccessDenied, InvalidInput, NotFound
from tow_core.knowledge import Workspace, clean_text, get_record, project_access_of
from tow_core.records import DisplayId, Record, RecordSummary, RecordType

MAX_COMMENT = 100_000
MAX_PAGE = 500
CREATED = "created"  # the activity "field" of a ticket's creation


# --- core types and ports ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class ActivityEntry:
    id: int
    actor_id: int | None
    at: datetime
    change: FieldChange
    ai_applied: bool


@dataclass(frozen=True, slots=True)
class Comment:
    id: int
    record_id: int
    author_id: int | None
    body: str
    created_at: datetime
    updated_at: datetime

    def require_author(self, user_id: int) -> None:
        if self.author_id != user_id:
            raise AccessDenied("only its author can change or delete a comment")


class LinkKind(StrEnum):
    RELATES_TO = "relates_to"
    BLOCKS = "blocks"
    DUPLICATES = "duplicates"


@dataclass(frozen=True, slots=True)
class Link:
    """A link as seen from one ticket: ``outgoing`` when that ticket is the source (it blocks /
    duplicates / relates to ``other``), else incoming (``other`` blocks / duplicates / relates to it)."""

    id: int
    kind: LinkKind
    outgoing: bool
    other: RecordSummary
    created_by: int | None
    created_at: datetime


class TicketActivity(Protocol):
    def add(self, record_id: int, actor_id: int, changes: Sequence[FieldChange], *, ai_applied: bool) -> None: ...

    def list(self, record_id: int, *, after_id: int | None, limit: int) -> list[ActivityEntry]:
        """Oldest first; only entries after ``after_id`` when given."""
        ...


class TicketComments(Protocol):
    def add(self, record_id: int, author_id: int, body: str) -> Comment: ...

    def get(self, record_id: int, comment_id: int) -> Comment | None:
        """The comment of that ticket, locked for this transaction."""
        ...

    def update(self, comment_id: int, body: str) -> Comment: ...

    def delete(self, comment_id: int) -> None: ...

    def list(self, record_id: int, *, after_id: int | None, limit: int) -> list[Comment]:
        """Oldest first; only comments after ``after_id`` when given."""
        ...


class TicketLinks(Protocol):
    def add(self, org_id: int, source_id: int, target_id: int, kind: LinkKind, created_by: int) -> int:
        """The new link's id; Conflict when the same link exists."""
        ...

    def readable(self, principal_id: int, org_id: int, record_id: int, *, link_id: int | None = None
                 ) -> list[Link]:
        """Links of ``record_id`` whose other end the principal can read (one statement; the caller
        checked ``record_id`` itself), oldest first; only ``link_id`` when given."""
        ...

    def delete(self, link_id: int) -> None: ...


# --- the hooks every create and update of a ticket runs (via record_history) -------------------------

_TRACKED = ("title", "body", "status")


def changes_between(before: Record, after: Record) -> list[FieldChange]:
    """Every tracked difference, in a stable order: title, body, status, scope, then the fields."""
    changes = [FieldChange(name, getattr(before, name), getattr(after, name)) for name in _TRACKED
               if getattr(before, name) != getattr(after, name)]
    if before.scope != after.scope:
        changes.append(FieldChange("scope", _scope_value(before), _scope_value(after)))
    for name in sorted(set(before.fields) | set(after.fields)):
        old, new = before.fields.get(name), after.fields.get(name)
        if old != new:
            changes.append(FieldChange(name, old, new))
    return changes


def _scope_value(record: Record) -> dict[str, Any]:
    return {"kind": record.scope.kind.value, "id": record.scope.ref_id}


def _check_fields(ws: Workspace, tree: RecordTree, record: Record, before: Record | None) -> None:
    fields, previous = record.fields, before.fields if before is not None else {}
    if fields.get("parent_id") != previous.get("parent_id"):
        checked_parent(ws, tree, record)


def on_created(ws: Workspace, tree: RecordTree, activity: TicketActivity, record: Record) -> None:
    _check_fields(ws, tree, record, None)
    activity.add(record.id, ws.principal.user_id, [FieldChange(CREATED, None, record.title)], ai_applied=False)


def on_changed(ws: Workspace, tree: RecordTree, activity: TicketActivity, before: Record, after: Record) -> None:
    _check_fields(ws, tree, after, before)
    changes = changes_between(before, after)
    if changes:
        activity.add(after.id, ws.principal.user_id, changes, ai_applied=False)


# --- use cases ------------------------------------------------------------------------------------------


def readable_ticket(ws: Workspace, display_id: DisplayId) -> Record:
    record = get_record(ws, display_id)  # NotFound unless readable
    if record.type is not RecordType.TICKET:
        raise InvalidInput(f"{display_id} is a {record.type.value}, not a ticket", field="display_id")
    return record


def _writable_ticket(ws: Workspace, display_id: DisplayId) -> Record:
    ticket = readable_ticket(ws, display_id)
    if not can_write_scope(ws.principal, ticket.scope, project_access_of(ws, ticket.scope)):
        raise AccessDenied(f"you can read but not change {display_id}")
    return ticket


def _page(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be from 1 to {MAX_PAGE}", field="limit")
    return limit


def activity_log(ws: Workspace, activity: TicketActivity, display_id: DisplayId, *, after_id: int | None = None,
                 limit: int = 200) -> list[ActivityEntry]:
    ticket = readable_ticket(ws, display_id)
    return activity.list(ticket.id, after_id=after_id, limit=_page(limit))


def list_comments(ws: Workspace, comments: TicketComments, display_id: DisplayId, *, after_id: int | None = None,
                  limit: int = 200) -> list[Comment]:
    ticket = readable_ticket(ws, display_id)
    return comments.list(ticket.id, after_id=after_id, limit=_page(limit))


def readable_comment(ws: Workspace, comments: TicketComments, display_id: DisplayId, comment_id: int) -> Comment:
    """One comment of a ticket the caller reads (the ticket page appends it live). NotFound — the same answer —
    for a record they cannot read, for a record that is not a ticket, and for an id that is not one of this
    ticket's comments (another ticket's, deleted, never made, another organisation's)."""
    record = get_record(ws, display_id)  # NotFound unless readable
    if record.type is not RecordType.TICKET:
        raise NotFound("comment not found")
    # The first comment from this id on, if it is this one: a read that takes no row lock (``get`` locks, to edit).
    found = comments.list(record.id, after_id=comment_id - 1, limit=1)
    if not found or found[0].id != comment_id:
        raise NotFound("comment not found")
    return found[0]


def _comment_body(body: str) -> str:
    return clean_text(body, "body", max_length=MAX_COMMENT, required=True)


def add_comment(ws: Workspace, comments: TicketComments, display_id: DisplayId, body: str) -> Comment:
    ticket = _writable_ticket(ws, display_id)
    return comments.add(ticket.id, ws.principal.user_id, _comment_body(body))


def _own_comment(ws: Workspace, comments: TicketComments, display_id: DisplayId, comment_id: int) -> Comment:
    ticket = readable_ticket(ws, display_id)
    comment = comments.get(ticket.id, comment_id)
    if comment is None:
        raise NotFound("comment not found")
    comment.require_author(ws.principal.user_id)
    _writable_ticket(ws, display_id)
    return comment


def edit_comment(ws: Workspace, comments: TicketComments, display_id: DisplayId, comment_id: int, body: str
                 ) -> Comment:
    comment = _own_comment(ws, comments, display_id, comment_id)
    return comments.update(comment.id, _comment_body(body))


def delete_comment(ws: Workspace, comments: TicketComments, display_id: DisplayId, comment_id: int) -> None:
    comments.delete(_own_comment(ws, comments, display_id, comment_id).id)


def add_link(ws: Workspace, links: TicketLinks, display_id: DisplayId, kind: str, target: str) -> Link:
    """Link this ticket (which the caller writes) to ``target`` (which it reads)."""
    try:
        link_kind = LinkKind(kind)
    except ValueError as exc:
        raise InvalidInput("kind must be relates_to, blocks or duplicates", field="kind") from exc
    source = _writable_ticket(ws, display_id)
    target_record = get_record(ws, DisplayId.parse(target))
    if target_record.type is not RecordType.TICKET:
        raise InvalidInput(f"{target} is a {target_record.type.value}, not a ticket", field="target")
    if target_record.id == source.id:
        raise InvalidInput("a ticket cannot be linked to itself", field="target")
    link_id = links.add(ws.org_id, source.id, target_record.id, link_kind, ws.principal.user_id)
    return links.readable(ws.principal.user_id, ws.org_id, source.id, link_id=link_id)[0]


def list_links(ws: Workspace, links: TicketLinks, display_id: DisplayId) -> list[Link]:
    ticket = readable_ticket(ws, display_id)
    return links.readable(ws.principal.user_id, ws.org_id, ticket.id)


def delete_link(ws: Workspace, links: TicketLinks, display_id: DisplayId, link_id: int) -> None:
    ticket = readable_ticket(ws, display_id)
    if not links.readable(ws.principal.user_id, ws.org_id, ticket.id, link_id=link_id):
        raise NotFound("link not found")
    _writable_ticket(ws, display_id)
    links.delete(link_id)
