"""msgspec response shapes shared by several routers, and the small mappers from core types."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.params import QueryParameter

from tow_core import accounts
from tow_core.access import Scope
from tow_core.identity import Directory


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for request bodies: unknown fields are an error naming the field."""


class MembershipOut(msgspec.Struct):
    organisation_id: int
    organisation_name: str
    role: str
    workflow_mode: str


class MeOut(msgspec.Struct):
    id: int
    email: str
    display_name: str
    is_server_admin: bool
    active_organisation_id: int | None
    memberships: list[MembershipOut]


def me_out(directory: Directory, user_id: int, active_organisation_id: int | None) -> MeOut:
    """The "me" answer for ``user_id`` (signed in or just registered), read through ``accounts``."""
    user, organisations = accounts.account_overview(directory, user_id)
    memberships = [
        MembershipOut(org.id, org.name, role.value, org.workflow_mode.value) for org, role in organisations
    ]
    member_of = [m.organisation_id for m in memberships]
    if active_organisation_id not in member_of:  # never, or no longer, a member: fall back
        active_organisation_id = member_of[0] if member_of else None
    return MeOut(user.id, user.email, user.display_name, user.is_server_admin, active_organisation_id, memberships)


# --- shared by several areas: scopes and paging -------------------------------------------------


Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=200, description="page size (1–200)")]


Cursor = Annotated[str | None, QueryParameter(name="cursor", description="from the previous page's next_cursor")]


class ScopeIn(Strict):
    kind: str
    id: int | None = None


class ScopeOut(msgspec.Struct):
    kind: str
    id: int


def scope_out(scope: Scope) -> ScopeOut:
    return ScopeOut(scope.kind.value, scope.ref_id)
