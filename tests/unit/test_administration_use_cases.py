"""The administration use case objects front doors call (``tow_core.use_cases.administration``), over the
in-memory fakes: each call loads the caller fresh in its own unit of work (revoked or deactivated: refused),
checks membership and permission, and commits or rolls back as one.

The world is tests/unit/records_world.py: Ada owns Acme, Bob and Cy are members, Bob is in group Eng and a
viewer of the restricted project APP; OPS is open, SEC restricted; Oscar owns Other."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from tests.fake_email import InMemoryEmailOutbox
from tests.fake_unit_of_work import fake_transactions, with_inbox
from tests.fake_uploads import InMemoryUploadRecords
from tests.unit.records_world import World
from tow_core.access import Condition, OrgRole, ProjectRole, ScopeKind
from tow_core.audit import AuditAction, AuditQuery
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotAuthenticated, NotFound
from tow_core.identity import InviteState, WorkflowMode
from tow_core.unit_of_work import SessionCredential
from tow_core.use_cases.administration import AdminPageUseCases, OrganisationUseCases, ProjectUseCases


class Tokens:
    """Invite tokens a test can predict: tok-1, tok-2 ..., stored as their "hash" h(tok-1)."""

    def __init__(self) -> None:
        self._n = itertools.count(1)

    def new_token(self) -> str:
        return f"tok-{next(self._n)}"

    def token_hash(self, token: str) -> str:
        return f"h({token})"


class FailingAudit:
    """The world's directory, except that writing the audit entry fails (the change before it must not stay)."""

    def __init__(self, directory) -> None:
        self._directory = directory

    def audit(self, entry) -> None:
        raise Conflict("the audit trail is unavailable")

    def __getattr__(self, name: str):
        return getattr(self._directory, name)


class AdminWorld(World):
    def __init__(self) -> None:
        super().__init__()
        self.uploads = InMemoryUploadRecords(self.directory, self.records, self.clock)
        self.tokens = Tokens()
        self.outbox = InMemoryEmailOutbox()

    def transactions_over(self, directory):
        return fake_transactions(self.clock, rollback=(self.directory, self.uploads, self.outbox),
                                 **with_inbox(self.clock, directory=directory, uploads=self.uploads,
                                              email_outbox=self.outbox))

    @property
    def organisations(self) -> OrganisationUseCases:
        return OrganisationUseCases(self.transactions_over(self.directory), self.tokens)

    @property
    def projects_(self) -> ProjectUseCases:
        return ProjectUseCases(self.transactions_over(self.directory))

    def pages(self, **kwargs) -> AdminPageUseCases:
        return AdminPageUseCases(self.transactions_over(self.directory), **kwargs)


@pytest.fixture
def w() -> AdminWorld:
    return AdminWorld()


# --- organisations, members, groups ---------------------------------------------------------------


def test_members_and_groups_are_read_by_members_only_and_refused_to_anyone_signed_out(w):
    ada, oscar = w.credential("ada"), w.credential("oscar")
    assert {m.display_name for m in w.organisations.members(ada, w.org)} == {"Ada", "Bob", "Cy"}
    assert [g.name for g in w.organisations.groups(ada, w.org)] == ["Eng"]
    assert w.organisations.organisation(ada, w.org).name == "Acme"
    with pytest.raises(NotFound):  # not a member of Acme: it does not exist for him
        w.organisations.members(oscar, w.org)
    with pytest.raises(NotAuthenticated):  # a token no session has
        w.organisations.groups(SessionCredential("forged"), w.org)


def test_a_group_is_created_by_a_manager_and_refused_to_a_plain_member(w):
    ada, bob = w.credential("ada"), w.credential("bob")
    group = w.organisations.create_group(ada, w.org, "Design")
    assert group.name == "Design" and group.organisation_id == w.org
    assert list(w.organisations.add_group_member(ada, w.org, group.id, w.ids["cy"]).member_ids) == [w.ids["cy"]]
    with pytest.raises(AccessDenied):
        w.organisations.create_group(bob, w.org, "Sales")
    with pytest.raises(AccessDenied):
        w.organisations.remove_group_member(bob, w.org, group.id, w.ids["cy"])
    assert sorted(g.name for g in w.directory.groups(w.org)) == ["Design", "Eng"]


def test_a_change_whose_audit_entry_fails_leaves_nothing_behind(w):
    failing = OrganisationUseCases(w.transactions_over(FailingAudit(w.directory)), w.tokens)
    with pytest.raises(Conflict):
        failing.create_group(w.credential("ada"), w.org, "Design")
    assert [g.name for g in w.directory.groups(w.org)] == ["Eng"]  # the group went with the failed transaction


def test_the_last_owner_keeps_the_role_and_a_deactivated_owner_is_refused_at_once(w):
    ada = w.credential("ada")
    with pytest.raises(Conflict):
        w.organisations.change_member_role(ada, w.org, w.ids["ada"], OrgRole.MEMBER)
    promoted = w.organisations.change_member_role(ada, w.org, w.ids["bob"], "admin")
    assert promoted.role is OrgRole.ADMIN
    w.directory.set_active(w.ids["ada"], False)  # revocation is immediate: the next call is refused
    with pytest.raises(NotAuthenticated):
        w.organisations.members(ada, w.org)


def test_organisations_are_created_by_server_admins_only_and_the_creator_owns_them(w):
    with pytest.raises(AccessDenied):
        w.organisations.create_organisation(w.credential("bob"), name="Bob's", workflow_mode=WorkflowMode.FOUNDER)
    w.directory.set_server_admin(w.ids["cy"], True)
    cy = w.credential("cy")
    created = w.organisations.create_organisation(cy, name="Cy's", workflow_mode="founder")
    assert created.workflow_mode is WorkflowMode.FOUNDER
    assert [m.role for m in w.organisations.members(cy, created.id)] == [OrgRole.OWNER]
    renamed = w.organisations.update_organisation(cy, created.id, name="Cy Ltd", workflow_mode=None)
    assert (renamed.name, renamed.workflow_mode) == ("Cy Ltd", WorkflowMode.FOUNDER)


# --- invites ------------------------------------------------------------------------------------------


def test_an_invite_shows_its_token_once_stores_its_hash_and_joins_whoever_accepts_it(w):
    ada, oscar = w.credential("ada"), w.credential("oscar")
    created = w.organisations.create_invite(ada, w.org, role=OrgRole.MEMBER, email=None, lifetime=timedelta(hours=2))
    assert created.token == "tok-1" and created.state is InviteState.PENDING
    assert w.directory.invite_by_token_hash("h(tok-1)").id == created.invite.id
    assert [(i.invite.id, i.state) for i in w.organisations.invites(ada, w.org)] == [
        (created.invite.id, InviteState.PENDING)]
    with pytest.raises(AccessDenied):  # only an owner invites owners; a member invites nobody
        w.organisations.create_invite(w.credential("bob"), w.org, role=OrgRole.MEMBER, email=None,
                                      lifetime=timedelta(hours=2))

    joined = w.organisations.accept_invite(oscar, "tok-1")
    assert joined.organisation_id == w.org and joined.user.password_hash is None
    assert {org.name for org, _ in joined.organisations} == {"Acme", "Other"}
    with pytest.raises(Conflict):  # used
        w.organisations.revoke_invite(ada, w.org, created.invite.id)
    assert w.organisations.invites(ada, w.org)[0].state is InviteState.USED


def test_an_invite_of_another_organisation_is_not_found(w):
    theirs = w.organisations.create_invite(w.credential("oscar"), w.other_org, role=OrgRole.MEMBER, email=None,
                                           lifetime=timedelta(hours=1))
    with pytest.raises(NotFound):
        w.organisations.revoke_invite(w.credential("ada"), w.org, theirs.invite.id)


# --- audit log ------------------------------------------------------------------------------------------


def test_the_audit_log_is_for_owners_and_admins_and_the_server_log_for_server_admins(w):
    ada = w.credential("ada")
    group = w.organisations.create_group(ada, w.org, "Design")
    entries, cursor = w.organisations.audit(ada, w.org, AuditQuery(frozenset({AuditAction.GROUP_CREATED})),
                                            cursor=None, limit=10)
    assert [e.target for e in entries] == [f"group:{group.id}"] and cursor is None
    with pytest.raises(AccessDenied):
        w.organisations.audit(w.credential("bob"), w.org, AuditQuery(), cursor=None, limit=10)
    with pytest.raises(AccessDenied):  # an owner is no server admin
        w.organisations.audit(ada, None, AuditQuery(), cursor=None, limit=10)
    with pytest.raises(InvalidInput):
        w.organisations.audit(ada, w.org, AuditQuery(), cursor=None, limit=500)


# --- projects, grants, access, server admins ------------------------------------------------------------


def test_projects_are_listed_as_read_and_a_restricted_one_is_not_found_to_outsiders(w):
    bob = w.credential("bob")
    assert {p.key for p in w.projects_.projects(bob, w.org)} == {"APP", "OPS"}
    assert {p.key for p in w.projects_.projects(w.credential("ada"), w.org)} == {"APP", "OPS", "SEC"}
    with pytest.raises(NotFound):
        w.projects_.project(bob, w.org, w.projects["SEC"])
    with pytest.raises(AccessDenied):  # a viewer reads APP's grants but may not change them
        w.projects_.put_grant(bob, w.org, w.projects["APP"], role=ProjectRole.ADMIN, user_id=w.ids["bob"])
    assert [g.role for g in w.projects_.grants(bob, w.org, w.projects["APP"])] == [ProjectRole.VIEWER]


def test_a_manager_creates_updates_and_grants_projects(w):
    ada = w.credential("ada")
    created = w.projects_.create_project(ada, w.org, key="WEB", name="Web", visibility="restricted")
    granted = w.projects_.put_grant(ada, w.org, created.id, role="member", group_id=w.eng)
    assert {p.key for p in w.projects_.projects(w.credential("bob"), w.org)} == {"APP", "OPS", "WEB"}
    archived = w.projects_.update_project(ada, w.org, created.id, status="archived")
    assert archived.status.value == "archived" and archived.lead_user_id is None
    w.projects_.remove_grant(ada, w.org, created.id, granted.id)
    assert w.projects_.grants(ada, w.org, created.id) == []


def test_explaining_access_is_about_the_caller_by_default_and_an_other_organisation_scope_is_not_found(w):
    bob = w.credential("bob")
    explained = w.projects_.explain_access(bob, w.org, ScopeKind.PROJECT, w.projects["OPS"])
    assert explained.user_id == w.ids["bob"] and explained.read is Condition.PROJECT_OPEN
    with pytest.raises(NotFound):
        w.projects_.explain_access(bob, w.org, ScopeKind.ORGANISATION, w.other_org)
    with pytest.raises(AccessDenied):  # a member asks about themselves only
        w.projects_.explain_access(bob, w.org, ScopeKind.ORGANISATION, w.org, user_id=w.ids["cy"])
    with pytest.raises(NotFound):
        w.projects_.access_review(w.credential("oscar"), w.org)
    review = w.projects_.access_review(w.credential("ada"), w.org)
    assert {p.project.key for p in review.restricted_projects} == {"APP", "SEC"}


def test_server_admins_manage_server_admins_and_the_server_keeps_one(w):
    w.directory.set_server_admin(w.ids["cy"], True)
    cy = w.credential("cy")
    with pytest.raises(AccessDenied):
        w.projects_.server_admins(w.credential("bob"))
    assert w.projects_.set_server_admin(cy, w.ids["bob"], True).is_server_admin
    assert {u.display_name for u in w.projects_.server_admins(cy)} == {"Bob", "Cy"}
    w.projects_.set_server_admin(cy, w.ids["bob"], False)
    with pytest.raises(Conflict):
        w.projects_.set_server_admin(cy, w.ids["cy"], False)


# --- pages ------------------------------------------------------------------------------------------------


def test_the_settings_page_shows_a_manager_invites_and_what_they_manage_and_a_member_neither(w):
    ada, bob = w.credential("ada"), w.credential("bob")
    w.organisations.create_invite(ada, w.org, role=OrgRole.MEMBER, email=None, lifetime=timedelta(hours=1))
    framed = w.pages(uploads_enabled=True).settings(ada, w.org, None)
    assert framed.frame.org.name == "Acme" and framed.frame.role is OrgRole.OWNER
    settings = framed.content
    assert len(settings.invites) == 1 and settings.uploads_enabled
    assert settings.managed_project_ids == frozenset(w.projects.values())
    assert set(settings.grants) == set(w.projects.values())

    as_bob = w.pages().settings(bob, w.org, "app").content
    assert as_bob.invites == [] and as_bob.managed_project_ids == frozenset() and not as_bob.uploads_enabled
    assert {p.key for p in as_bob.projects} == {"APP", "OPS"}
    with pytest.raises(NotFound):  # a project he cannot read looks like no project at all
        w.pages().settings(bob, w.org, "SEC")
    with pytest.raises(NotFound):
        w.pages().settings(w.credential("oscar"), w.org, None)


def test_the_audit_and_access_pages_are_for_managers_and_name_members(w):
    ada = w.credential("ada")
    w.organisations.create_group(ada, w.org, "Design")
    audit = w.pages().audit(ada, w.org, None, action="group.created", cursor=None).content
    assert [e.action for e in audit.entries] == [AuditAction.GROUP_CREATED]
    assert audit.names[w.ids["ada"]] == "Ada"
    with pytest.raises(InvalidInput):
        w.pages().audit(ada, w.org, None, action="no.such", cursor=None)
    with pytest.raises(AccessDenied):
        w.pages().audit(w.credential("bob"), w.org, None, action=None, cursor=None)
    with pytest.raises(AccessDenied):
        w.pages().access_review(w.credential("bob"), w.org, None)
    assert w.pages().access_review(ada, w.org, "ops").frame.project.key == "OPS"


def test_the_server_page_does_not_exist_for_anyone_but_server_admins(w):
    configuration = (("runtime.public_app_url", "http://x", "default"),)
    pages = w.pages(configuration=configuration, ai_status="ai off")
    with pytest.raises(NotFound):
        pages.server(w.credential("ada"))  # owning an organisation makes no one server admin
    w.directory.set_server_admin(w.ids["ada"], True)
    server = pages.server(w.credential("ada"))
    assert server.configuration == configuration and server.ai_status == "ai off"
    assert server.home_organisation_id == w.org and [u.display_name for u in server.admins] == ["Ada"]
    w.directory.set_server_admin(w.ids["oscar"], True)
    w.directory.remove_membership(w.other_org, w.ids["oscar"])
    assert pages.server(w.credential("oscar")).home_organisation_id is None
