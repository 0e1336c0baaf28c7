"""Organisations, their members and groups (SPEC §1). Rules live in ``tow_core.administration``."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from tow_core.access import OrgRole
from tow_core.identity import Group, Member, Organisation, WorkflowMode
from tow_core.unit_of_work import Credential
from tow_core.use_cases.administration import OrganisationUseCases
from tow_http.shapes import Name, Strict

_NOT_VISIBLE = (
    "404 when you are not an active member of the organisation (server admins included: server admin grants no "
    "organisation role)."
)


# --- shapes -----------------------------------------------------------------------------------


class OrganisationIn(Strict):
    name: Name
    workflow_mode: WorkflowMode = WorkflowMode.ORGANIZATION


class OrganisationPatch(Strict):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    workflow_mode: WorkflowMode | msgspec.UnsetType = msgspec.UNSET
    require_second_reviewer: bool | msgspec.UnsetType = msgspec.UNSET


class OrganisationOut(msgspec.Struct):
    id: int
    name: str
    workflow_mode: str
    require_second_reviewer: Annotated[bool, msgspec.Meta(
        description="`memory.require_second_reviewer`: when true, nobody approves a memory diff they proposed or "
        "that an agent run of theirs proposed (they may still reject it)")] = False


class MemberOut(msgspec.Struct):
    user_id: int
    email: str
    display_name: str
    role: str
    is_active: bool


class MemberRoleIn(Strict):
    role: OrgRole


class MemberActiveIn(Strict):
    active: bool


class GroupIn(Strict):
    name: Name


class GroupOut(msgspec.Struct):
    id: int
    organisation_id: int
    name: str
    member_ids: list[int]


def unset_to_none(value: object) -> object:
    """PATCH: an absent field leaves the value alone, which the use cases spell ``None``."""
    return None if value is msgspec.UNSET else value


def organisation_out(organisation: Organisation) -> OrganisationOut:
    return OrganisationOut(organisation.id, organisation.name, organisation.workflow_mode.value,
                           organisation.require_second_reviewer)


def member_out(member: Member) -> MemberOut:
    return MemberOut(member.user_id, member.email, member.display_name, member.role.value, member.is_active)


def group_out(group: Group) -> GroupOut:
    return GroupOut(group.id, group.organisation_id, group.name, list(group.member_ids))


# --- organisations ----------------------------------------------------------------------------


@post(
    "/organisations",
    summary="Create an organisation (server admins)",
    description="Only server admins create organisations; the creator becomes its **owner**. `workflow_mode` "
    "(`founder` or `organization`, default `organization`) only changes prompt framing, never data.",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
)
def create_organisation(
    data: JSONBody[OrganisationIn], caller: NamedDependency[Credential],
    organisations: NamedDependency[OrganisationUseCases],
) -> OrganisationOut:
    return organisation_out(organisations.create_organisation(caller, name=data.name, workflow_mode=data.workflow_mode))


@get(
    "/organisations/{org_id:int}",
    summary="An organisation",
    description=f"Any member. {_NOT_VISIBLE}",
    sync_to_thread=True,
)
def get_organisation(
    org_id: int, caller: NamedDependency[Credential], organisations: NamedDependency[OrganisationUseCases],
) -> OrganisationOut:
    return organisation_out(organisations.organisation(caller, org_id))


@patch(
    "/organisations/{org_id:int}",
    summary="Rename an organisation or change its settings",
    description="Owners and admins. Absent fields are left unchanged. Changing `workflow_mode` changes prompt "
    "framing only; it never rewrites data. `require_second_reviewer` (the organisation setting "
    "`memory.require_second_reviewer`, default false) makes memory review a four-eyes step: when true, approving a "
    "memory diff you proposed — or that an agent run of yours (a memory extraction) proposed — is refused with "
    "403; rejecting it stays allowed. Turning it on or off is written to the audit log "
    f"(`organisation.setting_changed`). {_NOT_VISIBLE}",
    sync_to_thread=True,
)
def update_organisation(
    org_id: int, data: JSONBody[OrganisationPatch], caller: NamedDependency[Credential],
    organisations: NamedDependency[OrganisationUseCases],
) -> OrganisationOut:
    organisation = organisations.update_organisation(
        caller, org_id, name=unset_to_none(data.name), workflow_mode=unset_to_none(data.workflow_mode),
        require_second_reviewer=unset_to_none(data.require_second_reviewer),
    )
    return organisation_out(organisation)


# --- members ----------------------------------------------------------------------------------


@get(
    "/organisations/{org_id:int}/members",
    summary="Members and their roles",
    description=f"Any member. {_NOT_VISIBLE}",
    sync_to_thread=True,
)
def list_members(
    org_id: int, caller: NamedDependency[Credential], organisations: NamedDependency[OrganisationUseCases],
) -> list[MemberOut]:
    return [member_out(m) for m in organisations.members(caller, org_id)]


@patch(
    "/organisations/{org_id:int}/members/{user_id:int}",
    summary="Change a member's role",
    description="Owners and admins. Only an **owner** may grant or remove the `owner` role (403 otherwise), and "
    "the organisation always keeps at least one active owner (409: make someone else owner first). 404 when "
    f"the user is not a member of this organisation. {_NOT_VISIBLE}",
    sync_to_thread=True,
)
def change_member_role(
    org_id: int, user_id: int, data: JSONBody[MemberRoleIn], caller: NamedDependency[Credential],
    organisations: NamedDependency[OrganisationUseCases],
) -> MemberOut:
    return member_out(organisations.change_member_role(caller, org_id, user_id, data.role))


@delete(
    "/organisations/{org_id:int}/members/{user_id:int}",
    summary="Remove a member, or leave",
    description="Owners and admins remove members (only an owner removes an owner); any member may remove "
    "themselves (leave). The last active owner can do neither (409). The member's group memberships and direct "
    "project grants in this organisation go with them, and they lose access on their very next request.",
    status_code=HTTP_204_NO_CONTENT,
    sync_to_thread=True,
)
def remove_member(
    org_id: int, user_id: int, caller: NamedDependency[Credential],
    organisations: NamedDependency[OrganisationUseCases],
) -> None:
    organisations.remove_member(caller, org_id, user_id)


@put(
    "/organisations/{org_id:int}/members/{user_id:int}/active",
    summary="Deactivate or reactivate a member's account",
    description="Owners and admins. `active: false` deactivates the account: it cannot sign in and **every session "
    "it has ends at once**; its records, memberships and grants are kept (the access review lists its grants). "
    "The account is the person's in every organisation they belong to, so you must be an owner or admin of each "
    "(403 otherwise: remove them from this organisation instead). Only an owner deactivates an owner, never the "
    "last active owner of an organisation (409); only a server admin deactivates a server admin, never the last "
    f"one (409); nobody deactivates themselves (409). Idempotent. 404 for a user who is not a member. {_NOT_VISIBLE}",
    sync_to_thread=True,
)
def set_member_active(
    org_id: int, user_id: int, data: JSONBody[MemberActiveIn], caller: NamedDependency[Credential],
    organisations: NamedDependency[OrganisationUseCases],
) -> MemberOut:
    return member_out(organisations.set_member_active(caller, org_id, user_id, data.active))


# --- groups -----------------------------------------------------------------------------------


@get(
    "/organisations/{org_id:int}/groups",
    summary="Groups and who is in them",
    description=f"Any member. {_NOT_VISIBLE}",
    sync_to_thread=True,
)
def list_groups(
    org_id: int, caller: NamedDependency[Credential], organisations: NamedDependency[OrganisationUseCases],
) -> list[GroupOut]:
    return [group_out(g) for g in organisations.groups(caller, org_id)]


@post(
    "/organisations/{org_id:int}/groups",
    summary="Create a group",
    description="Owners and admins. Names are unique in the organisation, case-insensitively (409). Groups are "
    "used for project grants and as a knowledge scope.",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
)
def create_group(
    org_id: int, data: JSONBody[GroupIn], caller: NamedDependency[Credential],
    organisations: NamedDependency[OrganisationUseCases],
) -> GroupOut:
    return group_out(organisations.create_group(caller, org_id, data.name))


@patch(
    "/organisations/{org_id:int}/groups/{group_id:int}",
    summary="Rename a group",
    description="Owners and admins. 404 for a group that is not in this organisation; 409 for a name in use.",
    sync_to_thread=True,
)
def rename_group(
    org_id: int, group_id: int, data: JSONBody[GroupIn], caller: NamedDependency[Credential],
    organisations: NamedDependency[OrganisationUseCases],
) -> GroupOut:
    return group_out(organisations.rename_group(caller, org_id, group_id, data.name))


@delete(
    "/organisations/{org_id:int}/groups/{group_id:int}",
    summary="Delete a group",
    description="Owners and admins. The group's project grants go with it: its members lose what it granted "
    "on their very next request.",
    status_code=HTTP_204_NO_CONTENT,
    sync_to_thread=True,
)
def delete_group(
    org_id: int, group_id: int, caller: NamedDependency[Credential],
    organisations: NamedDependency[OrganisationUseCases],
) -> None:
    organisations.delete_group(caller, org_id, group_id)


@put(
    "/organisations/{org_id:int}/groups/{group_id:int}/members/{user_id:int}",
    summary="Add a member to a group",
    description="Owners and admins; idempotent. The user must be a member of this organisation (422 on "
    "`user_id`); the group must be in it (404).",
    sync_to_thread=True,
)
def add_group_member(
    org_id: int, group_id: int, user_id: int, caller: NamedDependency[Credential],
    organisations: NamedDependency[OrganisationUseCases],
) -> GroupOut:
    return group_out(organisations.add_group_member(caller, org_id, group_id, user_id))


@delete(
    "/organisations/{org_id:int}/groups/{group_id:int}/members/{user_id:int}",
    summary="Remove a member from a group",
    description="Owners and admins; 404 when the user is not in the group. What the group granted them is gone "
    "on their very next request.",
    status_code=HTTP_204_NO_CONTENT,
    sync_to_thread=True,
)
def remove_group_member(
    org_id: int, group_id: int, user_id: int, caller: NamedDependency[Credential],
    organisations: NamedDependency[OrganisationUseCases],
) -> None:
    organisations.remove_group_member(caller, org_id, group_id, user_id)


organisations_router = Router(
    path="/api",
    route_handlers=[
        create_organisation,
        get_organisation,
        update_organisation,
        list_members,
        change_member_role,
        remove_member,
        set_member_active,
        list_groups,
        create_group,
        rename_group,
        delete_group,
        add_group_member,
        remove_group_member,
    ],
    tags=["organisations"],
)
