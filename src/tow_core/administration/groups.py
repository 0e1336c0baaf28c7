"""Groups: named sets of an organisation's members, managed by owners/admins (SPEC §1).
"""

from __future__ import annotations

from tow_core.access import (
    Principal,
)
from tow_core.administration._guards import (
    _audit,
    _named_member,
    _org_group,
    _require_manager,
    _require_member,
)
from tow_core.audit import AuditAction
from tow_core.errors import NotFound
from tow_core.identity import (
    Directory,
    Group,
    GroupRoster,
    clean_name,
)

# --- groups -----------------------------------------------------------------------------------


def list_groups(directory: GroupRoster, principal: Principal, *, org_id: int) -> list[Group]:
    """Any member sees the groups and who is in them."""
    _require_member(principal, org_id)
    return list(directory.groups(org_id))


def create_group(directory: Directory, principal: Principal, *, org_id: int, name: str) -> Group:
    """Owners/admins; names are unique in the organisation, case-insensitively (Conflict)."""
    _require_manager(principal, org_id)
    group = directory.add_group(org_id, clean_name(name, "name"))
    _audit(directory, principal, org_id, AuditAction.GROUP_CREATED, f"group:{group.id}", name=group.name)
    return group


def rename_group(directory: Directory, principal: Principal, *, org_id: int, group_id: int, name: str) -> Group:
    """Owners/admins; the group must belong to the organisation. Audited with the old and new name."""
    _require_manager(principal, org_id)
    group = _org_group(directory, org_id, group_id)
    renamed = directory.rename_group(group_id, clean_name(name, "name"))
    if renamed.name != group.name:
        _audit(directory, principal, org_id, AuditAction.GROUP_RENAMED, f"group:{group_id}", old=group.name,
               new=renamed.name)
    return renamed


def delete_group(directory: Directory, principal: Principal, *, org_id: int, group_id: int) -> None:
    """Owners/admins; the group's project grants go with it, at once."""
    _require_manager(principal, org_id)
    group = _org_group(directory, org_id, group_id)
    directory.delete_group(group_id)
    _audit(directory, principal, org_id, AuditAction.GROUP_DELETED, f"group:{group_id}", name=group.name,
           member_ids=list(group.member_ids))


def add_group_member(
    directory: Directory, principal: Principal, *, org_id: int, group_id: int, user_id: int,
) -> Group:
    """Owners/admins add a member of the organisation (else InvalidInput on user_id); idempotent."""
    _require_manager(principal, org_id)
    _org_group(directory, org_id, group_id)
    _named_member(directory, org_id, user_id, "user_id")
    directory.add_group_member(group_id, user_id)
    _audit(directory, principal, org_id, AuditAction.GROUP_MEMBER_ADDED, f"group:{group_id}", user_id=user_id)
    return _org_group(directory, org_id, group_id)


def remove_group_member(
    directory: Directory, principal: Principal, *, org_id: int, group_id: int, user_id: int,
) -> Group:
    """Owners/admins; NotFound when the user is not in the group."""
    _require_manager(principal, org_id)
    group = _org_group(directory, org_id, group_id)
    if user_id not in group.member_ids:
        raise NotFound("this user is not in the group")
    directory.remove_group_member(group_id, user_id)
    _audit(directory, principal, org_id, AuditAction.GROUP_MEMBER_REMOVED, f"group:{group_id}", user_id=user_id)
    return _org_group(directory, org_id, group_id)
