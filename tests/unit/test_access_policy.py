"""Table-driven tests of the pure access policy (SPEC §1, §2; ARCHITECTURE practice 4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tow_core.access import (
    READ_RULES,
    WRITE_RULES,
    Condition,
    OrgRole,
    Principal,
    ProjectAccess,
    ProjectRole,
    Scope,
    ScopeKind,
    Visibility,
    authorize,
    can_administer_org,
    can_manage_project,
    can_read_project,
    can_read_scope,
    can_write_project,
    can_write_scope,
    condition_holds,
    effective_project_role,
    explain_read,
    explain_write,
    is_org_owner,
    is_server_admin,
)
from tow_core.errors import AccessDenied, NotFound

ORG, OTHER_ORG, GROUP, OTHER_GROUP = 1, 2, 10, 11
OPEN = ProjectAccess(100, ORG, Visibility.OPEN)
RESTRICTED = ProjectAccess(101, ORG, Visibility.RESTRICTED)
MEMBER_ID = 3
V, M, L, A = ProjectRole.VIEWER, ProjectRole.MEMBER, ProjectRole.LEAD, ProjectRole.ADMIN


def who(user_id: int, roles: dict | None = None, **kw) -> Principal:
    return Principal.build(user_id, org_roles=roles if roles is not None else {ORG: OrgRole.MEMBER}, **kw)


PRINCIPALS = {
    "owner": who(1, {ORG: OrgRole.OWNER}),
    "admin": who(2, {ORG: OrgRole.ADMIN}),
    "member": who(MEMBER_ID),
    "non_member": who(4, {OTHER_ORG: OrgRole.MEMBER}),
    "inactive_owner": who(5, {ORG: OrgRole.OWNER}, is_active=False, group_ids={GROUP}),
    "server_admin_no_membership": who(6, {}, is_server_admin=True),
    "server_admin_member": who(7, is_server_admin=True),
    "group_member": who(8, group_ids={GROUP}),
    "group_id_but_non_member": who(9, {OTHER_ORG: OrgRole.MEMBER}, group_ids={GROUP}),
    "non_member_with_admin_grant": who(10, {OTHER_ORG: OrgRole.OWNER}, direct_grants={101: A}),
    **{f"direct_{r}": who(20 + r.rank, direct_grants={101: r}) for r in ProjectRole},
    **{f"via_group_{r}": who(30 + r.rank, group_ids={OTHER_GROUP}, group_grants={101: r})
       for r in ProjectRole},
}

# (scope name, how to build it for a principal, the project the policy needs)
SCOPES = {
    "org": (lambda p: Scope.organisation(ORG), None),
    "other_org": (lambda p: Scope.organisation(OTHER_ORG), None),
    "group": (lambda p: Scope.group(ORG, GROUP), None),
    "open_project": (lambda p: Scope.project(ORG, OPEN.id), OPEN),
    "restricted_project": (lambda p: Scope.project(ORG, RESTRICTED.id), RESTRICTED),
    "own_private": (lambda p: Scope.private(ORG, p.user_id), None),
    "member_private": (lambda p: Scope.private(ORG, MEMBER_ID), None),
}

# Expected access per principal, one column per scope above: "rw" read+write, "r" read only, "-" none.
#                              org  other grp  open restr own  mem_priv
MATRIX = {
    "owner":                      "rw  -    rw   rw   rw   rw   -",
    "admin":                      "rw  -    rw   rw   rw   rw   -",
    "member":                     "rw  -    -    rw   -    rw   rw",
    "non_member":                 "-   rw   -    -    -    -    -",
    "inactive_owner":             "-   -    -    -    -    -    -",
    "server_admin_no_membership": "-   -    -    -    -    -    -",
    "server_admin_member":        "rw  -    -    rw   -    rw   -",
    "group_member":               "rw  -    rw   rw   -    rw   -",
    "group_id_but_non_member":    "-   rw   -    -    -    -    -",
    "non_member_with_admin_grant": "-  rw   -    -    -    -    -",
    "direct_viewer":              "rw  -    -    rw   r    rw   -",
    "direct_member":              "rw  -    -    rw   rw   rw   -",
    "direct_lead":                "rw  -    -    rw   rw   rw   -",
    "direct_admin":               "rw  -    -    rw   rw   rw   -",
    "via_group_viewer":           "rw  -    -    rw   r    rw   -",
    "via_group_member":           "rw  -    -    rw   rw   rw   -",
    "via_group_lead":             "rw  -    -    rw   rw   rw   -",
    "via_group_admin":            "rw  -    -    rw   rw   rw   -",
}
SCOPE_CASES = [
    pytest.param(who_, scope, cell, id=f"{who_}-{scope}")
    for who_, row in MATRIX.items()
    for scope, cell in zip(SCOPES, row.split(), strict=True)
]


def test_matrix_covers_every_principal() -> None:
    assert set(MATRIX) == set(PRINCIPALS)


@pytest.mark.parametrize(("who_", "scope_name", "cell"), SCOPE_CASES)
def test_scope_access_matrix(who_: str, scope_name: str, cell: str) -> None:
    principal = PRINCIPALS[who_]
    build, project = SCOPES[scope_name]
    scope = build(principal)
    assert can_read_scope(principal, scope, project) is ("r" in cell)
    assert can_write_scope(principal, scope, project) is ("w" in cell)


@pytest.mark.parametrize("kind", list(ScopeKind), ids=str)
def test_every_scope_kind_has_rules(kind: ScopeKind) -> None:
    assert READ_RULES[kind] and WRITE_RULES[kind]


def grants(direct: ProjectRole | None = None, group: ProjectRole | None = None, role=OrgRole.MEMBER, **kw):
    return who(50, {ORG: role}, direct_grants={OPEN.id: direct, RESTRICTED.id: direct} if direct else None,
               group_grants={OPEN.id: group, RESTRICTED.id: group} if group else None, **kw)


@pytest.mark.parametrize(("principal", "project", "expected"), [
    pytest.param(grants(role=OrgRole.OWNER), RESTRICTED, A, id="owner-restricted-is-admin"),
    pytest.param(grants(role=OrgRole.ADMIN), OPEN, A, id="org-admin-open-is-admin"),
    pytest.param(grants(V, role=OrgRole.ADMIN), RESTRICTED, A, id="org-admin-viewer-grant-still-admin"),
    pytest.param(grants(), OPEN, M, id="member-open-floor"),
    pytest.param(grants(), RESTRICTED, None, id="member-restricted-no-grant"),
    pytest.param(grants(V), OPEN, M, id="viewer-grant-cannot-lower-on-open"),
    pytest.param(grants(group=V), OPEN, M, id="group-viewer-cannot-lower-on-open"),
    pytest.param(grants(L), OPEN, L, id="lead-grant-raises-on-open"),
    pytest.param(grants(group=A), OPEN, A, id="group-admin-raises-on-open"),
    pytest.param(grants(V), RESTRICTED, V, id="viewer-restricted"),
    pytest.param(grants(V, L), RESTRICTED, L, id="highest-group-over-direct"),
    pytest.param(grants(A, V), RESTRICTED, A, id="highest-direct-over-group"),
    pytest.param(grants(M, M), RESTRICTED, M, id="equal-direct-and-group"),
    pytest.param(grants(A, is_active=False), RESTRICTED, None, id="inactive-grantee"),
    pytest.param(who(51, {}, direct_grants={101: A}), RESTRICTED, None, id="grant-without-membership"),
    pytest.param(who(52, {}, is_server_admin=True), OPEN, None, id="server-admin-no-membership"),
    pytest.param(grants(A), ProjectAccess(101, OTHER_ORG, Visibility.OPEN), None, id="project-in-other-org"),
])
def test_effective_project_role(principal: Principal, project: ProjectAccess, expected) -> None:
    assert effective_project_role(principal, project) == expected


@pytest.mark.parametrize(("principal", "project", "rwm"), [
    pytest.param(grants(role=OrgRole.OWNER), RESTRICTED, "rwm", id="owner"),
    pytest.param(grants(), OPEN, "rw-", id="member-open"),
    pytest.param(grants(), RESTRICTED, "---", id="member-restricted"),
    pytest.param(grants(V), OPEN, "rw-", id="viewer-on-open-is-member"),
    pytest.param(grants(V), RESTRICTED, "r--", id="viewer"),
    pytest.param(grants(M), RESTRICTED, "rw-", id="member-grant"),
    pytest.param(grants(group=L), RESTRICTED, "rwm", id="lead-via-group"),
    pytest.param(grants(A), RESTRICTED, "rwm", id="admin-grant"),
])
def test_project_read_write_manage(principal: Principal, project: ProjectAccess, rwm: str) -> None:
    got = (can_read_project(principal, project), can_write_project(principal, project),
           can_manage_project(principal, project))
    assert got == ("r" in rwm, "w" in rwm, "m" in rwm)


@pytest.mark.parametrize(("who_", "scope_name", "read", "write"), [
    pytest.param("member", "org", Condition.IS_MEMBER, Condition.IS_MEMBER, id="member-org"),
    pytest.param("group_member", "group", Condition.IN_GROUP, Condition.IN_GROUP, id="group-member-group"),
    pytest.param("admin", "group", Condition.IS_ORG_MANAGER, Condition.IS_ORG_MANAGER, id="admin-group"),
    pytest.param("owner", "open_project", Condition.IS_ORG_MANAGER, Condition.IS_ORG_MANAGER,
                 id="owner-open"),
    pytest.param("member", "open_project", Condition.PROJECT_OPEN, Condition.PROJECT_OPEN, id="member-open"),
    pytest.param("direct_viewer", "restricted_project", Condition.PROJECT_GRANT_READS, None,
                 id="viewer-restricted"),
    pytest.param("via_group_member", "restricted_project", Condition.PROJECT_GRANT_READS,
                 Condition.PROJECT_GRANT_WRITES, id="group-member-restricted"),
    pytest.param("member", "own_private", Condition.IS_SCOPE_USER, Condition.IS_SCOPE_USER, id="own-private"),
    pytest.param("owner", "member_private", None, None, id="owner-other-private"),
    pytest.param("server_admin_member", "member_private", None, None, id="server-admin-other-private"),
    pytest.param("non_member", "org", None, None, id="non-member-org"),
])
def test_explain_returns_granting_condition(who_: str, scope_name: str, read, write) -> None:
    principal = PRINCIPALS[who_]
    build, project = SCOPES[scope_name]
    assert explain_read(principal, build(principal), project) == read
    assert explain_write(principal, build(principal), project) == write


@pytest.mark.parametrize("project", [
    pytest.param(ProjectAccess(101, OTHER_ORG, Visibility.OPEN), id="project-in-other-org"),
    pytest.param(ProjectAccess(101, ORG, Visibility.OPEN), id="scope-in-other-org"),
])
def test_cross_organisation_project_scope_denies(project: ProjectAccess) -> None:
    scope = Scope.project(ORG if project.organisation_id == OTHER_ORG else OTHER_ORG, 101)
    both = who(60, {ORG: OrgRole.OWNER, OTHER_ORG: OrgRole.OWNER}, direct_grants={101: A})
    assert not can_read_scope(both, scope, project)
    assert not can_write_scope(both, scope, project)


@pytest.mark.parametrize("project", [
    pytest.param(None, id="missing"),
    pytest.param(ProjectAccess(999, ORG, Visibility.OPEN), id="other-project-id"),
])
def test_project_scope_needs_its_project(project) -> None:
    with pytest.raises(ValueError):
        can_read_scope(PRINCIPALS["owner"], Scope.project(ORG, 101), project)


def test_condition_holds_is_false_outside_its_scope_kind() -> None:
    member = PRINCIPALS["group_member"]
    assert not condition_holds(Condition.IN_GROUP, member, Scope.organisation(ORG))
    assert not condition_holds(Condition.IS_SCOPE_USER, member, Scope.group(ORG, member.user_id))
    assert not condition_holds(Condition.PROJECT_OPEN, member, Scope.organisation(ORG), OPEN)


@pytest.mark.parametrize(("principal", "admin", "owner", "server"), [
    pytest.param(who(1, {ORG: OrgRole.OWNER}), True, True, False, id="owner"),
    pytest.param(who(1, {ORG: OrgRole.ADMIN}), True, False, False, id="admin"),
    pytest.param(who(1), False, False, False, id="member"),
    pytest.param(who(1, {ORG: OrgRole.OWNER}, is_active=False, is_server_admin=True), False, False, False,
                 id="inactive-owner-server-admin"),
    pytest.param(who(1, {}, is_server_admin=True), False, False, True, id="server-admin-not-member"),
])
def test_org_and_server_roles(principal: Principal, admin: bool, owner: bool, server: bool) -> None:
    assert (can_administer_org(principal, ORG), is_org_owner(principal, ORG), is_server_admin(principal)) == (
        admin, owner, server)


def test_roles_rank_and_capabilities() -> None:
    assert [r.rank for r in (V, M, L, A)] == [1, 2, 3, 4]
    assert [(r.reads, r.writes, r.manages) for r in (V, M, L, A)] == [
        (True, False, False), (True, True, False), (True, True, True), (True, True, True)]
    assert ProjectRole.highest([M, V, L]) is L and ProjectRole.highest([]) is None
    assert [r.manages_org for r in OrgRole] == [True, True, False]


def test_principal_is_immutable_and_hashable() -> None:
    roles = {ORG: OrgRole.MEMBER}
    principal = Principal.build(1, org_roles=roles, direct_grants={101: "lead"})
    roles[ORG] = OrgRole.OWNER
    assert principal.org_roles[ORG] is OrgRole.MEMBER and principal.direct_grants[101] is L
    with pytest.raises(TypeError):
        principal.org_roles[ORG] = OrgRole.OWNER  # type: ignore[index]
    assert hash(principal) == hash(Principal.build(1, org_roles={ORG: "member"}, direct_grants={101: L}))


@pytest.mark.parametrize(("exists", "error", "message"), [
    pytest.param(False, NotFound, "project not found", id="hidden-is-404"),
    pytest.param(True, AccessDenied, None, id="visible-is-403"),
])
def test_authorize_refuses(exists: bool, error: type, message: str | None) -> None:
    with pytest.raises(error) as info:
        authorize(False, exists_for_caller=exists, what="project")
    assert message is None or info.value.message == message


def test_authorize_allows() -> None:
    assert authorize(True, what="project") is None


# --- property: random worlds of two organisations, two groups, two projects ------------------------

ids = st.integers(1, 2)


def roles_by(keys: st.SearchStrategy, values: list) -> st.SearchStrategy:
    return st.dictionaries(keys, st.sampled_from(values), max_size=2)


principals = st.builds(
    Principal.build, ids, is_active=st.booleans(), is_server_admin=st.booleans(),
    org_roles=roles_by(ids, list(OrgRole)), group_ids=st.frozensets(ids),
    direct_grants=roles_by(ids, list(ProjectRole)), group_grants=roles_by(ids, list(ProjectRole)),
)
scopes = st.builds(lambda kind, org, ref: Scope(kind, org, org if kind is ScopeKind.ORGANISATION else ref),
                   st.sampled_from(list(ScopeKind)), ids, ids)


@given(principals, scopes, ids, st.sampled_from(list(Visibility)))
def test_write_implies_read_and_explain_agrees(principal, scope, project_org, visibility) -> None:
    is_project = scope.kind is ScopeKind.PROJECT
    project = ProjectAccess(scope.ref_id, project_org, visibility) if is_project else None
    readable = can_read_scope(principal, scope, project)
    assert not can_write_scope(principal, scope, project) or readable
    assert (explain_read(principal, scope, project) is not None) is readable
    if project is not None and project.organisation_id == scope.organisation_id:
        assert readable is can_read_project(principal, project)
        assert can_write_scope(principal, scope, project) is can_write_project(principal, project)
