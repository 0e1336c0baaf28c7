"""The guards every administration use case shares: who is a member or manager, and which ids belong
to the organisation named in the request (SPEC §2 "Every ID is checked").
"""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from typing import TypeVar

from tow_core.access import (
    OrgRole,
    Principal,
    can_administer_org,
    can_read_project,
    is_server_admin,
)
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import AccessDenied, InvalidInput, NotFound
from tow_core.identity import (
    AuditTrail,
    Directory,
    Group,
    GroupRoster,
    Member,
    Memberships,
    Project,
    ProjectGrants,
    User,
)

MAX_DESCRIPTION_LENGTH = 10_000
_E = TypeVar("_E", bound=Enum)


class Unchanged(Enum):
    """Marks a PATCH field left alone where ``None`` is itself a value (``lead_user_id=None`` clears)."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


# --- guards -----------------------------------------------------------------------------------


def _require_member(principal: Principal, org_id: int) -> OrgRole:
    """The caller's role; NotFound for an organisation they are not an active member of."""
    role = principal.org_roles.get(org_id) if principal.is_active else None
    if role is None:
        raise NotFound("organisation not found")
    return role


def _require_manager(principal: Principal, org_id: int) -> None:
    _require_member(principal, org_id)
    if not can_administer_org(principal, org_id):
        raise AccessDenied("only organisation owners and admins may do this")


def _require_server_admin(principal: Principal) -> None:
    if not is_server_admin(principal):
        raise AccessDenied("only server admins may do this")


def _enum(kind: type[_E], value: object, field: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in kind)
        raise InvalidInput(f"{field} must be one of: {allowed}", field=field) from None


def _org_group(directory: GroupRoster, org_id: int, group_id: int) -> Group:
    group = directory.group(group_id)
    if group is None or group.organisation_id != org_id:
        raise NotFound("group not found")
    return group


def _org_project(directory: ProjectGrants, org_id: int, project_id: int) -> Project:
    project = directory.project(project_id)
    if project is None or project.organisation_id != org_id:
        raise NotFound("project not found")
    return project


def _readable_project(directory: Directory, principal: Principal, org_id: int, project_id: int) -> Project:
    """The project, if it is in ``org_id`` and the caller reads it; NotFound otherwise (SPEC §2: 404)."""
    _require_member(principal, org_id)
    project = _org_project(directory, org_id, project_id)
    if not can_read_project(principal, project.access):
        raise NotFound("project not found")
    return project


def _managed_project(directory: Directory, principal: Principal, org_id: int, project_id: int) -> Project:
    project = _readable_project(directory, principal, org_id, project_id)
    if not project.managed_by(principal):
        raise AccessDenied("only the project's leads/admins and organisation owners/admins may manage it")
    return project


def _find_member(directory: Memberships, org_id: int, user_id: int) -> Member | None:
    return next((m for m in directory.members(org_id) if m.user_id == user_id), None)


def _existing_member(directory: Directory, org_id: int, user_id: int) -> Member:
    member = _find_member(directory, org_id, user_id)
    if member is None:
        raise NotFound("member not found")
    return member


def _named_member(directory: Directory, org_id: int, user_id: int, field: str) -> Member:
    """A person named as group member, grantee or lead must belong to the organisation."""
    member = _find_member(directory, org_id, user_id)
    if member is None:
        raise InvalidInput(f"{field} must name a member of this organisation", field=field)
    return member


def _without_secrets(user: User) -> User:
    return replace(user, password_hash=None)


def _audit(directory: AuditTrail, principal: Principal, org_id: int | None, action: AuditAction, target: str,
           **details: object) -> None:
    directory.audit(AuditEntry(org_id, principal.user_id, action, target, details))
