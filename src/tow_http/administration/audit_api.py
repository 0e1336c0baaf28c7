"""The audit log over HTTP: owners/admins read their organisation's, server admins the server's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Router, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from tow_core.audit import AuditAction, AuditEntry, AuditQuery, audit_actions
from tow_core.unit_of_work import Credential
from tow_core.use_cases.administration import OrganisationUseCases

Actions = Annotated[list[AuditAction] | None, QueryParameter(name="action",
                                                            description="e.g. grant.removed; repeatable")]
ActorId = Annotated[int | None, QueryParameter(name="actor_id")]
Target = Annotated[str | None, QueryParameter(name="target", description='e.g. "project:3", "user:12", "DOC-7"')]
# Decoded by msgspec, which also reads a number as Unix seconds: the document says so.
_INSTANT = {"oneOf": [{"type": "string", "format": "date-time"},
                      {"type": "number", "minimum": -62135596800, "exclusiveMaximum": 253402300800},  # years 1–9999
                      {"type": "null"}]}
Since = Annotated[datetime | None, QueryParameter(name="since", description="RFC 3339 date-time or Unix seconds",
                                                  schema_extra=_INSTANT)]
Until = Annotated[datetime | None, QueryParameter(name="until", description="RFC 3339 date-time or Unix seconds",
                                                  schema_extra=_INSTANT)]
Cursor = Annotated[str | None, QueryParameter(name="cursor")]
Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=200)]


class AuditEntryOut(msgspec.Struct):
    id: int
    organisation_id: int | None
    actor_id: int | None
    action: str
    target: str
    details: dict[str, Any]
    created_at: datetime


class AuditPageOut(msgspec.Struct):
    items: list[AuditEntryOut]
    next_cursor: str | None


def entry_out(entry: AuditEntry) -> AuditEntryOut:
    assert entry.id is not None and entry.created_at is not None
    return AuditEntryOut(entry.id, entry.organisation_id, entry.actor_id, entry.action.value, entry.target,
                         dict(entry.details), entry.created_at)


def _page(organisations: OrganisationUseCases, caller: Credential, org_id: int | None, actions, actor_id,
          target, since, until, cursor, limit) -> AuditPageOut:
    query = AuditQuery(audit_actions(actions), actor_id, target, since, until)
    entries, next_cursor = organisations.audit(caller, org_id, query, cursor=cursor, limit=limit)
    return AuditPageOut([entry_out(e) for e in entries], next_cursor)


DESCRIPTION = (
    "Newest first, with a cursor. Recorded in the same transaction as the change: membership and role "
    "changes, invites, groups and their members, project creation, visibility and status changes, grants, "
    "record deletes and scope moves, memory diff decisions, snapshot activations. Never record contents."
)


@get("/organisations/{org_id:int}/audit", summary="Organisation audit log (owners/admins)",
     description=DESCRIPTION, sync_to_thread=True)
def organisation_audit(
    org_id: int, caller: NamedDependency[Credential], organisations: NamedDependency[OrganisationUseCases],
    actions: Actions = None, actor_id: ActorId = None,
    target: Target = None, since: Since = None, until: Until = None, cursor: Cursor = None, limit: Limit = 50,
) -> AuditPageOut:
    return _page(organisations, caller, org_id, actions, actor_id, target, since, until, cursor, limit)


@get("/server/audit", summary="Server audit log (server admins)",
     description="Server-level changes (server admin granted or revoked). " + DESCRIPTION, sync_to_thread=True)
def server_audit(
    caller: NamedDependency[Credential], organisations: NamedDependency[OrganisationUseCases],
    actions: Actions = None, actor_id: ActorId = None, target: Target = None,
    since: Since = None, until: Until = None, cursor: Cursor = None, limit: Limit = 50,
) -> AuditPageOut:
    return _page(organisations, caller, None, actions, actor_id, target, since, until, cursor, limit)


audit_router = Router(path="/api", route_handlers=[organisation_audit, server_audit], tags=["audit"])
