"""Explaining access ("why can U read R?") and the access review report (SPEC §2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tow_core.access import (
    Condition,
    Principal,
    ProjectRole,
    Scope,
    ScopeKind,
    Visibility,
    can_administer_org,
    effective_project_role,
    explain_read,
    explain_write,
)
from tow_core.administration._guards import (
    _org_group,
    _readable_project,
    _require_manager,
    _require_member,
    _without_secrets,
)
from tow_core.administration.organisations import get_organisation
from tow_core.errors import AccessDenied, NotFound
from tow_core.identity import (
    Directory,
    Grant,
    Group,
    Member,
    Organisation,
    Project,
    User,
)

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
