"""Organisations, their members and server admins (SPEC §1).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from tow_core.access import (
    OrgRole,
    Principal,
    can_administer_org,
    is_org_owner,
    is_server_admin,
)
from tow_core.administration._guards import (
    _audit,
    _enum,
    _existing_member,
    _require_manager,
    _require_member,
    _require_server_admin,
    _without_secrets,
)
from tow_core.audit import AuditAction
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tow_core.identity import (
    Accounts,
    Directory,
    Member,
    Memberships,
    Organisation,
    User,
    WorkflowMode,
    clean_name,
)


def create_organisation(
    directory: Directory, principal: Principal, *, name: str,
    workflow_mode: WorkflowMode | str = WorkflowMode.ORGANIZATION,
) -> Organisation:
    """Server admins only; the creator becomes the organisation's owner (SPEC §1)."""
    _require_server_admin(principal)
    mode = _enum(WorkflowMode, workflow_mode, "workflow_mode")
    organisation = directory.add_organisation(clean_name(name, "name"), mode)
    directory.set_membership(organisation.id, principal.user_id, OrgRole.OWNER)
    _audit(directory, principal, organisation.id, AuditAction.MEMBER_JOINED, f"user:{principal.user_id}",
           role=OrgRole.OWNER.value, via="organisation created")
    return organisation


def get_organisation(directory: Memberships, principal: Principal, *, org_id: int) -> Organisation:
    """Any active member; NotFound for everyone else, server admins included."""
    _require_member(principal, org_id)
    organisation = directory.organisation(org_id)
    if organisation is None:
        raise NotFound("organisation not found")
    return organisation


def update_organisation(
    directory: Directory, principal: Principal, *, org_id: int, name: str | None = None,
    workflow_mode: WorkflowMode | str | None = None, require_second_reviewer: bool | None = None,
) -> Organisation:
    """Owners/admins rename it, change its workflow mode (which only changes prompt framing) and its memory
    review rule ``memory.require_second_reviewer`` (audited: who turned it on or off, when)."""
    _require_manager(principal, org_id)
    current = get_organisation(directory, principal, org_id=org_id)
    new_name = clean_name(name, "name") if name is not None else current.name
    mode = _enum(WorkflowMode, workflow_mode, "workflow_mode") if workflow_mode is not None else current.workflow_mode
    if require_second_reviewer is not None and not isinstance(require_second_reviewer, bool):
        raise InvalidInput("require_second_reviewer must be true or false", field="require_second_reviewer")
    second = current.require_second_reviewer if require_second_reviewer is None else require_second_reviewer
    updated = directory.update_organisation(org_id, name=new_name, workflow_mode=mode, require_second_reviewer=second)
    if second != current.require_second_reviewer:
        _audit(directory, principal, org_id, AuditAction.ORGANISATION_SETTING_CHANGED, f"organisation:{org_id}",
               setting="memory.require_second_reviewer", old=current.require_second_reviewer, new=second)
    return updated


# --- members ----------------------------------------------------------------------------------


def list_members(directory: Memberships, principal: Principal, *, org_id: int) -> list[Member]:
    """Any member sees the organisation's members and their roles."""
    _require_member(principal, org_id)
    return list(directory.members(org_id))


def _guard_owner_role(
    directory: Memberships, principal: Principal, org_id: int, target: Member, new_role: OrgRole | None,
) -> None:
    """Only an owner grants or removes the owner role; the last active owner keeps it (SPEC §1).
    ``new_role`` None means the target leaves the organisation."""
    if target.changes_owner_role(new_role) and not is_org_owner(principal, org_id):
        raise AccessDenied("only an owner may grant or remove the owner role")
    if target.role is not OrgRole.OWNER or new_role is OrgRole.OWNER:
        return
    directory.lock_owners(org_id)  # two owners demoting each other at once: the second sees the first
    if target.would_leave_no_owner(new_role, directory.count_owners(org_id)):
        raise Conflict("the organisation must keep at least one active owner: make someone else owner first")


def change_member_role(
    directory: Directory, principal: Principal, *, org_id: int, user_id: int, role: OrgRole | str,
) -> Member:
    """Owners/admins change a member's role; only an owner may change a role to or from owner, and the
    organisation keeps at least one active owner (Conflict)."""
    _require_manager(principal, org_id)
    new_role = _enum(OrgRole, role, "role")
    target = _existing_member(directory, org_id, user_id)
    _guard_owner_role(directory, principal, org_id, target, new_role)
    directory.set_membership(org_id, user_id, new_role)
    _audit(directory, principal, org_id, AuditAction.MEMBER_ROLE_CHANGED, f"user:{user_id}",
           old=target.role.value, new=new_role.value)
    return replace(target, role=new_role)


def remove_member(directory: Directory, principal: Principal, *, org_id: int, user_id: int) -> None:
    """Owners/admins remove members (only an owner removes an owner); any member may leave. The last
    active owner can do neither. Their group memberships and direct grants here go with them."""
    _require_member(principal, org_id)
    if user_id != principal.user_id:
        _require_manager(principal, org_id)
    target = _existing_member(directory, org_id, user_id)
    _guard_owner_role(directory, principal, org_id, target, None)
    directory.remove_membership(org_id, user_id)
    _audit(directory, principal, org_id, AuditAction.MEMBER_REMOVED, f"user:{user_id}", role=target.role.value)


def set_user_active(
    directory: Directory, principal: Principal, *, org_id: int, user_id: int, active: bool, now: datetime,
) -> Member:
    """Deactivates (or reactivates) a member's account: a deactivated account cannot sign in and every session
    it has ends at once; its records, memberships and grants are kept (SPEC §1). The account is the person's
    in every organisation they belong to, so the caller must be an owner/admin of each of them (else
    AccessDenied: remove them from this organisation instead), and for each the owner rules hold (only an
    owner deactivates an owner; never the last active one). A server admin is deactivated only by a server
    admin, never the last one. Nobody deactivates themselves. Audited in this organisation."""
    _require_manager(principal, org_id)
    target = _existing_member(directory, org_id, user_id)
    if user_id == principal.user_id:
        raise Conflict("you cannot deactivate your own account", field="user_id")
    if active is target.is_active:
        return target
    if not active:
        _guard_deactivation(directory, principal, user_id)
    directory.set_active(user_id, active)
    if active:
        _audit(directory, principal, org_id, AuditAction.USER_REACTIVATED, f"user:{user_id}")
        return replace(target, is_active=True)
    signed_out = directory.revoke_user_sessions(user_id, now)
    _audit(directory, principal, org_id, AuditAction.USER_DEACTIVATED, f"user:{user_id}", sessions_ended=signed_out)
    return replace(target, is_active=False)


def _guard_deactivation(directory: Directory, principal: Principal, user_id: int) -> None:
    for organisation, _ in directory.organisations_of(user_id):
        if not can_administer_org(principal, organisation.id):
            raise AccessDenied("they also belong to an organisation you do not manage: remove them from this "
                               "organisation instead")
        _guard_owner_role(directory, principal, organisation.id,
                          _existing_member(directory, organisation.id, user_id), None)
    user = directory.user(user_id)
    if user is None or not user.is_server_admin:
        return
    if not is_server_admin(principal):
        raise AccessDenied("only a server admin may deactivate a server admin")
    directory.lock_server_admins()
    if len(directory.server_admins()) <= 1:
        raise Conflict("the server must keep at least one server admin: make someone else server admin first")


# --- server admins ----------------------------------------------------------------------------


def list_server_admins(directory: Accounts, principal: Principal) -> list[User]:
    """Server admins see the active server admins (password hashes stripped)."""
    _require_server_admin(principal)
    return [_without_secrets(u) for u in directory.server_admins()]


def set_server_admin(directory: Directory, principal: Principal, user_id: int, value: bool) -> User:
    """Server admins grant or revoke server admin; never the last active one (Conflict), and never to a
    deactivated user (Conflict)."""
    _require_server_admin(principal)
    user = directory.user(user_id)
    if user is None:
        raise NotFound("user not found")
    if value and not user.is_active:
        raise Conflict("a deactivated user cannot become server admin", field="user_id")
    if not value:
        directory.lock_server_admins()  # two admins revoking each other at once: the second sees the first
    if not value and user.is_server_admin and user.is_active and len(directory.server_admins()) <= 1:
        raise Conflict("the server must keep at least one server admin: make someone else server admin first")
    directory.set_server_admin(user_id, bool(value))
    action = AuditAction.SERVER_ADMIN_GRANTED if value else AuditAction.SERVER_ADMIN_REVOKED
    _audit(directory, principal, None, action, f"user:{user_id}")
    return _without_secrets(replace(user, is_server_admin=bool(value)))
