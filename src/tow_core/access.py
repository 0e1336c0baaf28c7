"""The access model and policy (SPEC §1 people and tenancy, §2 projects and the access model).

Pure functions over a frozen ``Principal`` and a target (a ``Scope``, a ``ProjectAccess``). The scope
rules are data (``READ_RULES`` / ``WRITE_RULES``, lists of ``Condition``) so that the SQL visibility
filter in the adapter is generated from the very same table and a differential test can prove the two
agree (ARCHITECTURE practice 4).

Rules that hold for every decision here (SPEC §2 "Rules that hold everywhere"):
- deny by default: an inactive principal, or one with no membership in the target's organisation,
  gets nothing, whatever grants or group ids it carries;
- server admin grants no organisation role (SPEC §1) and so no access to any scope or project.

Design choices where SPEC is silent: a ``ProjectAccess`` whose id differs from its project scope is a
programming error (``ValueError``); one whose organisation differs from the scope's is treated as
inconsistent data and denies, even to managers of both organisations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from tow_core.errors import AccessDenied, NotFound


class OrgRole(StrEnum):
    """A membership role in an organisation (SPEC §1)."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"

    @property
    def manages_org(self) -> bool:
        """Owners and admins manage groups, projects and every project of the organisation (§1, §2)."""
        return self in (OrgRole.OWNER, OrgRole.ADMIN)


class ProjectRole(StrEnum):
    """A project grant's role (SPEC §2 "Project roles"), ordered viewer < member < lead < admin."""

    VIEWER = "viewer"
    MEMBER = "member"
    LEAD = "lead"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _PROJECT_ROLE_RANK[self]

    @property
    def reads(self) -> bool:
        return True

    @property
    def writes(self) -> bool:
        """Write records, comments, status: every role but viewer."""
        return self.rank >= ProjectRole.MEMBER.rank

    @property
    def manages(self) -> bool:
        """Manage grants, visibility, settings: lead and admin."""
        return self.rank >= ProjectRole.LEAD.rank

    @classmethod
    def highest(cls, roles: Iterable[ProjectRole | None]) -> ProjectRole | None:
        """The highest-ranked role (``None`` entries ignored); ``None`` when there is none."""
        return max((r for r in roles if r is not None), key=lambda r: r.rank, default=None)


_PROJECT_ROLE_RANK = MappingProxyType({role: rank for rank, role in enumerate(ProjectRole, start=1)})


class Visibility(StrEnum):
    """Project visibility (SPEC §2): open = read and write by every member of the organisation."""

    OPEN = "open"
    RESTRICTED = "restricted"


class ScopeKind(StrEnum):
    """The four knowledge scopes a shared record can carry (SPEC §2 "Knowledge scopes")."""

    ORGANISATION = "organisation"
    GROUP = "group"
    PROJECT = "project"
    USER = "user"


@dataclass(frozen=True, slots=True)
class Scope:
    """Exactly one scope per record. ``ref_id`` is the organisation, group, project or owning user id."""

    kind: ScopeKind
    organisation_id: int
    ref_id: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ScopeKind(self.kind))
        if self.kind is ScopeKind.ORGANISATION and self.ref_id != self.organisation_id:
            raise ValueError("an organisation scope's ref_id must be its organisation id")

    @classmethod
    def organisation(cls, org_id: int) -> Scope:
        return cls(ScopeKind.ORGANISATION, org_id, org_id)

    @classmethod
    def group(cls, org_id: int, group_id: int) -> Scope:
        return cls(ScopeKind.GROUP, org_id, group_id)

    @classmethod
    def project(cls, org_id: int, project_id: int) -> Scope:
        return cls(ScopeKind.PROJECT, org_id, project_id)

    @classmethod
    def private(cls, org_id: int, user_id: int) -> Scope:
        return cls(ScopeKind.USER, org_id, user_id)


@dataclass(frozen=True, slots=True)
class ProjectAccess:
    """A project as the policy needs it (SPEC §2)."""

    id: int
    organisation_id: int
    visibility: Visibility

    def __post_init__(self) -> None:
        object.__setattr__(self, "visibility", Visibility(self.visibility))


def _frozen_map(pairs: Mapping | Iterable | None, value_type: type) -> Mapping:
    return MappingProxyType({int(k): value_type(v) for k, v in dict(pairs or {}).items()})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking, as loaded for one request (never cached: SPEC §2 "Immediate revocation").

    Mappings are copied into read-only views; they take part in equality but not in the hash
    (a mapping proxy is unhashable), which keeps ``hash`` consistent with ``==``.
    ``group_grants`` is already reduced to the highest role the user gets through any group.
    """

    user_id: int
    is_active: bool
    is_server_admin: bool
    org_roles: Mapping[int, OrgRole] = field(hash=False)
    group_ids: frozenset[int]
    direct_grants: Mapping[int, ProjectRole] = field(hash=False)
    group_grants: Mapping[int, ProjectRole] = field(hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "org_roles", _frozen_map(self.org_roles, OrgRole))
        object.__setattr__(self, "group_ids", frozenset(self.group_ids))
        object.__setattr__(self, "direct_grants", _frozen_map(self.direct_grants, ProjectRole))
        object.__setattr__(self, "group_grants", _frozen_map(self.group_grants, ProjectRole))

    @classmethod
    def build(
        cls,
        user_id: int,
        *,
        is_active: bool = True,
        is_server_admin: bool = False,
        org_roles: Mapping[int, OrgRole] | None = None,
        group_ids: Iterable[int] = (),
        direct_grants: Mapping[int, ProjectRole] | None = None,
        group_grants: Mapping[int, ProjectRole] | None = None,
    ) -> Principal:
        return cls(
            user_id, is_active, is_server_admin, org_roles or {}, frozenset(group_ids),
            direct_grants or {}, group_grants or {},
        )

    def project_grant(self, project_id: int) -> ProjectRole | None:
        """Highest of the direct grant and the (already reduced) group grant (SPEC §2)."""
        return ProjectRole.highest((self.direct_grants.get(project_id), self.group_grants.get(project_id)))


def _active_role(principal: Principal, org_id: int) -> OrgRole | None:
    """The principal's role in ``org_id`` — ``None`` when inactive or not a member (deny by default)."""
    return principal.org_roles.get(org_id) if principal.is_active else None


# --- organisation and server level ------------------------------------------------------------


def is_server_admin(principal: Principal) -> bool:
    """An active user with the server admin flag (SPEC §1). Grants no organisation role."""
    return principal.is_active and principal.is_server_admin


def can_administer_org(principal: Principal, org_id: int) -> bool:
    """Active owner or admin of the organisation (SPEC §1)."""
    role = _active_role(principal, org_id)
    return role is not None and role.manages_org


def is_org_owner(principal: Principal, org_id: int) -> bool:
    """Active owner: the only one who may grant or remove the owner role (SPEC §1)."""
    return _active_role(principal, org_id) is OrgRole.OWNER


# --- project level ----------------------------------------------------------------------------


def effective_project_role(principal: Principal, project: ProjectAccess) -> ProjectRole | None:
    """The principal's role on a project (SPEC §2).

    None unless an active member of the project's organisation. Owners/admins → ADMIN. Otherwise the
    highest of direct and group grants; on an open project never below MEMBER (a grant can raise a
    member but cannot lower anyone).
    """
    role = _active_role(principal, project.organisation_id)
    if role is None:
        return None
    if role.manages_org:
        return ProjectRole.ADMIN
    floor = ProjectRole.MEMBER if project.visibility is Visibility.OPEN else None
    return ProjectRole.highest((principal.project_grant(project.id), floor))


def can_read_project(principal: Principal, project: ProjectAccess) -> bool:
    role = effective_project_role(principal, project)
    return role is not None and role.reads


def can_write_project(principal: Principal, project: ProjectAccess) -> bool:
    role = effective_project_role(principal, project)
    return role is not None and role.writes


def can_manage_project(principal: Principal, project: ProjectAccess) -> bool:
    role = effective_project_role(principal, project)
    return role is not None and role.manages


# --- scope rule table -------------------------------------------------------------------------


class Condition(StrEnum):
    """One rule that can grant access to a scope; the SQL filter has one clause per condition."""

    IS_MEMBER = "is_member"  # member of the scope's organisation
    IS_ORG_MANAGER = "is_org_manager"  # owner/admin of the scope's organisation
    IN_GROUP = "in_group"  # in the scope's group and a member of its organisation
    PROJECT_OPEN = "project_open"  # the scope's project is open; member of its organisation
    PROJECT_GRANT_READS = "project_grant_reads"  # highest of direct and group grant reads
    PROJECT_GRANT_WRITES = "project_grant_writes"  # highest of direct and group grant writes
    IS_SCOPE_USER = "is_scope_user"  # the principal's own private scope; member of that organisation


# SPEC §2 "Knowledge scopes". A scope is readable/writable iff the principal is an active member of
# its organisation AND any listed condition holds. Order matters only for explain_*(): first grant wins.
READ_RULES: Mapping[ScopeKind, tuple[Condition, ...]] = MappingProxyType({
    ScopeKind.ORGANISATION: (Condition.IS_MEMBER,),
    ScopeKind.GROUP: (Condition.IN_GROUP, Condition.IS_ORG_MANAGER),
    ScopeKind.PROJECT: (Condition.IS_ORG_MANAGER, Condition.PROJECT_OPEN, Condition.PROJECT_GRANT_READS),
    ScopeKind.USER: (Condition.IS_SCOPE_USER,),  # not org admins, not server admins
})
WRITE_RULES: Mapping[ScopeKind, tuple[Condition, ...]] = MappingProxyType({
    ScopeKind.ORGANISATION: (Condition.IS_MEMBER,),
    ScopeKind.GROUP: (Condition.IN_GROUP, Condition.IS_ORG_MANAGER),
    ScopeKind.PROJECT: (Condition.IS_ORG_MANAGER, Condition.PROJECT_OPEN, Condition.PROJECT_GRANT_WRITES),
    ScopeKind.USER: (Condition.IS_SCOPE_USER,),
})


def _check_project(scope: Scope, project: ProjectAccess | None) -> None:
    if scope.kind is ScopeKind.PROJECT and (project is None or project.id != scope.ref_id):
        raise ValueError(f"project scope {scope.ref_id} needs its ProjectAccess, got {project!r}")


def _scope_project(scope: Scope, project: ProjectAccess | None) -> ProjectAccess | None:
    """The scope's project, if the scope is a project scope."""
    return project if scope.kind is ScopeKind.PROJECT else None


def _precondition(principal: Principal, scope: Scope, project: ProjectAccess | None) -> bool:
    """Deny by default: active member of the scope's organisation, and a project from that same
    organisation (a cross-organisation project denies even to managers of both)."""
    p = _scope_project(scope, project)
    same_org = p is None or p.organisation_id == scope.organisation_id
    return same_org and _active_role(principal, scope.organisation_id) is not None


def _project_open(principal: Principal, scope: Scope, project: ProjectAccess | None) -> bool:
    p = _scope_project(scope, project)
    return p is not None and p.visibility is Visibility.OPEN


def _grant(principal: Principal, scope: Scope, project: ProjectAccess | None) -> ProjectRole | None:
    p = _scope_project(scope, project)
    return principal.project_grant(p.id) if p is not None else None


def _grant_reads(principal: Principal, scope: Scope, project: ProjectAccess | None) -> bool:
    role = _grant(principal, scope, project)
    return role is not None and role.reads


def _grant_writes(principal: Principal, scope: Scope, project: ProjectAccess | None) -> bool:
    role = _grant(principal, scope, project)
    return role is not None and role.writes


# Each check runs only after _precondition held (active member of the scope's organisation).
_CHECKS: Mapping[Condition, Callable[[Principal, Scope, ProjectAccess | None], bool]] = MappingProxyType({
    Condition.IS_MEMBER: lambda pr, s, p: True,
    Condition.IS_ORG_MANAGER: lambda pr, s, p: pr.org_roles[s.organisation_id].manages_org,
    Condition.IN_GROUP: lambda pr, s, p: s.kind is ScopeKind.GROUP and s.ref_id in pr.group_ids,
    Condition.PROJECT_OPEN: _project_open,
    Condition.PROJECT_GRANT_READS: _grant_reads,
    Condition.PROJECT_GRANT_WRITES: _grant_writes,
    Condition.IS_SCOPE_USER: lambda pr, s, p: s.kind is ScopeKind.USER and s.ref_id == pr.user_id,
})


def condition_holds(
    condition: Condition, principal: Principal, scope: Scope, project: ProjectAccess | None = None
) -> bool:
    """Evaluate one condition. Each includes the deny-by-default precondition (active org member)."""
    _check_project(scope, project)
    check = _CHECKS[Condition(condition)]
    return _precondition(principal, scope, project) and check(principal, scope, project)


def _explain(
    rules: Mapping[ScopeKind, tuple[Condition, ...]], principal: Principal, scope: Scope,
    project: ProjectAccess | None,
) -> Condition | None:
    return next((c for c in rules[scope.kind] if condition_holds(c, principal, scope, project)), None)


def explain_read(
    principal: Principal, scope: Scope, project: ProjectAccess | None = None
) -> Condition | None:
    """The first READ_RULES condition that grants, or None when denied ("why can U read R", SPEC §2)."""
    return _explain(READ_RULES, principal, scope, project)


def explain_write(
    principal: Principal, scope: Scope, project: ProjectAccess | None = None
) -> Condition | None:
    """The first WRITE_RULES condition that grants, or None when denied (SPEC §2)."""
    return _explain(WRITE_RULES, principal, scope, project)


def can_read_scope(principal: Principal, scope: Scope, project: ProjectAccess | None = None) -> bool:
    """SPEC §2 knowledge scopes, read column; a PROJECT scope needs its ``ProjectAccess``."""
    return explain_read(principal, scope, project) is not None


def can_write_scope(principal: Principal, scope: Scope, project: ProjectAccess | None = None) -> bool:
    """SPEC §2 knowledge scopes, write column; a PROJECT scope needs its ``ProjectAccess``."""
    return explain_write(principal, scope, project) is not None


def authorize(allowed: bool, *, exists_for_caller: bool = False, what: str) -> None:
    """Raise unless allowed: NotFound when the caller may not know ``what`` exists (SPEC §2: 404, not
    403), AccessDenied when it can see it but may not do this (e.g. a viewer writing)."""
    if allowed:
        return
    if exists_for_caller:
        raise AccessDenied(f"not allowed for this {what}")
    raise NotFound(f"{what} not found")
