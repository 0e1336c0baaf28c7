"""Administration: organisations, members, groups, projects, grants, server admins, and explaining
access (SPEC §1, §2).

Rules:
- Deny by default without revealing existence (SPEC §2): an organisation the caller is not an active
  member of, a restricted project they cannot read, and any group, project, grant or member id that does
  not belong to the organisation named in the request are ``NotFound`` — every id in a request is
  checked against that organisation ("Every ID is checked"). Something the caller can see but may not
  change is ``AccessDenied``.
- Server admins create organisations (the creator becomes owner) and grant or revoke server admin; the
  server always keeps one active server admin. Server admin grants no organisation role (SPEC §1).
- Any member reads the organisation, its members, its groups, and the projects they can read.
- Owners and admins rename the organisation, change its workflow mode, and manage members, groups and
  projects. Only an owner may grant or remove the owner role; the organisation always keeps at least one
  active owner. Any member may leave, except its last active owner.
- A project is managed (name, description, lead, visibility, archive, grants) by organisation
  owners/admins and by holders of its lead or admin role. Its key is fixed at creation: it prefixes
  ticket keys.
- **Open projects are readable and writable by every member of the organisation** ("open" means writable
  by all). A grant on an open project can raise a member to lead/admin, never lower anyone below member.
- People named in a request (group member, grantee, project lead) must be members of the organisation,
  else ``InvalidInput`` on that field. Deactivated members stay eligible (their records and grants are
  kept; the access review lists grants they hold).
- The access explanation is for owners/admins, and for any member about themselves; the access review is
  for owners/admins.
- Nothing here caches a principal or a decision: a removed grant, group membership, membership or a
  visibility change applies on the very next request (SPEC §2 "Immediate revocation").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import TypeVar

from tow_core.access import (
    Condition,
    OrgRole,
    Principal,
    ProjectRole,
    Scope,
    ScopeKind,
    Visibility,
    can_administer_org,
    can_manage_project,
    can_read_project,
    effective_project_role,
    explain_read,
    explain_write,
    is_org_owner,
    is_server_admin,
)
from tow_core.audit import AuditAction, AuditEntry, AuditQuery, require_audit_reader
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tow_core.identity import (
    PROJECT_KEY,
    Directory,
    Grant,
    Group,
    Member,
    Organisation,
    Project,
    ProjectStatus,
    User,
    WorkflowMode,
    check_project_key,
    clean_name,
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


def _org_group(directory: Directory, org_id: int, group_id: int) -> Group:
    group = directory.group(group_id)
    if group is None or group.organisation_id != org_id:
        raise NotFound("group not found")
    return group


def _org_project(directory: Directory, org_id: int, project_id: int) -> Project:
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
    if not can_manage_project(principal, project.access):
        raise AccessDenied("only the project's leads/admins and organisation owners/admins may manage it")
    return project


def _find_member(directory: Directory, org_id: int, user_id: int) -> Member | None:
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


# --- organisations ----------------------------------------------------------------------------


def _audit(directory: Directory, principal: Principal, org_id: int | None, action: AuditAction, target: str,
           **details: object) -> None:
    directory.audit(AuditEntry(org_id, principal.user_id, action, target, details))


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


def get_organisation(directory: Directory, principal: Principal, *, org_id: int) -> Organisation:
    """Any active member; NotFound for everyone else, server admins included."""
    _require_member(principal, org_id)
    organisation = directory.organisation(org_id)
    if organisation is None:
        raise NotFound("organisation not found")
    return organisation


def update_organisation(
    directory: Directory, principal: Principal, *, org_id: int, name: str | None = None,
    workflow_mode: WorkflowMode | str | None = None,
) -> Organisation:
    """Owners/admins rename it and/or change its workflow mode (which only changes prompt framing)."""
    _require_manager(principal, org_id)
    current = get_organisation(directory, principal, org_id=org_id)
    new_name = clean_name(name, "name") if name is not None else current.name
    mode = _enum(WorkflowMode, workflow_mode, "workflow_mode") if workflow_mode is not None else current.workflow_mode
    return directory.update_organisation(org_id, name=new_name, workflow_mode=mode)


# --- members ----------------------------------------------------------------------------------


def list_members(directory: Directory, principal: Principal, *, org_id: int) -> list[Member]:
    """Any member sees the organisation's members and their roles."""
    _require_member(principal, org_id)
    return list(directory.members(org_id))


def _guard_owner_role(
    directory: Directory, principal: Principal, org_id: int, target: Member, new_role: OrgRole | None,
) -> None:
    """Only an owner grants or removes the owner role; the last active owner keeps it (SPEC §1).
    ``new_role`` None means the target leaves the organisation."""
    changes_owner = target.role is not new_role and OrgRole.OWNER in (target.role, new_role)
    if changes_owner and not is_org_owner(principal, org_id):
        raise AccessDenied("only an owner may grant or remove the owner role")
    loses_owner = target.role is OrgRole.OWNER and new_role is not OrgRole.OWNER
    if loses_owner:
        directory.lock_owners(org_id)  # two owners demoting each other at once: the second sees the first
    if loses_owner and target.is_active and directory.count_owners(org_id) <= 1:
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


# --- groups -----------------------------------------------------------------------------------


def list_groups(directory: Directory, principal: Principal, *, org_id: int) -> list[Group]:
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
    """Owners/admins; the group must belong to the organisation."""
    _require_manager(principal, org_id)
    _org_group(directory, org_id, group_id)
    return directory.rename_group(group_id, clean_name(name, "name"))


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
    directory: Directory, principal: Principal, *, org_id: int, status: ProjectStatus | str | None = None,
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


# --- server admins ----------------------------------------------------------------------------


def list_server_admins(directory: Directory, principal: Principal) -> list[User]:
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


# --- explaining access ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessExplanation:
    """Why ``user_id`` can (or cannot) read and write ``scope``: the granting rule and a sentence."""

    user_id: int
    scope: Scope
    read: Condition | None
    read_reason: str
    write: Condition | None
    write_reason: str


@dataclass(frozen=True, slots=True)
class _Target:
    """What the explanation talks about: the user's principal, the scope and its group or project."""

    principal: Principal
    scope: Scope
    project: Project | None
    group: Group | None


def _load_scope(
    directory: Directory, principal: Principal, org_id: int, scope: Scope,
) -> tuple[Project | None, Group | None]:
    """The scope's project or group, checked against the organisation — and a project must be one the
    caller reads, so a member asking about themselves learns nothing about a restricted project."""
    if scope.organisation_id != org_id:
        raise NotFound("scope not found")
    if scope.kind is ScopeKind.PROJECT:
        return _readable_project(directory, principal, org_id, scope.ref_id), None
    if scope.kind is ScopeKind.GROUP:
        return None, _org_group(directory, org_id, scope.ref_id)
    return None, None


def _grant_source(directory: Directory, target: _Target) -> tuple[ProjectRole | None, str]:
    """The user's highest project grant and where it comes from (direct wins a tie)."""
    project, who = target.project, target.principal
    direct = who.direct_grants.get(project.id)
    via: list[tuple[ProjectRole, str]] = []
    for grant in directory.grants(project.id):
        group = directory.group(grant.group_id) if grant.group_id in who.group_ids else None
        if group is not None and group.organisation_id == project.organisation_id:
            via.append((grant.role, group.name))
    best = max(via, key=lambda rg: rg[0].rank, default=None)
    if direct is not None and (best is None or direct.rank >= best[0].rank):
        return direct, f"granted {direct.value} directly"
    if best is not None:
        return best[0], f"granted {best[0].value} through group {best[1]}"
    return None, "no grant, directly or through a group"


_GRANTED = {
    Condition.IS_MEMBER: "member of the organisation",
    Condition.IS_ORG_MANAGER: "organisation owner/admin",
    Condition.PROJECT_OPEN: "project is open to every member (open projects are readable and writable by all)",
    Condition.IS_SCOPE_USER: "the user's own private scope",
}


def _granted_reason(directory: Directory, target: _Target, condition: Condition) -> str:
    if condition is Condition.IN_GROUP:
        return f"member of group {target.group.name}"
    if condition in (Condition.PROJECT_GRANT_READS, Condition.PROJECT_GRANT_WRITES):
        return _grant_source(directory, target)[1]
    return _GRANTED[condition]


def _denied_reason(directory: Directory, target: _Target) -> str:
    who, scope = target.principal, target.scope
    if scope.organisation_id not in who.org_roles:
        return "denied: not a member of the organisation"
    if not who.is_active:
        return "denied: the user is deactivated"
    if scope.kind is ScopeKind.GROUP:
        return f"denied: not in group {target.group.name}, and not an organisation owner/admin"
    if scope.kind is ScopeKind.USER:
        return "denied: private to another user (not even organisation or server admins may read it)"
    if scope.kind is ScopeKind.PROJECT:
        role, source = _grant_source(directory, target)
        if role is None:
            return f"denied: restricted project, {source}"
        return f"denied: {source}, and {role.value} only reads"
    return "denied: no rule grants access"


def _reason(directory: Directory, target: _Target, condition: Condition | None) -> str:
    return _denied_reason(directory, target) if condition is None else _granted_reason(directory, target, condition)


def explain_access(
    directory: Directory, principal: Principal, *, org_id: int, user_id: int, scope: Scope,
) -> AccessExplanation:
    """Why can user U read/write scope S (SPEC §2)? Owners/admins may ask about anyone; any member about
    themselves (else AccessDenied). The scope's group or project must be in the organisation, and a
    project must be readable by the caller (else NotFound)."""
    _require_member(principal, org_id)
    if user_id != principal.user_id and not can_administer_org(principal, org_id):
        raise AccessDenied("only owners/admins may explain another member's access")
    project, group = _load_scope(directory, principal, org_id, scope)
    target = _Target(directory.principal(user_id) or Principal.build(user_id), scope, project, group)
    access = project.access if project else None
    read, write = explain_read(target.principal, scope, access), explain_write(target.principal, scope, access)
    return AccessExplanation(
        user_id, scope, read, _reason(directory, target, read), write, _reason(directory, target, write),
    )


# --- access review ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReviewedUser:
    """A user a grant reaches, with the role they effectively hold on the project (None: no access)."""

    user_id: int
    email: str
    display_name: str
    is_active: bool
    effective_role: ProjectRole | None


@dataclass(frozen=True, slots=True)
class ReviewedGrant:
    """A grant, its group (None for a direct grant) and every user it reaches."""

    grant: Grant
    group: Group | None
    users: tuple[ReviewedUser, ...]


@dataclass(frozen=True, slots=True)
class ReviewedProject:
    project: Project
    grants: tuple[ReviewedGrant, ...]


@dataclass(frozen=True, slots=True)
class DeactivatedGrant:
    """A grant still held by a deactivated user, directly or through ``group``."""

    project: Project
    grant: Grant
    group: Group | None
    user: ReviewedUser


@dataclass(frozen=True, slots=True)
class AccessReview:
    organisation: Organisation
    managers: tuple[Member, ...]  # owners and admins
    server_admins: tuple[User, ...]  # active server admins, password hashes stripped
    restricted_projects: tuple[ReviewedProject, ...]
    deactivated_grants: tuple[DeactivatedGrant, ...]  # across every project of the organisation


class _Reviewer:
    """Builds one review; principals are loaded once per user for this one report, never kept."""

    def __init__(self, directory: Directory, org_id: int) -> None:
        self.directory = directory
        self.members: Mapping[int, Member] = {m.user_id: m for m in directory.members(org_id)}
        self._principals: dict[int, Principal | None] = {}

    def user(self, user_id: int, project: Project) -> ReviewedUser:
        if user_id not in self._principals:
            self._principals[user_id] = self.directory.principal(user_id)
        who = self._principals[user_id]
        role = effective_project_role(who, project.access) if who else None
        person = self.members.get(user_id) or self.directory.user(user_id)
        if person is None:
            return ReviewedUser(user_id, "", "", False, None)
        return ReviewedUser(user_id, person.email, person.display_name, person.is_active, role)

    def grant(self, grant: Grant, project: Project) -> ReviewedGrant:
        group = self.directory.group(grant.group_id) if grant.group_id is not None else None
        if group is None:
            user_ids: tuple[int, ...] = (grant.user_id,) if grant.user_id is not None else ()
        else:  # a group of another organisation gives nobody anything here
            user_ids = group.member_ids if group.organisation_id == project.organisation_id else ()
        return ReviewedGrant(grant, group, tuple(self.user(u, project) for u in user_ids))

    def project(self, project: Project) -> ReviewedProject:
        return ReviewedProject(project, tuple(self.grant(g, project) for g in self.directory.grants(project.id)))


def access_review(directory: Directory, principal: Principal, *, org_id: int) -> AccessReview:
    """Owners/admins: the organisation's owners/admins, the server admins, every restricted project's
    grants (direct and through groups, each user with their effective role) and grants held by
    deactivated users (SPEC §2)."""
    organisation = get_organisation(directory, principal, org_id=org_id)
    _require_manager(principal, org_id)
    reviewer = _Reviewer(directory, org_id)
    projects = [reviewer.project(p) for p in directory.projects(org_id)]
    deactivated = tuple(
        DeactivatedGrant(rp.project, rg.grant, rg.group, user)
        for rp in projects for rg in rp.grants for user in rg.users if not user.is_active
    )
    return AccessReview(
        organisation,
        tuple(m for m in reviewer.members.values() if m.role.manages_org),
        tuple(_without_secrets(u) for u in directory.server_admins()),
        tuple(rp for rp in projects if rp.project.visibility is Visibility.RESTRICTED),
        deactivated,
    )


# --- audit log --------------------------------------------------------------------------------


def list_audit(
    directory: Directory, principal: Principal, *, org_id: int | None, query: AuditQuery, cursor: str | None,
    limit: int,
) -> tuple[list[AuditEntry], str | None]:
    """Owners/admins list their organisation's audit log, newest first; server admins list the server
    level (``org_id`` None). Filters: actions, actor, target, time range."""
    require_audit_reader(principal, org_id)
    if not 1 <= limit <= 200:
        raise InvalidInput("limit must be from 1 to 200", field="limit")
    return directory.audit_entries(org_id, query, cursor=cursor, limit=limit)
