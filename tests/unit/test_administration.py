"""Administration use cases over the in-memory directory (SPEC §1, §2): who may do what, and attacks that
name another organisation's objects. Principals are reloaded before every call, as a request would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes import FakePasswordHasher, InMemoryDirectory, InMemorySignInLog
from tow_core import administration as adm
from tow_core.access import Condition, OrgRole, Principal, ProjectRole, Scope, Visibility
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tow_core.identity import Project, ProjectStatus, Session, WorkflowMode

V, M, L, A = ProjectRole.VIEWER, ProjectRole.MEMBER, ProjectRole.LEAD, ProjectRole.ADMIN


class World:
    """Organisation ACME: owner, admin, alice/bob/carol (members), vic (viewer of SEC), lena (lead of SEC),
    bob in group Eng; projects OPN (open) and SEC (restricted). Organisation OTHER: oscar (owner), olga
    (admin), its own group, project and grant. root is a server admin and a member of nothing."""

    def __init__(self) -> None:
        d = self.d = InMemoryDirectory()
        self.ids: dict[str, int] = {}
        for name in ("root", "owner", "admin", "alice", "bob", "carol", "vic", "lena", "oscar", "olga"):
            self.ids[name] = d.add_user(f"{name}@example.com", name.title(), "fake$x", server_admin=name == "root").id
        self.org = d.add_organisation("ACME", WorkflowMode.ORGANIZATION).id
        self.other = d.add_organisation("OTHER", WorkflowMode.FOUNDER).id
        for name, role in [("owner", OrgRole.OWNER), ("admin", OrgRole.ADMIN), *[(n, OrgRole.MEMBER) for n in (
                "alice", "bob", "carol", "vic", "lena")]]:
            d.set_membership(self.org, self.ids[name], role)
        d.set_membership(self.other, self.ids["oscar"], OrgRole.OWNER)
        d.set_membership(self.other, self.ids["olga"], OrgRole.ADMIN)
        self.eng = d.add_group(self.org, "Eng").id
        d.add_group_member(self.eng, self.ids["bob"])
        self.opn = self._project(self.org, "OPN", Visibility.OPEN)
        self.sec = self._project(self.org, "SEC", Visibility.RESTRICTED)
        self.vic_grant = d.put_grant(self.sec, user_id=self.ids["vic"], group_id=None, role=V).id
        d.put_grant(self.sec, user_id=self.ids["lena"], group_id=None, role=L)
        self.other_group = d.add_group(self.other, "Ops").id
        d.add_group_member(self.other_group, self.ids["olga"])
        self.oth = self._project(self.other, "OTH", Visibility.RESTRICTED)
        self.other_grant = d.put_grant(self.oth, user_id=self.ids["olga"], group_id=None, role=A).id

    def _project(self, org: int, key: str, visibility: Visibility) -> int:
        return self.d.add_project(Project(0, org, key, key.title(), "", None, visibility, ProjectStatus.ACTIVE)).id

    def p(self, name: str) -> Principal:
        principal = self.d.principal(self.ids[name])
        assert principal is not None
        return principal


@pytest.fixture
def w() -> World:
    return World()


@contextmanager
def raises(exc: type[Exception], field: str | None = None) -> Iterator[pytest.ExceptionInfo]:
    """pytest.raises that also checks the error's ``field``."""
    with pytest.raises(exc) as info:
        yield info
    if field is not None:
        assert info.value.field == field


# --- organisations ----------------------------------------------------------------------------


def test_server_admin_creates_organisation_and_becomes_owner(w: World) -> None:
    org = adm.create_organisation(w.d, w.p("root"), name="  New Co ", workflow_mode="founder")
    assert (org.name, org.workflow_mode) == ("New Co", WorkflowMode.FOUNDER)
    assert w.p("root").org_roles[org.id] is OrgRole.OWNER


@pytest.mark.parametrize("who", ["owner", "admin", "alice", "oscar"])
def test_only_server_admins_create_organisations(w: World, who: str) -> None:
    with raises(AccessDenied):
        adm.create_organisation(w.d, w.p(who), name="Sneaky")


@pytest.mark.parametrize(("kwargs", "field"), [({"name": "  "}, "name"), ({"name": "X", "workflow_mode": "solo"},
                                                                          "workflow_mode")])
def test_create_organisation_validates(w: World, kwargs: dict, field: str) -> None:
    with raises(InvalidInput, field):
        adm.create_organisation(w.d, w.p("root"), **kwargs)


def test_deactivated_server_admin_cannot_create_organisations(w: World) -> None:
    w.d.set_active(w.ids["root"], False)
    with raises(AccessDenied):
        adm.create_organisation(w.d, w.p("root"), name="X")


@pytest.mark.parametrize(("who", "error"), [
    ("alice", None), ("owner", None), ("oscar", NotFound), ("olga", NotFound), ("root", NotFound),
])
def test_get_organisation_is_for_members_only(w: World, who: str, error) -> None:
    if error is None:
        assert adm.get_organisation(w.d, w.p(who), org_id=w.org).name == "ACME"
    else:
        with raises(error):
            adm.get_organisation(w.d, w.p(who), org_id=w.org)


def test_deactivated_member_sees_nothing(w: World) -> None:
    w.d.set_active(w.ids["owner"], False)
    with raises(NotFound):
        adm.get_organisation(w.d, w.p("owner"), org_id=w.org)


def test_admin_updates_name_and_workflow_mode(w: World) -> None:
    org = adm.update_organisation(w.d, w.p("admin"), org_id=w.org, workflow_mode=WorkflowMode.FOUNDER)
    assert (org.name, org.workflow_mode) == ("ACME", WorkflowMode.FOUNDER)
    org = adm.update_organisation(w.d, w.p("owner"), org_id=w.org, name="Acme Ltd")
    assert w.d.organisation(w.org) == org and org.workflow_mode is WorkflowMode.FOUNDER


@pytest.mark.parametrize(("who", "error"), [("alice", AccessDenied), ("olga", NotFound), ("root", NotFound)])
def test_update_organisation_refused(w: World, who: str, error) -> None:
    with raises(error):
        adm.update_organisation(w.d, w.p(who), org_id=w.org, name="Pwned")
    assert w.d.organisation(w.org).name == "ACME"


def test_update_organisation_validates(w: World) -> None:
    with raises(InvalidInput, "workflow_mode"):
        adm.update_organisation(w.d, w.p("owner"), org_id=w.org, workflow_mode="chaos")
    with raises(InvalidInput, "name"):
        adm.update_organisation(w.d, w.p("owner"), org_id=w.org, name="")


# --- members ----------------------------------------------------------------------------------


def test_any_member_lists_members_outsiders_do_not(w: World) -> None:
    names = {m.email for m in adm.list_members(w.d, w.p("alice"), org_id=w.org)}
    assert names == {f"{n}@example.com" for n in ("owner", "admin", "alice", "bob", "carol", "vic", "lena")}
    with raises(NotFound):
        adm.list_members(w.d, w.p("oscar"), org_id=w.org)


# (actor, target, new role, expected error or None)
ROLE_CHANGES = [
    ("owner", "alice", OrgRole.OWNER, None),
    ("owner", "alice", OrgRole.ADMIN, None),
    ("admin", "alice", OrgRole.ADMIN, None),
    ("admin", "admin", OrgRole.MEMBER, None),
    ("admin", "alice", OrgRole.OWNER, AccessDenied),  # only an owner grants owner
    ("admin", "owner", OrgRole.ADMIN, AccessDenied),  # only an owner removes owner
    ("admin", "admin", OrgRole.OWNER, AccessDenied),  # no self-promotion
    ("alice", "bob", OrgRole.ADMIN, AccessDenied),
    ("alice", "alice", OrgRole.ADMIN, AccessDenied),
    ("oscar", "alice", OrgRole.ADMIN, NotFound),  # owner of another organisation
    ("olga", "alice", OrgRole.MEMBER, NotFound),
    ("root", "alice", OrgRole.ADMIN, NotFound),  # server admin grants no organisation role
    ("owner", "oscar", OrgRole.MEMBER, NotFound),  # target not in this organisation
    ("owner", "owner", OrgRole.MEMBER, Conflict),  # last owner
]


@pytest.mark.parametrize(("actor", "target", "role", "error"), ROLE_CHANGES,
                         ids=[f"{a}-sets-{t}-{r}" for a, t, r, _ in ROLE_CHANGES])
def test_change_member_role(w: World, actor: str, target: str, role: OrgRole, error) -> None:
    before = w.d.principal(w.ids[target]).org_roles.get(w.org)
    if error is None:
        member = adm.change_member_role(w.d, w.p(actor), org_id=w.org, user_id=w.ids[target], role=role)
        assert member.role is role and w.p(target).org_roles[w.org] is role
    else:
        with raises(error):
            adm.change_member_role(w.d, w.p(actor), org_id=w.org, user_id=w.ids[target], role=role)
        assert w.d.principal(w.ids[target]).org_roles.get(w.org) == before


def test_change_member_role_rejects_unknown_role(w: World) -> None:
    with raises(InvalidInput, "role"):
        adm.change_member_role(w.d, w.p("owner"), org_id=w.org, user_id=w.ids["alice"], role="superuser")


def test_owner_steps_down_once_another_owner_exists(w: World) -> None:
    adm.change_member_role(w.d, w.p("owner"), org_id=w.org, user_id=w.ids["alice"], role="owner")
    adm.change_member_role(w.d, w.p("owner"), org_id=w.org, user_id=w.ids["owner"], role="member")
    assert w.d.count_owners(w.org) == 1
    with raises(Conflict):
        adm.change_member_role(w.d, w.p("alice"), org_id=w.org, user_id=w.ids["alice"], role="admin")


def test_a_deactivated_owner_does_not_count_as_the_remaining_owner(w: World) -> None:
    adm.change_member_role(w.d, w.p("owner"), org_id=w.org, user_id=w.ids["alice"], role="owner")
    w.d.set_active(w.ids["alice"], False)
    with raises(Conflict):
        adm.change_member_role(w.d, w.p("owner"), org_id=w.org, user_id=w.ids["owner"], role="member")
    # demoting the deactivated owner leaves the active owner in place: allowed
    adm.change_member_role(w.d, w.p("owner"), org_id=w.org, user_id=w.ids["alice"], role="member")


# (actor, target, expected error or None)
REMOVALS = [
    ("admin", "alice", None),
    ("owner", "admin", None),
    ("alice", "alice", None),  # leaving
    ("admin", "admin", None),
    ("admin", "owner", AccessDenied),  # removing an owner removes the owner role
    ("alice", "bob", AccessDenied),
    ("oscar", "alice", NotFound),
    ("olga", "alice", NotFound),
    ("owner", "oscar", NotFound),
    ("owner", "owner", Conflict),  # the last owner cannot leave
]


@pytest.mark.parametrize(("actor", "target", "error"), REMOVALS, ids=[f"{a}-removes-{t}" for a, t, _ in REMOVALS])
def test_remove_member(w: World, actor: str, target: str, error) -> None:
    if error is None:
        adm.remove_member(w.d, w.p(actor), org_id=w.org, user_id=w.ids[target])
        assert w.org not in w.p(target).org_roles
    else:
        with raises(error):
            adm.remove_member(w.d, w.p(actor), org_id=w.org, user_id=w.ids[target])
    assert w.d.principal(w.ids["oscar"]).org_roles == {w.other: OrgRole.OWNER}


def test_owner_may_remove_another_owner_but_not_the_last(w: World) -> None:
    adm.change_member_role(w.d, w.p("owner"), org_id=w.org, user_id=w.ids["alice"], role="owner")
    adm.remove_member(w.d, w.p("alice"), org_id=w.org, user_id=w.ids["owner"])
    with raises(Conflict):
        adm.remove_member(w.d, w.p("alice"), org_id=w.org, user_id=w.ids["alice"])


def test_removed_member_loses_group_and_grants_at_once(w: World) -> None:
    adm.put_grant(w.d, w.p("owner"), org_id=w.org, project_id=w.sec, group_id=w.eng, role=M)
    assert adm.get_project(w.d, w.p("bob"), org_id=w.org, project_id=w.sec).key == "SEC"
    adm.remove_member(w.d, w.p("admin"), org_id=w.org, user_id=w.ids["bob"])
    adm.remove_member(w.d, w.p("admin"), org_id=w.org, user_id=w.ids["vic"])
    assert w.d.group(w.eng).member_ids == ()
    assert [g.user_id for g in w.d.grants(w.sec) if g.user_id] == [w.ids["lena"]]
    for who in ("bob", "vic"):
        with raises(NotFound):
            adm.get_project(w.d, w.p(who), org_id=w.org, project_id=w.sec)
    # re-adding bob does not restore the old access (SPEC: no silent restore)
    w.d.set_membership(w.org, w.ids["bob"], OrgRole.MEMBER)
    with raises(NotFound):
        adm.get_project(w.d, w.p("bob"), org_id=w.org, project_id=w.sec)


# --- groups -----------------------------------------------------------------------------------


def test_admin_manages_groups(w: World) -> None:
    ops = adm.create_group(w.d, w.p("admin"), org_id=w.org, name=" Ops ")
    assert ops.name == "Ops" and ops.member_ids == ()
    assert adm.rename_group(w.d, w.p("admin"), org_id=w.org, group_id=ops.id, name="Operations").name == "Operations"
    group = adm.add_group_member(w.d, w.p("owner"), org_id=w.org, group_id=ops.id, user_id=w.ids["carol"])
    assert group.member_ids == (w.ids["carol"],)
    assert adm.remove_group_member(w.d, w.p("admin"), org_id=w.org, group_id=ops.id,
                                   user_id=w.ids["carol"]).member_ids == ()
    adm.delete_group(w.d, w.p("admin"), org_id=w.org, group_id=ops.id)
    assert [g.name for g in adm.list_groups(w.d, w.p("carol"), org_id=w.org)] == ["Eng"]


def test_group_names_are_unique_case_insensitively(w: World) -> None:
    with raises(Conflict, "name"):
        adm.create_group(w.d, w.p("admin"), org_id=w.org, name="ENG")
    ops = adm.create_group(w.d, w.p("admin"), org_id=w.org, name="Ops")
    with raises(Conflict, "name"):
        adm.rename_group(w.d, w.p("admin"), org_id=w.org, group_id=ops.id, name="eng")
    assert adm.rename_group(w.d, w.p("admin"), org_id=w.org, group_id=w.eng, name="ENG").name == "ENG"
    assert adm.create_group(w.d, w.p("oscar"), org_id=w.other, name="Eng").organisation_id == w.other


GROUP_CALLS = {
    "create": lambda w, pr, g: adm.create_group(w.d, pr, org_id=w.org, name="New"),
    "rename": lambda w, pr, g: adm.rename_group(w.d, pr, org_id=w.org, group_id=g, name="New"),
    "delete": lambda w, pr, g: adm.delete_group(w.d, pr, org_id=w.org, group_id=g),
    "add": lambda w, pr, g: adm.add_group_member(w.d, pr, org_id=w.org, group_id=g, user_id=w.ids["carol"]),
    "remove": lambda w, pr, g: adm.remove_group_member(w.d, pr, org_id=w.org, group_id=g, user_id=w.ids["olga"]
                                                       if g != w.eng else w.ids["bob"]),
}


def _groups_snapshot(w: World) -> list:
    return [w.d.groups(w.org), w.d.groups(w.other)]


@pytest.mark.parametrize("call", GROUP_CALLS)
@pytest.mark.parametrize(("who", "error"), [("alice", AccessDenied), ("bob", AccessDenied), ("oscar", NotFound),
                                             ("olga", NotFound), ("root", NotFound)])
def test_group_management_refused(w: World, call: str, who: str, error) -> None:
    before = _groups_snapshot(w)
    with raises(error):
        GROUP_CALLS[call](w, w.p(who), w.eng)
    assert _groups_snapshot(w) == before


@pytest.mark.parametrize("call", ["rename", "delete", "add", "remove"])
def test_another_organisations_group_is_not_found_even_for_an_admin_of_both(w: World, call: str) -> None:
    w.d.set_membership(w.other, w.ids["admin"], OrgRole.ADMIN)
    before = _groups_snapshot(w)
    with raises(NotFound):
        GROUP_CALLS[call](w, w.p("admin"), w.other_group)
    assert _groups_snapshot(w) == before


def test_group_members_must_belong_to_the_organisation(w: World) -> None:
    with raises(InvalidInput, "user_id"):
        adm.add_group_member(w.d, w.p("admin"), org_id=w.org, group_id=w.eng, user_id=w.ids["olga"])
    with raises(InvalidInput, "user_id"):
        adm.add_group_member(w.d, w.p("admin"), org_id=w.org, group_id=w.eng, user_id=9999)
    with raises(NotFound):
        adm.remove_group_member(w.d, w.p("admin"), org_id=w.org, group_id=w.eng, user_id=w.ids["carol"])
    assert w.d.group(w.eng).member_ids == (w.ids["bob"],)


def test_group_names_are_validated(w: World) -> None:
    with raises(InvalidInput, "name"):
        adm.create_group(w.d, w.p("admin"), org_id=w.org, name=" ")
    with raises(InvalidInput, "name"):
        adm.rename_group(w.d, w.p("admin"), org_id=w.org, group_id=w.eng, name="x" * 201)


def test_outsider_cannot_list_groups(w: World) -> None:
    with raises(NotFound):
        adm.list_groups(w.d, w.p("olga"), org_id=w.org)


# --- projects ---------------------------------------------------------------------------------


def test_admin_creates_project(w: World) -> None:
    project = adm.create_project(w.d, w.p("admin"), org_id=w.org, key="APP", name=" App ", visibility="restricted",
                                 description=" the app ", lead_user_id=w.ids["alice"])
    assert (project.key, project.name, project.description, project.lead_user_id, project.visibility,
            project.status) == ("APP", "App", "the app", w.ids["alice"], Visibility.RESTRICTED, ProjectStatus.ACTIVE)
    assert w.d.project(project.id) == project


@pytest.mark.parametrize(("who", "error"), [("alice", AccessDenied), ("lena", AccessDenied), ("olga", NotFound),
                                             ("root", NotFound)])
def test_only_org_managers_create_projects(w: World, who: str, error) -> None:
    with raises(error):
        adm.create_project(w.d, w.p(who), org_id=w.org, key="APP", name="App", visibility="open")
    assert [p.key for p in w.d.projects(w.org)] == ["OPN", "SEC"]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"key": "app"}, "key"), ({"key": "A"}, "key"), ({"key": "ABCDEFGHIJK"}, "key"), ({"key": "AP-P"}, "key"),
    ({"key": "APP\n"}, "key"), ({"name": ""}, "name"), ({"visibility": "secret"}, "visibility"),
    ({"visibility": None}, "visibility"), ({"lead_user_id": 9999}, "lead_user_id"),
    ({"description": "x" * 10_001}, "description"),
])
def test_create_project_validates(w: World, kwargs: dict, field: str) -> None:
    args = {"key": "APP", "name": "App", "visibility": "open", **kwargs}
    with raises(InvalidInput, field):
        adm.create_project(w.d, w.p("owner"), org_id=w.org, **args)


def test_project_lead_must_be_a_member_of_this_organisation(w: World) -> None:
    with raises(InvalidInput, "lead_user_id"):
        adm.create_project(w.d, w.p("owner"), org_id=w.org, key="APP", name="App", visibility="open",
                           lead_user_id=w.ids["oscar"])


def test_project_keys_are_unique_per_organisation(w: World) -> None:
    with raises(Conflict, "key"):
        adm.create_project(w.d, w.p("owner"), org_id=w.org, key="SEC", name="Again", visibility="open")
    other = adm.create_project(w.d, w.p("oscar"), org_id=w.other, key="SEC", name="Theirs", visibility="open")
    assert other.organisation_id == w.other


@pytest.mark.parametrize(("who", "keys"), [
    ("owner", ["OPN", "SEC"]), ("admin", ["OPN", "SEC"]), ("vic", ["OPN", "SEC"]), ("lena", ["OPN", "SEC"]),
    ("alice", ["OPN"]), ("bob", ["OPN"]),
])
def test_list_projects_shows_only_readable_ones(w: World, who: str, keys: list[str]) -> None:
    assert [p.key for p in adm.list_projects(w.d, w.p(who), org_id=w.org)] == keys


def test_list_projects_filters_by_status_and_refuses_outsiders(w: World) -> None:
    adm.update_project(w.d, w.p("owner"), org_id=w.org, project_id=w.opn, status="archived")
    assert [p.key for p in adm.list_projects(w.d, w.p("alice"), org_id=w.org, status="active")] == []
    assert [p.key for p in adm.list_projects(w.d, w.p("alice"), org_id=w.org, status="archived")] == ["OPN"]
    with raises(InvalidInput, "status"):
        adm.list_projects(w.d, w.p("alice"), org_id=w.org, status="deleted")
    with raises(NotFound):
        adm.list_projects(w.d, w.p("olga"), org_id=w.org)


@pytest.mark.parametrize(("who", "project", "error"), [
    ("alice", "opn", None), ("alice", "sec", NotFound), ("vic", "sec", None), ("admin", "sec", None),
    ("olga", "opn", NotFound), ("olga", "sec", NotFound), ("root", "opn", NotFound),
    ("owner", "oth", NotFound),  # another organisation's project named under this organisation
    ("olga", "oth", NotFound),  # even for an admin of that organisation, through this organisation's path
])
def test_get_project(w: World, who: str, project: str, error) -> None:
    project_id = getattr(w, project)
    if error is None:
        assert adm.get_project(w.d, w.p(who), org_id=w.org, project_id=project_id).id == project_id
    else:
        with raises(error):
            adm.get_project(w.d, w.p(who), org_id=w.org, project_id=project_id)


PROJECT_CALLS = {
    "get": lambda w, pr, pid: adm.get_project(w.d, pr, org_id=w.org, project_id=pid),
    "update": lambda w, pr, pid: adm.update_project(w.d, pr, org_id=w.org, project_id=pid, name="Pwned"),
    "list_grants": lambda w, pr, pid: adm.list_grants(w.d, pr, org_id=w.org, project_id=pid),
    "put_grant": lambda w, pr, pid: adm.put_grant(w.d, pr, org_id=w.org, project_id=pid, user_id=w.ids["admin"],
                                                  role=A),
    "remove_grant": lambda w, pr, pid: adm.remove_grant(w.d, pr, org_id=w.org, project_id=pid,
                                                        grant_id=w.other_grant),
    "explain": lambda w, pr, pid: adm.explain_access(w.d, pr, org_id=w.org, user_id=w.ids["admin"],
                                                     scope=Scope.project(w.org, pid)),
}


@pytest.mark.parametrize("call", PROJECT_CALLS)
def test_a_manager_of_both_organisations_cannot_reach_the_other_project_through_this_one(w: World, call) -> None:
    """Every id is checked against the organisation in the path, even when the caller could act on it
    through its own organisation."""
    w.d.set_membership(w.other, w.ids["admin"], OrgRole.OWNER)
    before = (w.d.project(w.oth), w.d.grants(w.oth))
    with raises(NotFound):
        PROJECT_CALLS[call](w, w.p("admin"), w.oth)
    assert (w.d.project(w.oth), w.d.grants(w.oth)) == before


def test_restricted_project_visible_through_group_grant_and_gone_the_moment_it_is_removed(w: World) -> None:
    with raises(NotFound):
        adm.get_project(w.d, w.p("bob"), org_id=w.org, project_id=w.sec)
    grant = adm.put_grant(w.d, w.p("lena"), org_id=w.org, project_id=w.sec, group_id=w.eng, role=V)
    assert adm.get_project(w.d, w.p("bob"), org_id=w.org, project_id=w.sec).key == "SEC"
    assert [p.key for p in adm.list_projects(w.d, w.p("bob"), org_id=w.org)] == ["OPN", "SEC"]
    adm.remove_grant(w.d, w.p("lena"), org_id=w.org, project_id=w.sec, grant_id=grant.id)
    with raises(NotFound):
        adm.get_project(w.d, w.p("bob"), org_id=w.org, project_id=w.sec)
    assert [p.key for p in adm.list_projects(w.d, w.p("bob"), org_id=w.org)] == ["OPN"]


def test_leaving_the_group_revokes_access_at_once(w: World) -> None:
    adm.put_grant(w.d, w.p("admin"), org_id=w.org, project_id=w.sec, group_id=w.eng, role=M)
    adm.remove_group_member(w.d, w.p("admin"), org_id=w.org, group_id=w.eng, user_id=w.ids["bob"])
    with raises(NotFound):
        adm.get_project(w.d, w.p("bob"), org_id=w.org, project_id=w.sec)


def test_deleting_the_group_revokes_its_grants(w: World) -> None:
    adm.put_grant(w.d, w.p("admin"), org_id=w.org, project_id=w.sec, group_id=w.eng, role=M)
    adm.delete_group(w.d, w.p("admin"), org_id=w.org, group_id=w.eng)
    assert all(g.group_id is None for g in w.d.grants(w.sec))
    with raises(NotFound):
        adm.get_project(w.d, w.p("bob"), org_id=w.org, project_id=w.sec)


def test_lead_updates_project_settings(w: World) -> None:
    project = adm.update_project(w.d, w.p("lena"), org_id=w.org, project_id=w.sec, name="Secret", description="d",
                                 lead_user_id=w.ids["lena"])
    assert (project.name, project.description, project.lead_user_id, project.key) == (
        "Secret", "d", w.ids["lena"], "SEC")
    kept = adm.update_project(w.d, w.p("owner"), org_id=w.org, project_id=w.sec, name="Secret 2")
    assert kept.lead_user_id == w.ids["lena"] and kept.description == "d"
    cleared = adm.update_project(w.d, w.p("owner"), org_id=w.org, project_id=w.sec, lead_user_id=None)
    assert cleared.lead_user_id is None and w.d.project(w.sec) == cleared


def test_archive_and_unarchive(w: World) -> None:
    archived = adm.update_project(w.d, w.p("lena"), org_id=w.org, project_id=w.sec, status=ProjectStatus.ARCHIVED)
    assert archived.status is ProjectStatus.ARCHIVED
    assert adm.get_project(w.d, w.p("vic"), org_id=w.org, project_id=w.sec).status is ProjectStatus.ARCHIVED
    assert adm.update_project(w.d, w.p("lena"), org_id=w.org, project_id=w.sec,
                              status="active").status is ProjectStatus.ACTIVE


@pytest.mark.parametrize(("who", "project", "error"), [
    ("vic", "sec", AccessDenied),  # a viewer sees it but may not manage
    ("alice", "opn", AccessDenied),  # open: every member writes, but does not manage
    ("alice", "sec", NotFound),  # restricted and ungranted: may not know it exists
    ("olga", "opn", NotFound),
    ("owner", "oth", NotFound),
])
def test_update_project_refused(w: World, who: str, project: str, error) -> None:
    project_id = getattr(w, project)
    before = w.d.project(project_id)
    with raises(error):
        adm.update_project(w.d, w.p(who), org_id=w.org, project_id=project_id, visibility="open", name="Pwned")
    assert w.d.project(project_id) == before


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"lead_user_id": 9999}, "lead_user_id"), ({"visibility": "public"}, "visibility"),
    ({"status": "deleted"}, "status"), ({"name": " "}, "name"),
])
def test_update_project_validates(w: World, kwargs: dict, field: str) -> None:
    with raises(InvalidInput, field):
        adm.update_project(w.d, w.p("owner"), org_id=w.org, project_id=w.sec, **kwargs)


def test_lead_from_another_organisation_is_refused(w: World) -> None:
    with raises(InvalidInput, "lead_user_id"):
        adm.update_project(w.d, w.p("owner"), org_id=w.org, project_id=w.sec, lead_user_id=w.ids["olga"])


def test_visibility_change_applies_on_the_next_request(w: World) -> None:
    adm.update_project(w.d, w.p("lena"), org_id=w.org, project_id=w.sec, visibility=Visibility.OPEN)
    assert adm.get_project(w.d, w.p("alice"), org_id=w.org, project_id=w.sec).visibility is Visibility.OPEN
    adm.update_project(w.d, w.p("owner"), org_id=w.org, project_id=w.sec, visibility="restricted")
    with raises(NotFound):
        adm.get_project(w.d, w.p("alice"), org_id=w.org, project_id=w.sec)


@pytest.mark.parametrize("documented", [adm, adm.create_project, adm.update_project], ids=lambda d: d.__name__)
def test_docstrings_say_open_projects_are_writable_by_every_member(documented) -> None:
    assert "writable by every member" in " ".join(documented.__doc__.split())


def test_every_member_writes_an_open_project(w: World) -> None:
    got = adm.explain_access(w.d, w.p("carol"), org_id=w.org, user_id=w.ids["carol"], scope=Scope.project(w.org, w.opn))
    assert got.write is Condition.PROJECT_OPEN


# --- grants -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "error"), [
    ("vic", None), ("lena", None), ("admin", None), ("alice", NotFound), ("olga", NotFound), ("root", NotFound),
])
def test_list_grants_for_readers_only(w: World, who: str, error) -> None:
    if error is None:
        assert {g.user_id for g in adm.list_grants(w.d, w.p(who), org_id=w.org, project_id=w.sec)} == {
            w.ids["vic"], w.ids["lena"]}
    else:
        with raises(error):
            adm.list_grants(w.d, w.p(who), org_id=w.org, project_id=w.sec)


def test_list_grants_of_another_organisations_project_is_not_found(w: World) -> None:
    with raises(NotFound):
        adm.list_grants(w.d, w.p("owner"), org_id=w.org, project_id=w.oth)


@pytest.mark.parametrize("who", ["lena", "admin", "owner"])
def test_managers_put_grants_and_regranting_replaces_the_role(w: World, who: str) -> None:
    first = adm.put_grant(w.d, w.p(who), org_id=w.org, project_id=w.sec, user_id=w.ids["alice"], role="viewer")
    again = adm.put_grant(w.d, w.p(who), org_id=w.org, project_id=w.sec, user_id=w.ids["alice"], role=M)
    assert again.id == first.id and again.role is M
    assert [g.role for g in w.d.grants(w.sec) if g.user_id == w.ids["alice"]] == [M]
    assert w.p("alice").direct_grants[w.sec] is M


@pytest.mark.parametrize(("who", "error"), [
    ("vic", AccessDenied), ("alice", NotFound), ("bob", NotFound), ("olga", NotFound), ("oscar", NotFound),
    ("root", NotFound),
])
def test_put_grant_refused(w: World, who: str, error) -> None:
    with raises(error):
        adm.put_grant(w.d, w.p(who), org_id=w.org, project_id=w.sec, user_id=w.ids[who] if who != "root"
                      else w.ids["alice"], role=A)
    assert len(w.d.grants(w.sec)) == 2


def test_member_of_open_project_cannot_manage_its_grants(w: World) -> None:
    with raises(AccessDenied):
        adm.put_grant(w.d, w.p("alice"), org_id=w.org, project_id=w.opn, user_id=w.ids["alice"], role=A)


@pytest.mark.parametrize(("holder", "error", "field"), [
    ({}, InvalidInput, "user_id"),
    ({"user_id": "alice", "group_id": "eng"}, InvalidInput, "user_id"),
    ({"user_id": "olga"}, InvalidInput, "user_id"),  # a user of another organisation
    ({"user_id": 9999}, InvalidInput, "user_id"),
    ({"group_id": "other_group"}, NotFound, None),  # a group of another organisation
    ({"group_id": 9999}, NotFound, None),
])
def test_put_grant_checks_the_holder(w: World, holder: dict, error, field) -> None:
    resolve = {"alice": w.ids["alice"], "olga": w.ids["olga"], "eng": w.eng, "other_group": w.other_group}
    kwargs = {k: resolve.get(v, v) for k, v in holder.items()}
    with raises(error, field):
        adm.put_grant(w.d, w.p("owner"), org_id=w.org, project_id=w.sec, role=M, **kwargs)
    assert len(w.d.grants(w.sec)) == 2


def test_put_grant_rejects_unknown_role(w: World) -> None:
    with raises(InvalidInput, "role"):
        adm.put_grant(w.d, w.p("owner"), org_id=w.org, project_id=w.sec, user_id=w.ids["alice"], role="god")


def test_grant_on_another_organisations_project_never_acts(w: World) -> None:
    w.d.set_membership(w.other, w.ids["admin"], OrgRole.MEMBER)  # even when also a member there
    with raises(NotFound):
        adm.put_grant(w.d, w.p("admin"), org_id=w.org, project_id=w.oth, user_id=w.ids["admin"], role=A)
    assert w.d.grants(w.oth) == [w.d.grant(w.other_grant)]


def test_viewer_is_granted_lead_then_manages(w: World) -> None:
    adm.put_grant(w.d, w.p("lena"), org_id=w.org, project_id=w.sec, user_id=w.ids["vic"], role=L)
    adm.put_grant(w.d, w.p("vic"), org_id=w.org, project_id=w.sec, user_id=w.ids["carol"], role=V)
    assert adm.get_project(w.d, w.p("carol"), org_id=w.org, project_id=w.sec).key == "SEC"


def test_remove_grant(w: World) -> None:
    adm.remove_grant(w.d, w.p("lena"), org_id=w.org, project_id=w.sec, grant_id=w.vic_grant)
    assert w.d.grant(w.vic_grant) is None
    with raises(NotFound):
        adm.get_project(w.d, w.p("vic"), org_id=w.org, project_id=w.sec)


@pytest.mark.parametrize(("who", "project", "grant", "error"), [
    ("vic", "sec", "vic_grant", AccessDenied),  # a viewer cannot even remove their own grant
    ("alice", "sec", "vic_grant", NotFound),
    ("olga", "sec", "vic_grant", NotFound),
    ("owner", "opn", "vic_grant", NotFound),  # a grant of another project, named under this one
    ("owner", "sec", "other_grant", NotFound),  # another organisation's grant
    ("owner", "oth", "other_grant", NotFound),  # another organisation's project
])
def test_remove_grant_refused(w: World, who: str, project: str, grant: str, error) -> None:
    with raises(error):
        adm.remove_grant(w.d, w.p(who), org_id=w.org, project_id=getattr(w, project), grant_id=getattr(w, grant))
    assert w.d.grant(w.vic_grant) is not None and w.d.grant(w.other_grant) is not None


# --- server admins ----------------------------------------------------------------------------


def test_server_admins_listed_without_password_hashes(w: World) -> None:
    admins = adm.list_server_admins(w.d, w.p("root"))
    assert [(u.id, u.password_hash) for u in admins] == [(w.ids["root"], None)]


@pytest.mark.parametrize("who", ["owner", "admin", "alice"])
def test_only_server_admins_see_or_change_server_admins(w: World, who: str) -> None:
    with raises(AccessDenied):
        adm.list_server_admins(w.d, w.p(who))
    with raises(AccessDenied):
        adm.set_server_admin(w.d, w.p(who), w.ids[who], True)
    assert not w.p(who).is_server_admin


def test_grant_and_revoke_server_admin(w: World) -> None:
    user = adm.set_server_admin(w.d, w.p("root"), w.ids["alice"], True)
    assert user.is_server_admin and user.password_hash is None and w.p("alice").is_server_admin
    adm.set_server_admin(w.d, w.p("alice"), w.ids["root"], False)
    assert [u.id for u in w.d.server_admins()] == [w.ids["alice"]]
    with raises(Conflict):
        adm.set_server_admin(w.d, w.p("alice"), w.ids["alice"], False)
    assert w.p("alice").is_server_admin


def test_last_server_admin_cannot_be_revoked(w: World) -> None:
    with raises(Conflict):
        adm.set_server_admin(w.d, w.p("root"), w.ids["root"], False)


def test_deactivated_server_admin_does_not_count(w: World) -> None:
    adm.set_server_admin(w.d, w.p("root"), w.ids["alice"], True)
    w.d.set_active(w.ids["alice"], False)
    with raises(Conflict):
        adm.set_server_admin(w.d, w.p("root"), w.ids["root"], False)
    with raises(Conflict, "user_id"):  # nor can a deactivated user be made server admin
        adm.set_server_admin(w.d, w.p("root"), w.ids["alice"], True)
    adm.set_server_admin(w.d, w.p("root"), w.ids["alice"], False)  # revoking from the deactivated one is fine


def test_set_server_admin_unknown_user(w: World) -> None:
    with raises(NotFound):
        adm.set_server_admin(w.d, w.p("root"), 9999, True)


def test_server_admin_gets_no_organisation_role(w: World) -> None:
    with raises(NotFound):
        adm.list_members(w.d, w.p("root"), org_id=w.org)


# --- explaining access ------------------------------------------------------------------------


def scope_of(w: World, kind: str, target: str) -> Scope:
    return {
        "org": Scope.organisation(w.org),
        "eng": Scope.group(w.org, w.eng),
        "opn": Scope.project(w.org, w.opn),
        "sec": Scope.project(w.org, w.sec),
        "own": Scope.private(w.org, w.ids[target]),
        "alice_private": Scope.private(w.org, w.ids["alice"]),
    }[kind]


# (target user, scope, read condition, write condition, read reason, write reason) — asked by the owner
EXPLANATIONS = [
    ("alice", "org", Condition.IS_MEMBER, Condition.IS_MEMBER, "member of the organisation", None),
    ("admin", "sec", Condition.IS_ORG_MANAGER, Condition.IS_ORG_MANAGER, "organisation owner/admin", None),
    ("alice", "opn", Condition.PROJECT_OPEN, Condition.PROJECT_OPEN, "project is open to every member", None),
    ("vic", "sec", Condition.PROJECT_GRANT_READS, None, "granted viewer directly",
     "denied: granted viewer directly, and viewer only reads"),
    ("lena", "sec", Condition.PROJECT_GRANT_READS, Condition.PROJECT_GRANT_WRITES, "granted lead directly",
     "granted lead directly"),
    ("alice", "sec", None, None, "denied: restricted project, no grant, directly or through a group", None),
    ("bob", "eng", Condition.IN_GROUP, Condition.IN_GROUP, "member of group Eng", None),
    ("alice", "eng", None, None, "denied: not in group Eng", None),
    ("owner", "eng", Condition.IS_ORG_MANAGER, Condition.IS_ORG_MANAGER, "organisation owner/admin", None),
    ("alice", "own", Condition.IS_SCOPE_USER, Condition.IS_SCOPE_USER, "the user's own private scope", None),
    ("owner", "alice_private", None, None, "denied: private to another user", None),
    ("olga", "org", None, None, "denied: not a member of the organisation", None),
    ("root", "opn", None, None, "denied: not a member of the organisation", None),
]


@pytest.mark.parametrize(("target", "scope", "read", "write", "read_reason", "write_reason"), EXPLANATIONS,
                         ids=[f"{t}-{s}" for t, s, *_ in EXPLANATIONS])
def test_explain_access(w: World, target, scope, read, write, read_reason, write_reason) -> None:
    got = adm.explain_access(w.d, w.p("owner"), org_id=w.org, user_id=w.ids[target],
                             scope=scope_of(w, scope, target))
    assert (got.read, got.write) == (read, write)
    assert got.read_reason.startswith(read_reason)
    assert got.write_reason.startswith(write_reason or read_reason)


def test_explain_names_the_group_that_grants(w: World) -> None:
    adm.put_grant(w.d, w.p("owner"), org_id=w.org, project_id=w.sec, group_id=w.eng, role=M)
    got = adm.explain_access(w.d, w.p("owner"), org_id=w.org, user_id=w.ids["bob"], scope=Scope.project(w.org, w.sec))
    assert (got.read_reason, got.write_reason) == ("granted member through group Eng",) * 2
    # a higher direct grant wins the explanation; a lower one does not
    adm.put_grant(w.d, w.p("owner"), org_id=w.org, project_id=w.sec, user_id=w.ids["bob"], role=V)
    got = adm.explain_access(w.d, w.p("owner"), org_id=w.org, user_id=w.ids["bob"], scope=Scope.project(w.org, w.sec))
    assert got.write_reason == "granted member through group Eng"
    adm.put_grant(w.d, w.p("owner"), org_id=w.org, project_id=w.sec, user_id=w.ids["bob"], role=A)
    got = adm.explain_access(w.d, w.p("owner"), org_id=w.org, user_id=w.ids["bob"], scope=Scope.project(w.org, w.sec))
    assert got.write_reason == "granted admin directly"


def test_a_stray_grant_to_another_organisations_group_neither_grants_nor_explains(w: World) -> None:
    """Such a row cannot be made through put_grant; if one exists, policy, explanation and review ignore it."""
    w.d.set_membership(w.org, w.ids["olga"], OrgRole.MEMBER)
    w.d.put_grant(w.sec, user_id=None, group_id=w.other_group, role=A)
    adm.put_grant(w.d, w.p("owner"), org_id=w.org, project_id=w.sec, user_id=w.ids["olga"], role=V)
    got = adm.explain_access(w.d, w.p("owner"), org_id=w.org, user_id=w.ids["olga"], scope=Scope.project(w.org, w.sec))
    assert (got.read_reason, got.write) == ("granted viewer directly", None)
    review = adm.access_review(w.d, w.p("owner"), org_id=w.org)
    stray = [rg for rg in review.restricted_projects[0].grants if rg.grant.group_id == w.other_group]
    assert len(stray) == 1 and stray[0].users == ()


def test_explain_deactivated_member(w: World) -> None:
    w.d.set_active(w.ids["alice"], False)
    got = adm.explain_access(w.d, w.p("owner"), org_id=w.org, user_id=w.ids["alice"], scope=Scope.organisation(w.org))
    assert (got.read, got.read_reason) == (None, "denied: the user is deactivated")


def test_any_member_may_explain_their_own_access(w: World) -> None:
    got = adm.explain_access(w.d, w.p("vic"), org_id=w.org, user_id=w.ids["vic"], scope=Scope.project(w.org, w.sec))
    assert (got.read, got.write) == (Condition.PROJECT_GRANT_READS, None)


@pytest.mark.parametrize(("asker", "target", "scope", "error"), [
    ("alice", "bob", "org", AccessDenied),  # a member about someone else
    ("vic", "lena", "sec", AccessDenied),
    ("alice", "alice", "sec", NotFound),  # a restricted project the asker cannot read
    ("olga", "olga", "org", NotFound),  # not a member
    ("olga", "alice", "org", NotFound),  # admin of another organisation
    ("root", "alice", "org", NotFound),
    ("owner", "alice", "oth", NotFound),  # another organisation's project
    ("owner", "alice", "oth_in_other", NotFound),  # a scope of another organisation
    ("owner", "alice", "other_group", NotFound),
    ("owner", "alice", "other_org", NotFound),
])
def test_explain_access_refused(w: World, asker: str, target: str, scope: str, error) -> None:
    scopes = {
        "org": Scope.organisation(w.org), "sec": Scope.project(w.org, w.sec), "oth": Scope.project(w.org, w.oth),
        "oth_in_other": Scope.project(w.other, w.oth), "other_group": Scope.group(w.org, w.other_group),
        "other_org": Scope.organisation(w.other),
    }
    with raises(error):
        adm.explain_access(w.d, w.p(asker), org_id=w.org, user_id=w.ids[target], scope=scopes[scope])


def test_explanation_is_frozen(w: World) -> None:
    got = adm.explain_access(w.d, w.p("alice"), org_id=w.org, user_id=w.ids["alice"], scope=Scope.organisation(w.org))
    with pytest.raises(AttributeError):
        got.read = None  # type: ignore[misc]


# --- access review ----------------------------------------------------------------------------


def test_access_review_contents(w: World) -> None:
    adm.put_grant(w.d, w.p("owner"), org_id=w.org, project_id=w.sec, group_id=w.eng, role=V)
    adm.add_group_member(w.d, w.p("owner"), org_id=w.org, group_id=w.eng, user_id=w.ids["lena"])
    adm.put_grant(w.d, w.p("owner"), org_id=w.org, project_id=w.opn, user_id=w.ids["carol"], role=L)
    w.d.set_active(w.ids["vic"], False)
    w.d.set_active(w.ids["carol"], False)

    review = adm.access_review(w.d, w.p("admin"), org_id=w.org)

    assert review.organisation.name == "ACME"
    assert [(m.user_id, m.role) for m in review.managers] == [(w.ids["admin"], OrgRole.ADMIN),
                                                            (w.ids["owner"], OrgRole.OWNER)]
    assert [(u.id, u.password_hash) for u in review.server_admins] == [(w.ids["root"], None)]
    assert [rp.project.key for rp in review.restricted_projects] == ["SEC"]
    grants = {
        (rg.group.name if rg.group else "direct", rg.grant.role): [(u.email.split("@")[0], u.effective_role)
                                                                   for u in rg.users]
        for rg in review.restricted_projects[0].grants
    }
    assert grants == {
        ("direct", V): [("vic", None)],  # deactivated: no effective access
        ("direct", L): [("lena", L)],
        ("Eng", V): [("bob", V), ("lena", L)],  # lena's direct lead beats the group's viewer
    }
    assert {(d.project.key, d.user.email, d.group) for d in review.deactivated_grants} == {
        ("SEC", "vic@example.com", None), ("OPN", "carol@example.com", None),
    }


def test_access_review_lists_deactivated_users_reached_through_groups(w: World) -> None:
    adm.put_grant(w.d, w.p("owner"), org_id=w.org, project_id=w.sec, group_id=w.eng, role=M)
    w.d.set_active(w.ids["bob"], False)
    review = adm.access_review(w.d, w.p("owner"), org_id=w.org)
    assert [(d.user.user_id, d.group.name) for d in review.deactivated_grants if d.group] == [(w.ids["bob"], "Eng")]


@pytest.mark.parametrize(("who", "error"), [("alice", AccessDenied), ("lena", AccessDenied), ("oscar", NotFound),
                                             ("olga", NotFound), ("root", NotFound)])
def test_access_review_is_for_org_managers(w: World, who: str, error) -> None:
    with raises(error):
        adm.access_review(w.d, w.p(who), org_id=w.org)


def test_access_review_never_shows_another_organisation(w: World) -> None:
    review = adm.access_review(w.d, w.p("owner"), org_id=w.org)
    seen = {u.user_id for rp in review.restricted_projects for rg in rp.grants for u in rg.users}
    assert w.ids["olga"] not in seen and all(rp.project.organisation_id == w.org for rp in review.restricted_projects)


# --- the fakes mirror PgDirectory -------------------------------------------------------------


def test_principal_counts_group_grants_only_from_the_projects_organisation(w: World) -> None:
    # a (bad) row granting another organisation's group on this project gives nothing, as in SQL
    w.d.set_membership(w.org, w.ids["olga"], OrgRole.MEMBER)
    w.d.put_grant(w.sec, user_id=None, group_id=w.other_group, role=A)
    w.d.put_grant(w.sec, user_id=None, group_id=w.eng, role=V)
    w.d.add_group_member(w.eng, w.ids["olga"])
    w.d.put_grant(w.sec, user_id=None, group_id=w.d.add_group(w.org, "Leads").id, role=L)
    w.d.add_group_member(w.d.groups(w.org)[1].id, w.ids["olga"])
    assert dict(w.p("olga").group_grants) == {w.sec: L}  # highest of Eng (viewer) and Leads (lead)


def test_fake_sessions_invites_and_hashers() -> None:
    d, now = InMemoryDirectory(clock=lambda: datetime(2024, 1, 1, tzinfo=UTC)), datetime(2024, 1, 1, tzinfo=UTC)
    user = d.add_user("a@example.com", "A", None, server_admin=False)
    with pytest.raises(Conflict):
        d.add_user("a@example.com", "A again", None, server_admin=False)
    d.add_session(Session("t1", user.id, None, now + timedelta(hours=1)))
    d.add_session(Session("t2", user.id, None, now + timedelta(hours=1)))
    assert d.live_session("t1", now) is not None and d.live_session("t1", now + timedelta(hours=1)) is None
    d.revoke_session("t1", now)
    assert d.live_session("t1", now) is None and d.revoke_user_sessions(user.id, now) == 1
    org = d.add_organisation("O", WorkflowMode.ORGANIZATION)
    invite = d.add_invite(org.id, "h", OrgRole.MEMBER, None, user.id, now + timedelta(days=7))
    d.mark_invite_used(invite.id, user.id, now)
    assert d.invite_by_token_hash("h").used_at == now and d.invite_used_by(invite.id) == user.id

    log = InMemorySignInLog()  # the whole port's behaviour: tests/contract/test_sign_in_log.py
    log.record_failure("a", "ip", now - timedelta(hours=1), forget_before=now - timedelta(days=1))
    log.record_failure("a", "ip", now, forget_before=now - timedelta(days=1))
    assert log.recent_failures(now - timedelta(minutes=1), limit=5, email="a") == [now]
    log.clear_failures("a", "ip")
    assert log.recent_failures(now - timedelta(days=1), limit=5, email="a") == []

    hasher, newer = FakePasswordHasher(), FakePasswordHasher(prefix="fake2$")
    stored = hasher.hash("correct horse")
    assert hasher.verify(stored, "correct horse") and not hasher.verify(stored, "wrong")
    assert newer.verify(stored, "correct horse") and newer.needs_rehash(stored) and not hasher.needs_rehash(stored)
    assert not hasher.verify("garbage", "x") and hasher.dummy_verify("x") is False and hasher.dummy_calls == 1


# --- invariants on the entities that own them -------------------------------------------------------


def test_a_member_knows_when_a_role_change_touches_the_owner_role_and_when_it_would_leave_no_owner():
    from tow_core.identity import Member

    owner = Member(1, 7, OrgRole.OWNER, "o@example.com", "O", is_active=True)
    admin = Member(1, 8, OrgRole.ADMIN, "a@example.com", "A", is_active=True)
    assert owner.changes_owner_role(OrgRole.ADMIN) and owner.changes_owner_role(None)
    assert admin.changes_owner_role(OrgRole.OWNER) and not admin.changes_owner_role(OrgRole.MEMBER)
    assert not owner.changes_owner_role(OrgRole.OWNER)
    assert owner.would_leave_no_owner(OrgRole.MEMBER, active_owners=1)
    assert owner.would_leave_no_owner(None, active_owners=1)
    assert not owner.would_leave_no_owner(OrgRole.MEMBER, active_owners=2)
    assert not owner.would_leave_no_owner(OrgRole.OWNER, active_owners=1)
    deactivated = Member(1, 9, OrgRole.OWNER, "d@example.com", "D", is_active=False)  # not counted as active
    assert not deactivated.would_leave_no_owner(None, active_owners=1)
    assert not admin.would_leave_no_owner(None, active_owners=1)
