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
from tow_core.identity import Invite, InviteState
from tow_core.unit_of_work import Credential
from tow_core.use_cases.administration import JoinedAccount, OrganisationUseCases
from tow_http.config import Settings
from tow_http.shapes import Email, MembershipOut, MeOut, Strict

# Bounded here, not only by the core's policy: a larger number overflows the date arithmetic before it.
MAX_INVITE_HOURS = accounts.InvitePolicy().max_lifetime // timedelta(hours=1)


class InviteIn(Strict):
    role: OrgRole = OrgRole.MEMBER
    email: Email | None = None
    expires_in_hours: Annotated[int, msgspec.Meta(ge=1, le=MAX_INVITE_HOURS)] = 7 * 24
    send_email: bool = False


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
    emailed: bool


class AcceptIn(Strict):
    token: str


def invite_out(invite: Invite, state: InviteState) -> InviteOut:
    return InviteOut(
        invite.id,
        invite.organisation_id,
        invite.role.value,
        invite.email,
        state.value,
        invite.created_at,
        invite.expires_at,
    )


def joined_out(joined: JoinedAccount) -> MeOut:
    """The "me" answer after joining: the organisation just joined is the active one."""
    user = joined.user
    memberships = [MembershipOut(org.id, org.name, role.value, org.workflow_mode.value)
                   for org, role in joined.organisations]
    member_of = [m.organisation_id for m in memberships]
    active = joined.organisation_id if joined.organisation_id in member_of else (member_of[0] if member_of else None)
    return MeOut(user.id, user.email, user.display_name, user.is_server_admin, active, memberships)


@post(
    "/organisations/{org_id:int}/invites",
    summary="Create an invite",
    description="Owners and admins; only owners may invite owners. Optional `email` binds the invite to that "
    "address; with `send_email: true` (which needs `email`) the accept link is also emailed there, queued with the "
    "invite and sent by the email worker (`emailed` says so; 422 `invalid_input` on `email` without an address). "
    "Expires after `expires_in_hours` (default 168 = 7 days, at most 720). The token is shown "
    "**once**: only its hash is stored.",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
)
def create_invite(
    org_id: int, data: JSONBody[InviteIn], caller: NamedDependency[Credential],
    organisations: NamedDependency[OrganisationUseCases], settings: NamedDependency[Settings],
) -> CreatedInviteOut:
    created = organisations.create_invite(caller, org_id, role=data.role, email=data.email,
                                          lifetime=timedelta(hours=data.expires_in_hours), send_email=data.send_email)
    base = settings.runtime.public_app_url.rstrip("/")
    return CreatedInviteOut(invite_out(created.invite, created.state), created.token,
                            f"{base}/invite/{created.token}", created.emailed)


@get("/organisations/{org_id:int}/invites", summary="List invites (owners/admins)", sync_to_thread=True)
def list_invites(
    org_id: int, caller: NamedDependency[Credential], organisations: NamedDependency[OrganisationUseCases],
) -> list[InviteOut]:
    return [invite_out(i.invite, i.state) for i in organisations.invites(caller, org_id)]


@delete(
    "/organisations/{org_id:int}/invites/{invite_id:int}",
    summary="Revoke an invite (owners/admins)",
    description="A revoked invite can no longer be used; 409 when it is already used, expired or revoked.",
    status_code=HTTP_204_NO_CONTENT,
    sync_to_thread=True,
)
def revoke_invite(
    org_id: int, invite_id: int, caller: NamedDependency[Credential],
    organisations: NamedDependency[OrganisationUseCases],
) -> None:
    organisations.revoke_invite(caller, org_id, invite_id)


@post(
    "/invites/accept",
    summary="Accept an invite as a signed-in user",
    description="Joins the invite's organisation (an existing higher role is kept). Distinct errors for "
    "unknown (404), expired/revoked/used (409) and email-mismatched (403) invites.",
    status_code=HTTP_200_OK,
    sync_to_thread=True,
)
def accept_invite(
    data: JSONBody[AcceptIn], caller: NamedDependency[Credential],
    organisations: NamedDependency[OrganisationUseCases],
) -> MeOut:
    return joined_out(organisations.accept_invite(caller, data.token))


invites_router = Router(
    path="/api", route_handlers=[create_invite, list_invites, revoke_invite, accept_invite], tags=["invites"]
)
