"""Invites: owners/admins invite people into an organisation with a role (SPEC §1)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import msgspec
from litestar import Router, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from tow_core import accounts
from tow_core.access import OrgRole
from tow_core.identity import Invite
from tow_http.context import Services, SignedIn, in_unit_of_work
from tow_http.shapes import Email, MeOut, Strict, me_out

# Bounded here, not only by the core's policy: a larger number overflows the date arithmetic before it.
MAX_INVITE_HOURS = accounts.InvitePolicy().max_lifetime // timedelta(hours=1)


class InviteIn(Strict):
    role: OrgRole = OrgRole.MEMBER
    email: Email | None = None
    expires_in_hours: Annotated[int, msgspec.Meta(ge=1, le=MAX_INVITE_HOURS)] = 7 * 24


class InviteOut(msgspec.Struct):
    id: int
    organisation_id: int
    role: str
    email: str | None
    state: str
    created_at: datetime
    expires_at: datetime


class CreatedInviteOut(msgspec.Struct):
    invite: InviteOut
    token: str
    accept_url: str


class AcceptIn(Strict):
    token: str


def invite_out(invite: Invite, now: datetime) -> InviteOut:
    return InviteOut(
        invite.id,
        invite.organisation_id,
        invite.role.value,
        invite.email,
        invite.state(now).value,
        invite.created_at,
        invite.expires_at,
    )


@post(
    "/organisations/{org_id:int}/invites",
    summary="Create an invite",
    description="Owners and admins; only owners may invite owners. Optional `email` binds the invite to that "
    "address. Expires after `expires_in_hours` (default 168 = 7 days, at most 720). The token is shown "
    "**once**: only its hash is stored.",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
)
@in_unit_of_work
def create_invite(
    org_id: int, data: JSONBody[InviteIn], signed_in: NamedDependency[SignedIn], services: NamedDependency[Services]
) -> CreatedInviteOut:
    token = services.cookie_signer.new_token()
    invite = accounts.create_invite(
        signed_in.directory,
        signed_in.principal,
        org_id=org_id,
        token_hash=services.cookie_signer.token_hash(token),
        role=data.role,
        email=data.email,
        now=signed_in.now,
        lifetime=timedelta(hours=data.expires_in_hours),
    )
    base = services.settings.runtime.public_app_url.rstrip("/")
    return CreatedInviteOut(invite_out(invite, signed_in.now), token, f"{base}/invite/{token}")


@get("/organisations/{org_id:int}/invites", summary="List invites (owners/admins)", sync_to_thread=True)
@in_unit_of_work
def list_invites(org_id: int, signed_in: NamedDependency[SignedIn]) -> list[InviteOut]:
    invites = accounts.list_invites(signed_in.directory, signed_in.principal, org_id=org_id)
    return [invite_out(i, signed_in.now) for i in invites]


@delete(
    "/organisations/{org_id:int}/invites/{invite_id:int}",
    summary="Revoke an invite (owners/admins)",
    description="A revoked invite can no longer be used; 409 when it is already used, expired or revoked.",
    status_code=HTTP_204_NO_CONTENT,
    sync_to_thread=True,
)
@in_unit_of_work
def revoke_invite(org_id: int, invite_id: int, signed_in: NamedDependency[SignedIn]) -> None:
    accounts.revoke_invite(
        signed_in.directory, signed_in.principal, org_id=org_id, invite_id=invite_id, now=signed_in.now
    )


@post(
    "/invites/accept",
    summary="Accept an invite as a signed-in user",
    description="Joins the invite's organisation (an existing higher role is kept). Distinct errors for "
    "unknown (404), expired/revoked/used (409) and email-mismatched (403) invites.",
    status_code=HTTP_200_OK,
    sync_to_thread=True,
)
@in_unit_of_work
def accept_invite(
    data: JSONBody[AcceptIn], signed_in: NamedDependency[SignedIn], services: NamedDependency[Services]
) -> MeOut:
    invite = accounts.accept_invite(
        signed_in.directory,
        signed_in.principal,
        token_hash=services.cookie_signer.token_hash(data.token),
        now=signed_in.now,
    )
    return me_out(signed_in.directory, signed_in.principal.user_id, invite.organisation_id)


invites_router = Router(
    path="/api", route_handlers=[create_invite, list_invites, revoke_invite, accept_invite], tags=["invites"]
)
