"""Projects and their grants (SPEC §2).
"""

from __future__ import annotations

from dataclasses import replace

from tow_core.access import (
    Principal,
    ProjectRole,
    Visibility,
    can_read_project,
)
from tow_core.administration._guards import (
    MAX_DESCRIPTION_LENGTH,
    UNCHANGED,
    Unchanged,
    _audit,
    _enum,
    _managed_project,
    _named_member,
    _org_group,
    _readable_project,
    _require_manager,
    _require_member,
)
from tow_core.audit import AuditAction
from tow_core.errors import InvalidInput, NotFound
from tow_core.identity import (
    PROJECT_KEY,
    Directory,
    Grant,
    Project,
    ProjectGrants,
    ProjectStatus,
    check_project_key,
    clean_name,
)

# --- projects ---------------------------------------------------------------------------------


def _project_key(key: str) -> str:
    check_project_key(key)
    if PROJECT_KEY.fullmatch(key) is None:  # re.match with "$" also lets a trailing newline through
        raise InvalidInput("key must be 2–10 upper-case letters or digits, e.g. APP", field="key")
    return key


def _description(description: str) -> str:
    cleaned = description.strip()
    if len(cleaned) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput(f"description is longer than {MAX_DESCRIPTION_LENGTH} characters", field="description")
    return cleaned


def _lead(directory: Directory, org_id: int, lead_user_id: int | None) -> int | None:
    if lead_user_id is not None:
        _named_member(directory, org_id, lead_user_id, "lead_user_id")
    return lead_user_id


def create_project(
    directory: Directory, principal: Principal, *, org_id: int, key: str, name: str, visibility: Visibility | str,
    description: str = "", lead_user_id: int | None = None,
) -> Project:
    """Owners/admins create projects. The key (2–10 upper-case letters/digits) is unique in the
    organisation (Conflict) and never changes. Visibility is required: an open project is readable and
    writable by every member."""
    _require_manager(principal, org_id)
    project = Project(
        0, org_id, _project_key(key), clean_name(name, "name"), _description(description),
        _lead(directory, org_id, lead_user_id), _enum(Visibility, visibility, "visibility"), ProjectStatus.ACTIVE,
    )
    created = directory.add_project(project)
    _audit(directory, principal, org_id, AuditAction.PROJECT_CREATED, f"project:{created.id}", key=created.key,
           visibility=created.visibility.value)
    return created


def list_projects(
    directory: ProjectGrants, principal: Principal, *, org_id: int, status: ProjectStatus | str | None = None,
) -> list[Project]:
    """The projects the caller reads (open ones, granted restricted ones; all for owners/admins)."""
    _require_member(principal, org_id)
    wanted = _enum(ProjectStatus, status, "status") if status is not None else None
    return [
        p for p in directory.projects(org_id)
        if can_read_project(principal, p.access) and wanted in (None, p.status)
    ]


def get_project(directory: Directory, principal: Principal, *, org_id: int, project_id: int) -> Project:
    """NotFound unless the project is in the organisation and the caller reads it."""
    return _readable_project(directory, principal, org_id, project_id)


def update_project(
    directory: Directory, principal: Principal, *, org_id: int, project_id: int, name: str | None = None,
    description: str | None = None, lead_user_id: int | None | Unchanged = UNCHANGED,
    visibility: Visibility | str | None = None, status: ProjectStatus | str | None = None,
) -> Project:
    """Managers (org owners/admins, project leads/admins) change name, description, lead (a member, or None
    to clear), visibility and status (archive/unarchive). ``None`` / ``UNCHANGED`` leave a field alone.
    Making a project open makes it readable and writable by every member, on the next request."""
    project = _managed_project(directory, principal, org_id, project_id)
    changes: dict[str, object] = {}
    if name is not None:
        changes["name"] = clean_name(name, "name")
    if description is not None:
        changes["description"] = _description(description)
    if lead_user_id is not UNCHANGED:
        changes["lead_user_id"] = _lead(directory, org_id, lead_user_id)
    if visibility is not None:
        changes["visibility"] = _enum(Visibility, visibility, "visibility")
    if status is not None:
        changes["status"] = _enum(ProjectStatus, status, "status")
    updated = directory.update_project(replace(project, **changes))
    target = f"project:{project.id}"
    if updated.name != project.name:
        _audit(directory, principal, org_id, AuditAction.PROJECT_RENAMED, target, old=project.name, new=updated.name)
    if updated.visibility is not project.visibility:
        _audit(directory, principal, org_id, AuditAction.PROJECT_VISIBILITY_CHANGED, target,
               old=project.visibility.value, new=updated.visibility.value)
    if updated.status is not project.status:
        _audit(directory, principal, org_id, AuditAction.PROJECT_STATUS_CHANGED, target,
               old=project.status.value, new=updated.status.value)
    return updated


# --- grants -----------------------------------------------------------------------------------


def list_grants(directory: Directory, principal: Principal, *, org_id: int, project_id: int) -> list[Grant]:
    """Anyone who reads the project sees who is granted what on it."""
    return list(directory.grants(_readable_project(directory, principal, org_id, project_id).id))


def put_grant(
    directory: Directory, principal: Principal, *, org_id: int, project_id: int, role: ProjectRole | str,
    user_id: int | None = None, group_id: int | None = None,
) -> Grant:
    """Managers grant a role to exactly one of a user (a member of the organisation, else InvalidInput) or a
    group (of the project's organisation, else NotFound). One grant per holder: granting again replaces
    the role."""
    project = _managed_project(directory, principal, org_id, project_id)
    new_role = _enum(ProjectRole, role, "role")
    if (user_id is None) == (group_id is None):
        raise InvalidInput("give exactly one of user_id and group_id", field="user_id")
    if user_id is not None:
        _named_member(directory, org_id, user_id, "user_id")
    else:
        _org_group(directory, org_id, group_id)
    grant = directory.put_grant(project.id, user_id=user_id, group_id=group_id, role=new_role)
    holder = f"user:{user_id}" if user_id is not None else f"group:{group_id}"
    _audit(directory, principal, org_id, AuditAction.GRANT_SET, f"project:{project.id}", holder=holder,
           role=new_role.value)
    return grant


def remove_grant(
    directory: Directory, principal: Principal, *, org_id: int, project_id: int, grant_id: int,
) -> None:
    """Managers remove a grant of this project (a grant of any other project is NotFound)."""
    project = _managed_project(directory, principal, org_id, project_id)
    grant = directory.grant(grant_id)
    if grant is None or grant.project_id != project.id:
        raise NotFound("grant not found")
    directory.delete_grant(grant_id)
    holder = f"user:{grant.user_id}" if grant.user_id is not None else f"group:{grant.group_id}"
    _audit(directory, principal, org_id, AuditAction.GRANT_REMOVED, f"project:{project.id}", holder=holder,
           role=grant.role.value)
