"""The ``Directory`` port's behaviour (SPEC §1–§3), against its in-memory fake (``InMemoryDirectory``) and
``PgDirectory`` on a real PostgreSQL: users, organisations and memberships, what the last-owner and
last-server-admin checks read, groups, projects and grants, the principal a request is decided on,
invites, sessions and the audit log.

The rules about *who* may change these live in the use cases; this suite pins what the port itself
promises. A value the schema refuses (an email not lower-cased, a key not upper-case, a row naming a
missing one, ...) is a bug in the calling use case, never a user error: PostgreSQL raises its integrity
error, the fake ``ValueError`` (``world.caller_bug``). Only "already exists" is a ``Conflict``.

On PostgreSQL each test runs in one transaction that is rolled back. The database stamps invites with
``now()`` and audit entries with ``clock_timestamp()``; the fake's clock ticks a millisecond per reading,
so audit entries are strictly ordered in time on both. Postgres-only tests say why in their first line.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.fakes import InMemoryDirectory
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_core.access import OrgRole, Principal, ProjectRole, Visibility
from tow_core.audit import AuditAction, AuditEntry, AuditQuery
from tow_core.errors import Conflict, InvalidInput
from tow_core.identity import (
    Grant,
    Group,
    InviteState,
    Member,
    Organisation,
    Project,
    ProjectStatus,
    Session,
    User,
    WorkflowMode,
)

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MISSING = 10**12  # an id no row has


@pytest.fixture(scope="module")
def directory_engine(embedded_postgres):
    embedded_postgres.ensure_database("directory_contract")
    engine = create_engine(embedded_postgres.url("directory_contract"), PoolOptions(pool_size=3, max_overflow=1))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()


class World:
    """A directory plus what the tests need around it: a few users and organisations, and how this
    backend reports a caller's bug."""

    def __init__(self, directory, caller_bug: Callable, acting_user: Callable[[], int | None]) -> None:
        self.d = directory
        self.caller_bug = caller_bug
        self.acting_user = acting_user  # whom this transaction acts for (act_for), None before

    def user(self, name: str, *, server_admin: bool = False) -> int:
        return self.d.add_user(f"{name}@example.com", name.title(), None, server_admin=server_admin).id

    def org(self, name: str = "Acme") -> int:
        return self.d.add_organisation(name, WorkflowMode.ORGANIZATION).id

    def member(self, org_id: int, name: str, role: OrgRole = OrgRole.MEMBER) -> int:
        user_id = self.user(name)
        self.d.set_membership(org_id, user_id, role)
        return user_id

    def project(self, org_id: int, key: str, visibility: Visibility = Visibility.RESTRICTED, **changes) -> int:
        return self.d.add_project(new_project(org_id, key, visibility, **changes)).id


def new_project(org_id: int, key: str, visibility: Visibility = Visibility.RESTRICTED, **changes) -> Project:
    project = Project(0, org_id, key, key.title(), f"About {key}", None, visibility, ProjectStatus.ACTIVE)
    return replace(project, **changes)


@pytest.fixture(params=["fake", "postgres"])
def world(request) -> World:
    if request.param == "fake":
        start, ticks = datetime.now(UTC), itertools.count()
        directory = InMemoryDirectory(clock=lambda: start + next(ticks) * timedelta(milliseconds=1))
        return World(directory, lambda: pytest.raises(ValueError),
                     lambda: directory.acted_for[-1] if directory.acted_for else None)
    engine = request.getfixturevalue("directory_engine")
    conn = engine.connect()
    transaction = conn.begin()
    request.addfinalizer(conn.close)
    request.addfinalizer(transaction.rollback)

    @contextmanager
    def caller_bug():
        with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():  # the savepoint keeps the test going
            yield

    def acting_user() -> int | None:
        value = conn.execute(sa.text("SELECT current_setting('tow.acting_user_id', true)")).scalar_one()
        return int(value) if value else None

    return World(PgDirectory(conn), caller_bug, acting_user)


# --- users ------------------------------------------------------------------------------------------


def test_users_are_added_found_by_id_and_by_exact_email_and_counted(world):
    d = world.d
    assert d.count_users() == 0
    ada = d.add_user("ada@example.com", "Ada", "hash$1", server_admin=True)
    bob = d.add_user("bob@example.com", "Bob", None, server_admin=False)
    assert ada == User(ada.id, "ada@example.com", "Ada", True, True, "hash$1")
    assert bob == User(bob.id, "bob@example.com", "Bob", False, True, None) and bob.id > ada.id
    assert d.user(ada.id) == ada and d.user_by_email("bob@example.com") == bob
    assert d.user(MISSING) is None and d.user_by_email("nobody@example.com") is None
    assert d.count_users() == 2


def test_an_email_belongs_to_one_account(world):
    d = world.d
    d.add_user("ada@example.com", "Ada", None, server_admin=False)
    with pytest.raises(Conflict) as refused:
        d.add_user("ada@example.com", "Another Ada", None, server_admin=False)
    assert refused.value.field == "email"
    assert d.count_users() == 1 and d.user_by_email("ada@example.com").display_name == "Ada"  # still usable


def test_flags_and_password_hashes_change_in_place_and_server_admins_are_the_active_ones(world):
    d = world.d
    ada, bob, cy = world.user("ada", server_admin=True), world.user("bob"), world.user("cy")
    d.set_server_admin(cy, True)
    assert [u.id for u in d.server_admins()] == [ada, cy]  # by id
    d.set_active(ada, False)
    assert [u.id for u in d.server_admins()] == [cy] and d.user(ada).is_active is False
    assert d.principal(ada).is_active is False and d.principal(ada).is_server_admin is True
    d.set_active(ada, True)
    d.set_server_admin(cy, False)
    assert [u.id for u in d.server_admins()] == [ada]
    d.set_password_hash(bob, "hash$2")
    assert d.user(bob) == User(bob, "bob@example.com", "Bob", False, True, "hash$2")
    for change in (d.set_password_hash, d.set_server_admin, d.set_active):  # a missing user: nothing changes
        change(MISSING, True)
    assert d.count_users() == 3 and d.user(MISSING) is None


# --- organisations, memberships, owners --------------------------------------------------------------


def test_organisations_and_the_organisations_of_a_user_with_their_roles(world):
    d = world.d
    ada, bob = world.user("ada"), world.user("bob")
    acme = d.add_organisation("Acme", WorkflowMode.FOUNDER)
    other = d.add_organisation("Other", WorkflowMode.ORGANIZATION)
    assert acme == Organisation(acme.id, "Acme", WorkflowMode.FOUNDER) and d.organisation(acme.id) == acme
    d.set_membership(other.id, ada, OrgRole.MEMBER)
    d.set_membership(acme.id, ada, OrgRole.OWNER)
    assert d.organisations_of(ada) == [(acme, OrgRole.OWNER), (other, OrgRole.MEMBER)]  # by organisation id
    assert acme.require_second_reviewer is False  # memory.require_second_reviewer is off by default
    renamed = d.update_organisation(acme.id, name="Acme Inc", workflow_mode=WorkflowMode.ORGANIZATION,
                                    require_second_reviewer=True)
    assert renamed == Organisation(acme.id, "Acme Inc", WorkflowMode.ORGANIZATION, True) == d.organisation(acme.id)
    assert d.organisations_of(ada)[0] == (renamed, OrgRole.OWNER)
    assert d.organisation(MISSING) is None and d.organisations_of(bob) == []


def test_organisations_are_found_by_name_ignoring_case_all_of_them_by_id(world):
    d = world.d
    first = d.add_organisation("Acme", WorkflowMode.FOUNDER)
    d.add_organisation("Other", WorkflowMode.FOUNDER)
    second = d.add_organisation("ACME", WorkflowMode.ORGANIZATION)  # names are not unique (`tow export` asks which)
    assert d.organisations_named("acme") == [first, second]
    assert d.organisations_named("Nobody") == []


def test_members_are_listed_by_email_and_set_membership_changes_a_role_in_place(world):
    d = world.d
    acme, other = world.org(), world.org("Other")
    zed = world.member(acme, "zed", OrgRole.OWNER)  # added first, listed last
    ada = world.member(acme, "ada")
    world.member(other, "bob")
    d.set_membership(acme, ada, OrgRole.ADMIN)
    d.set_active(zed, False)
    assert d.members(acme) == [Member(acme, ada, OrgRole.ADMIN, "ada@example.com", "Ada", True),
                               Member(acme, zed, OrgRole.OWNER, "zed@example.com", "Zed", False)]
    assert d.principal(ada).org_roles == {acme: OrgRole.ADMIN}


def test_owners_counted_for_the_last_owner_rule_are_the_active_ones(world):
    """SPEC §1 "an organisation always keeps at least one owner": the use case takes lock_owners, then
    asks count_owners; a deactivated owner cannot keep an organisation governed."""
    d = world.d
    acme, other = world.org(), world.org("Other")
    d.lock_owners(acme)
    ada, bob = world.member(acme, "ada", OrgRole.OWNER), world.member(acme, "bob", OrgRole.OWNER)
    world.member(acme, "cy", OrgRole.ADMIN)
    world.member(other, "dan", OrgRole.OWNER)
    assert d.count_owners(acme) == 2
    d.set_active(bob, False)
    assert d.count_owners(acme) == 1
    d.set_membership(acme, ada, OrgRole.ADMIN)
    assert d.count_owners(acme) == 0 and d.count_owners(other) == 1
    d.remove_membership(other, d.members(other)[0].user_id)
    assert d.count_owners(other) == 0


def test_removing_a_membership_drops_that_organisations_groups_and_direct_grants_only(world):
    """So that inviting the person back later does not silently restore their old access (SPEC §2)."""
    d = world.d
    acme, other = world.org(), world.org("Other")
    bob = world.member(acme, "bob")
    d.set_membership(other, bob, OrgRole.MEMBER)
    eng, lab_group = d.add_group(acme, "Engineering").id, d.add_group(other, "Lab").id
    app, lab = world.project(acme, "APP"), world.project(other, "LAB")
    for group in (eng, lab_group):
        d.add_group_member(group, bob)
    d.put_grant(app, user_id=bob, group_id=None, role=ProjectRole.ADMIN)
    d.put_grant(lab, user_id=bob, group_id=None, role=ProjectRole.VIEWER)
    group_grant = d.put_grant(app, user_id=None, group_id=eng, role=ProjectRole.MEMBER)
    d.remove_membership(acme, bob)
    kept = Principal.build(bob, org_roles={other: OrgRole.MEMBER}, group_ids={lab_group},
                           direct_grants={lab: ProjectRole.VIEWER})
    assert d.principal(bob) == kept
    assert d.group(eng).member_ids == () and d.grants(app) == [group_grant]  # the group keeps its grant
    d.set_membership(acme, bob, OrgRole.MEMBER)  # back again: as a new member
    assert d.principal(bob) == replace(kept, org_roles={other: OrgRole.MEMBER, acme: OrgRole.MEMBER})
    d.remove_membership(acme, bob)
    d.remove_membership(acme, bob)  # not a member: nothing to do
    assert d.members(acme) == []


# --- the principal -------------------------------------------------------------------------------------


def test_the_principal_carries_roles_groups_and_the_highest_grant_per_project(world):
    d = world.d
    acme, other = world.org(), world.org("Other")
    ada = world.user("ada", server_admin=True)
    bob = world.member(acme, "bob")
    d.set_membership(other, bob, OrgRole.ADMIN)
    eng, ops, foreign = (d.add_group(org, name).id for org, name in ((acme, "eng"), (acme, "ops"), (other, "far")))
    for group in (eng, ops, foreign):
        d.add_group_member(group, bob)
    app, web, lab = world.project(acme, "APP"), world.project(acme, "WEB", Visibility.OPEN), world.project(other, "LAB")
    d.put_grant(app, user_id=bob, group_id=None, role=ProjectRole.VIEWER)
    d.put_grant(app, user_id=None, group_id=eng, role=ProjectRole.LEAD)
    d.put_grant(app, user_id=None, group_id=ops, role=ProjectRole.MEMBER)
    d.put_grant(web, user_id=None, group_id=ops, role=ProjectRole.ADMIN)
    d.put_grant(app, user_id=None, group_id=foreign, role=ProjectRole.ADMIN)  # another organisation's group
    d.put_grant(lab, user_id=None, group_id=foreign, role=ProjectRole.MEMBER)
    principal = d.principal(bob)
    assert principal == Principal.build(
        bob, org_roles={acme: OrgRole.MEMBER, other: OrgRole.ADMIN}, group_ids={eng, ops, foreign},
        direct_grants={app: ProjectRole.VIEWER},
        group_grants={app: ProjectRole.LEAD, web: ProjectRole.ADMIN, lab: ProjectRole.MEMBER},
    )
    assert principal.project_grant(app) is ProjectRole.LEAD  # the highest of direct and group grants
    assert d.principal(ada) == Principal.build(ada, is_server_admin=True)  # server admin: no organisation role
    assert d.principal(MISSING) is None


def test_the_principal_is_read_afresh_so_a_revocation_counts_at_once(world):
    """SPEC §2 "Immediate revocation": nothing is cached between two calls."""
    d = world.d
    acme = world.org()
    bob = world.member(acme, "bob")
    eng = d.add_group(acme, "eng").id
    app = world.project(acme, "APP")
    d.add_group_member(eng, bob)
    grant = d.put_grant(app, user_id=None, group_id=eng, role=ProjectRole.MEMBER)
    assert d.principal(bob).project_grant(app) is ProjectRole.MEMBER
    d.delete_grant(grant.id)
    assert d.principal(bob).project_grant(app) is None
    d.remove_group_member(eng, bob)
    assert d.principal(bob).group_ids == frozenset()


# --- groups --------------------------------------------------------------------------------------------


def test_group_names_are_unique_per_organisation_ignoring_case(world):
    d = world.d
    acme, other = world.org(), world.org("Other")
    eng = d.add_group(acme, "Engineering")
    assert eng == Group(eng.id, acme, "Engineering", ()) and d.group(eng.id) == eng
    with pytest.raises(Conflict) as refused:
        d.add_group(acme, "engineering")
    assert refused.value.field == "name"
    d.add_group(other, "Engineering")  # another organisation may use the name
    ops = d.add_group(acme, "ops")
    with pytest.raises(Conflict) as refused:
        d.rename_group(ops.id, "ENGINEERING")
    assert refused.value.field == "name"
    assert d.rename_group(eng.id, "engineering") == Group(eng.id, acme, "engineering", ())  # its own name, recased
    assert [g.name for g in d.groups(acme)] == ["engineering", "ops"]  # by name, ignoring case
    assert d.group(MISSING) is None


def test_groups_hold_members_once_and_deleting_one_drops_its_members_and_grants(world):
    d = world.d
    acme = world.org()
    ada, bob = world.member(acme, "ada"), world.member(acme, "bob")
    app = world.project(acme, "APP")
    eng = d.add_group(acme, "eng").id
    for user in (bob, ada, ada):  # the second add of ada changes nothing
        d.add_group_member(eng, user)
    assert d.group(eng).member_ids == tuple(sorted((ada, bob)))
    d.remove_group_member(eng, bob)
    d.remove_group_member(eng, bob)
    assert d.groups(acme) == [Group(eng, acme, "eng", (ada,))]
    grant = d.put_grant(app, user_id=None, group_id=eng, role=ProjectRole.MEMBER)
    d.delete_group(eng)
    assert d.group(eng) is None and d.grant(grant.id) is None and d.grants(app) == []
    assert d.principal(ada).group_ids == frozenset() and d.groups(acme) == []
    d.delete_group(eng)  # already gone: nothing to do


# --- projects and grants -----------------------------------------------------------------------------


def test_project_keys_are_unique_per_organisation_and_never_change(world):
    d = world.d
    acme, other = world.org(), world.org("Other")
    lead = world.member(acme, "lead")
    wanted = new_project(acme, "APP", lead_user_id=lead)
    app = d.add_project(wanted)
    assert app == replace(wanted, id=app.id) and d.project(app.id) == app
    with pytest.raises(Conflict) as refused:
        d.add_project(new_project(acme, "APP", name="Again"))
    assert refused.value.field == "key"
    d.add_project(new_project(other, "APP"))  # another organisation may use the key
    world.project(acme, "WEB", Visibility.OPEN)
    world.project(acme, "2FA")
    assert [p.key for p in d.projects(acme)] == ["2FA", "APP", "WEB"]
    changed = replace(app, key="NEW", organisation_id=other, name="Renamed", description="", lead_user_id=None,
                      visibility=Visibility.OPEN, status=ProjectStatus.ARCHIVED)
    assert d.update_project(changed) == changed
    assert d.project(app.id) == replace(changed, key="APP", organisation_id=acme)  # key and organisation stay
    assert d.project(MISSING) is None and d.projects(MISSING) == []


def test_one_grant_per_holder_and_project_changed_in_place(world):
    d = world.d
    acme = world.org()
    bob = world.member(acme, "bob")
    eng = d.add_group(acme, "eng").id
    app, web = world.project(acme, "APP"), world.project(acme, "WEB")
    first = d.put_grant(app, user_id=bob, group_id=None, role=ProjectRole.VIEWER)
    assert first == Grant(first.id, app, bob, None, ProjectRole.VIEWER)
    raised = d.put_grant(app, user_id=bob, group_id=None, role=ProjectRole.LEAD)
    assert raised == Grant(first.id, app, bob, None, ProjectRole.LEAD)  # same grant, new role
    to_group = d.put_grant(app, user_id=None, group_id=eng, role=ProjectRole.MEMBER)
    on_web = d.put_grant(web, user_id=bob, group_id=None, role=ProjectRole.MEMBER)
    assert d.grants(app) == [raised, to_group] and d.grants(web) == [on_web]  # by id
    assert d.grant(to_group.id) == to_group and d.grant(MISSING) is None
    d.delete_grant(first.id)
    d.delete_grant(first.id)  # already gone: nothing to do
    assert d.grants(app) == [to_group] and d.grant(first.id) is None
    assert d.principal(bob).direct_grants == {web: ProjectRole.MEMBER}


# --- invites -------------------------------------------------------------------------------------------


def test_invites_are_found_by_token_hash_listed_newest_first_and_marked_revoked_or_used(world):
    d = world.d
    acme, other = world.org(), world.org("Other")
    ada, bob = world.member(acme, "ada", OrgRole.OWNER), world.user("bob")
    expires = T + 7 * 24 * HOUR
    first = d.add_invite(acme, "hash-1", OrgRole.MEMBER, None, ada, expires)
    assert (first.organisation_id, first.role, first.email, first.created_by, first.expires_at) == (
        acme, OrgRole.MEMBER, None, ada, expires)
    assert (first.revoked_at, first.used_at) == (None, None) and first.created_at.tzinfo is not None
    assert abs(first.created_at - datetime.now(UTC)) < HOUR  # the database's clock, not the caller's ``now``
    second = d.add_invite(acme, "hash-2", OrgRole.ADMIN, "bob@example.com", ada, expires)
    elsewhere = d.add_invite(other, "hash-3", OrgRole.OWNER, None, ada, expires)
    assert d.invites(acme) == [second, first] and d.invites(other) == [elsewhere]
    assert d.invite(first.id) == first and d.invite(MISSING) is None
    assert d.invite_by_token_hash("hash-2") == second == d.invite_by_token_hash("hash-2", for_update=True)
    assert d.invite_by_token_hash("hash-9") is None
    d.mark_invite_revoked(first.id, T)
    d.mark_invite_used(second.id, bob, T + HOUR)
    assert d.invite(first.id) == replace(first, revoked_at=T) and d.invite(first.id).state(T) is InviteState.REVOKED
    assert d.invite(second.id) == replace(second, used_at=T + HOUR)
    assert d.invite(second.id).state(T + HOUR) is InviteState.USED
    assert d.invite(elsewhere.id).state(T) is InviteState.PENDING
    assert d.invite(elsewhere.id).state(expires) is InviteState.EXPIRED


# --- sessions ------------------------------------------------------------------------------------------


def test_a_live_session_comes_with_its_principal_and_the_transaction_acting_for_its_user(world):
    d = world.d
    acme = world.org()
    ada, bob = world.member(acme, "ada", OrgRole.ADMIN), world.member(acme, "bob")
    project = world.project(acme, "APP")
    d.put_grant(project, user_id=ada, group_id=None, role=ProjectRole.MEMBER)
    d.add_session(Session("hash-ada", ada, acme, T + HOUR))
    d.add_session(Session("hash-bob", bob, None, T + HOUR))
    d.revoke_session("hash-bob", T)
    assert d.acting_session("hash-bob", T) is None and d.acting_session("nope", T) is None
    assert d.acting_session("hash-ada", T + HOUR) is None  # expired
    assert world.acting_user() is None  # nobody matched: nothing set
    session, principal = d.acting_session("hash-ada", T)
    assert session == d.live_session("hash-ada", T) and principal == d.principal(ada)
    assert principal.org_roles == {acme: OrgRole.ADMIN} and principal.direct_grants == {project: ProjectRole.MEMBER}
    assert world.acting_user() == ada
    d.set_active(ada, False)
    assert d.acting_session("hash-ada", T)[1].is_active is False  # the caller refuses deactivated users


def test_a_session_is_live_until_it_expires_or_is_revoked(world):
    d = world.d
    acme = world.org()
    ada = world.member(acme, "ada")
    session = Session("token-hash-1", ada, None, T + HOUR)
    d.add_session(session)
    assert d.live_session("token-hash-1", T) == session
    assert d.live_session("token-hash-1", T + HOUR - timedelta(microseconds=1)) == session
    assert d.live_session("token-hash-1", T + HOUR) is None  # expired at its expiry instant
    d.set_session_organisation("token-hash-1", acme)
    assert d.live_session("token-hash-1", T) == replace(session, active_organisation_id=acme)
    d.revoke_session("token-hash-1", T)
    assert d.live_session("token-hash-1", T - HOUR) is None  # revoked: gone at once, whatever the time
    d.revoke_session("token-hash-1", T + HOUR)
    d.set_session_organisation("nope", acme)
    assert d.live_session("nope", T) is None


def test_revoking_a_users_sessions_counts_those_not_revoked_yet_and_leaves_others_alone(world):
    d = world.d
    ada, bob = world.user("ada"), world.user("bob")
    for token, user, expires in (("a1", ada, T + HOUR), ("a2", ada, T - HOUR), ("a3", ada, T + HOUR),
                                 ("b1", bob, T + HOUR)):
        d.add_session(Session(token, user, None, expires))
    d.revoke_session("a3", T)
    assert d.revoke_user_sessions(ada, T) == 2  # a1, and the expired a2
    assert d.live_session("a1", T) is None and d.live_session("b1", T) == Session("b1", bob, None, T + HOUR)
    assert d.revoke_user_sessions(ada, T) == 0


def test_revoking_a_users_sessions_can_keep_the_one_that_asked(world):
    """A password change signs out the other sessions and keeps the browser that made it."""
    d = world.d
    ada = world.user("ada")
    for token in ("a1", "a2", "a3"):
        d.add_session(Session(token, ada, None, T + HOUR))
    assert d.revoke_user_sessions(ada, T, keep_token_hash="a2") == 2
    assert d.live_session("a2", T) == Session("a2", ada, None, T + HOUR)
    assert d.live_session("a1", T) is None and d.live_session("a3", T) is None


def test_a_profile_changes_in_place_and_an_email_stays_one_accounts(world):
    d = world.d
    ada, bob = world.user("ada"), world.user("bob")
    d.set_profile(ada, email="ada@new.example", display_name="Ada Lovelace")
    assert d.user(ada) == User(ada, "ada@new.example", "Ada Lovelace", False, True, None)
    assert d.user_by_email("ada@new.example").id == ada and d.user_by_email("ada@example.com") is None
    d.set_profile(ada, email="ada@new.example", display_name="Ada L.")  # her own email again: fine
    with pytest.raises(Conflict) as refused:
        d.set_profile(bob, email="ada@new.example", display_name="Bob")
    assert refused.value.field == "email" and d.user(bob).email == "bob@example.com"  # still usable
    d.set_profile(MISSING, email="nobody@example.com", display_name="Nobody")
    assert d.user_by_email("nobody@example.com") is None


def test_deactivating_a_user_leaves_revoking_their_sessions_to_the_use_case(world):
    """SPEC §1 "deactivated: sessions revoked" is the use case's job (it calls revoke_user_sessions)."""
    d = world.d
    ada = world.user("ada")
    d.add_session(Session("a1", ada, None, T + HOUR))
    d.set_active(ada, False)
    assert d.live_session("a1", T) == Session("a1", ada, None, T + HOUR)


# --- audit log -----------------------------------------------------------------------------------------


def test_audit_entries_are_listed_newest_first_by_organisation_and_paged(world):
    d = world.d
    acme, other = world.org(), world.org("Other")
    ada, bob = world.user("ada"), world.user("bob")
    for i in range(5):
        d.audit(AuditEntry(acme, ada if i % 2 == 0 else bob, AuditAction.GRANT_SET, f"project:{i}", {"role": "lead"}))
    d.audit(AuditEntry(other, ada, AuditAction.GROUP_CREATED, "group:1"))
    d.audit(AuditEntry(None, ada, AuditAction.SERVER_ADMIN_GRANTED, f"user:{bob}"))
    pages, cursor = [], None
    while True:
        entries, cursor = d.audit_entries(acme, AuditQuery(), cursor=cursor, limit=2)
        pages.append([e.target for e in entries])
        if cursor is None:
            break
    assert pages == [["project:4", "project:3"], ["project:2", "project:1"], ["project:0"]]
    newest = d.audit_entries(acme, AuditQuery(), cursor=None, limit=1)[0][0]
    assert (newest.organisation_id, newest.actor_id, newest.action, newest.details) == (
        acme, ada, AuditAction.GRANT_SET, {"role": "lead"})
    assert newest.id is not None and newest.created_at.tzinfo is not None
    server, _ = d.audit_entries(None, AuditQuery(), cursor=None, limit=10)
    assert [e.target for e in server] == [f"user:{bob}"]  # server-level entries have no organisation
    exact, _ = d.audit_entries(acme, AuditQuery(), cursor=None, limit=5)
    assert _ is None  # exactly ``limit`` entries: no cursor to an empty page
    assert len(exact) == 5


def test_audit_entries_filter_by_action_actor_target_and_time(world):
    d = world.d
    acme = world.org()
    ada, bob = world.user("ada"), world.user("bob")
    d.audit(AuditEntry(acme, ada, AuditAction.GROUP_CREATED, "group:1"))
    d.audit(AuditEntry(acme, bob, AuditAction.GROUP_DELETED, "group:1"))
    d.audit(AuditEntry(acme, ada, AuditAction.GRANT_SET, "project:7"))

    def targets(**query) -> list[tuple[str, str]]:
        entries, _ = d.audit_entries(acme, AuditQuery(**query), cursor=None, limit=10)
        return [(e.action.value, e.target) for e in entries]

    group_actions = frozenset({AuditAction.GROUP_CREATED, AuditAction.GROUP_DELETED})
    assert targets(actions=group_actions) == [("group.deleted", "group:1"), ("group.created", "group:1")]
    assert targets(actor_id=ada) == [("grant.set", "project:7"), ("group.created", "group:1")]
    assert targets(target="project:7", actor_id=ada) == [("grant.set", "project:7")]
    assert targets(actor_id=MISSING) == []
    newest, middle, oldest = (e.created_at for e in d.audit_entries(acme, AuditQuery(), cursor=None, limit=3)[0])
    assert oldest < middle < newest
    assert targets(since=middle) == [("grant.set", "project:7"), ("group.deleted", "group:1")]  # inclusive
    assert targets(until=middle) == [("group.created", "group:1")]  # exclusive
    assert targets(since=oldest, until=newest) == [("group.deleted", "group:1"), ("group.created", "group:1")]
    assert targets(since=newest + timedelta(microseconds=1)) == [] and targets(until=oldest) == []


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "9" * 19, ""])
def test_a_malformed_audit_cursor_is_invalid_input(world, cursor):
    acme = world.org()
    world.d.audit(AuditEntry(acme, None, AuditAction.GROUP_CREATED, "group:1"))
    with pytest.raises(InvalidInput) as refused:
        world.d.audit_entries(acme, AuditQuery(), cursor=cursor, limit=10)
    assert refused.value.field == "cursor"


# --- what only a buggy caller sends --------------------------------------------------------------------


def _bugs():
    """(id, call) pairs: each call sends what the schema refuses and a use case must never send.
    A call gets the directory, an organisation, its owner, a group, a project (an invite and a session
    with the token hash "taken" exist)."""
    return [
        ("email-not-lower-cased", lambda d, o, u, g, p: d.add_user("Cy@Example.com", "Cy", None, server_admin=False)),
        ("empty-display-name", lambda d, o, u, g, p: d.add_user("cy@example.com", "", None, server_admin=False)),
        ("empty-organisation-name", lambda d, o, u, g, p: d.add_organisation("", WorkflowMode.FOUNDER)),
        ("membership-of-missing-user", lambda d, o, u, g, p: d.set_membership(o, MISSING, OrgRole.MEMBER)),
        ("membership-in-missing-org", lambda d, o, u, g, p: d.set_membership(MISSING, u, OrgRole.MEMBER)),
        ("empty-group-name", lambda d, o, u, g, p: d.add_group(o, "")),
        ("long-group-name", lambda d, o, u, g, p: d.rename_group(g, "x" * 201)),
        ("group-in-missing-org", lambda d, o, u, g, p: d.add_group(MISSING, "ops")),
        ("missing-user-into-group", lambda d, o, u, g, p: d.add_group_member(g, MISSING)),
        ("lower-case-project-key", lambda d, o, u, g, p: d.add_project(new_project(o, "web"))),
        ("empty-project-name", lambda d, o, u, g, p: d.add_project(new_project(o, "WEB", name=""))),
        ("project-in-missing-org", lambda d, o, u, g, p: d.add_project(new_project(MISSING, "WEB"))),
        ("grant-to-user-and-group",
         lambda d, o, u, g, p: d.put_grant(p, user_id=u, group_id=g, role=ProjectRole.MEMBER)),
        ("grant-to-nobody", lambda d, o, u, g, p: d.put_grant(p, user_id=None, group_id=None, role=ProjectRole.MEMBER)),
        ("grant-on-missing-project",
         lambda d, o, u, g, p: d.put_grant(MISSING, user_id=u, group_id=None, role=ProjectRole.MEMBER)),
        ("invite-token-hash-twice", lambda d, o, u, g, p: d.add_invite(o, "taken", OrgRole.MEMBER, None, u, T)),
        ("invite-email-not-lower-cased",
         lambda d, o, u, g, p: d.add_invite(o, "new", OrgRole.MEMBER, "Cy@Example.com", u, T)),
        ("invite-to-missing-org", lambda d, o, u, g, p: d.add_invite(MISSING, "new", OrgRole.MEMBER, None, u, T)),
        ("session-token-hash-twice", lambda d, o, u, g, p: d.add_session(Session("taken", u, None, T))),
        ("session-of-missing-user", lambda d, o, u, g, p: d.add_session(Session("new", MISSING, None, T))),
    ]


@pytest.mark.parametrize("bug", [call for _, call in _bugs()], ids=[name for name, _ in _bugs()])
def test_what_the_schema_refuses_is_a_caller_bug_not_a_user_error(world, bug):
    d = world.d
    acme = world.org()
    ada = world.member(acme, "ada", OrgRole.OWNER)
    group, project = d.add_group(acme, "eng").id, world.project(acme, "APP")
    d.add_invite(acme, "taken", OrgRole.MEMBER, None, ada, T)
    d.add_session(Session("taken", ada, None, T))
    with world.caller_bug():
        bug(d, acme, ada, group, project)
    assert d.count_users() == 1 and d.group(group).name == "eng"  # and the transaction is still usable
    assert [p.key for p in d.projects(acme)] == ["APP"] and d.members(acme)[0].role is OrgRole.OWNER


# --- serialisation: postgres-only ----------------------------------------------------------------------


@pytest.mark.parametrize("lock", ["registration", "server_admins", "owners"])
def test_postgres_locks_serialise_first_and_last_checks_until_the_transaction_ends(directory_engine, lock):
    """Postgres-only: two racing transactions (the fake is used from one thread; its locks are no-ops)."""
    def take(conn, org_id: int = 1) -> None:
        directory = PgDirectory(conn)
        {"registration": directory.lock_registration, "server_admins": directory.lock_server_admins,
         "owners": lambda: directory.lock_owners(org_id)}[lock]()

    with directory_engine.connect() as first, directory_engine.connect() as second:
        holding = first.begin()
        take(first)
        waiting = second.begin()
        second.execute(sa.text("SET LOCAL lock_timeout = '200ms'"))
        if lock == "owners":
            take(second, org_id=2)  # another organisation's owners: not serialised with these
        with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
            take(second)
        waiting.rollback()
        holding.commit()
        with second.begin():
            take(second)  # released when the holding transaction ended
