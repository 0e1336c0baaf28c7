"""Builtin accounts over the in-memory fakes (SPEC §1, §3; rules in ``tow_core.accounts``): the first account,
invites and registration through them, sign-in, sessions (start, resolve, revoke, expire, sign out
everywhere, switching organisation) and deactivation. Throttling has its own file, test_sign_in_throttle.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fake_tokens import InMemoryAccessTokens
from tests.fakes import FakePasswordHasher, InMemoryDirectory, InMemorySignInLog
from tow_core import accounts
from tow_core.access import OrgRole
from tow_core.audit import AuditAction
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotAuthenticated, NotFound
from tow_core.identity import InviteState, WorkflowMode

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
DAY = timedelta(days=1)


class Server:
    """A fresh server; ``first()`` registers Ada, the first account, owning Acme."""

    def __init__(self) -> None:
        self.directory, self.hasher, self.log = InMemoryDirectory(lambda: NOW), FakePasswordHasher(), InMemorySignInLog()
        self._tokens = 0

    def first(self, email: str = "ada@example.com"):
        return accounts.register_first_account(self.directory, self.hasher, email=email, display_name="Ada",
                                               password=PASSWORD, organisation_name="Acme")

    def principal(self, user_id: int):
        return self.directory.principal(user_id)

    def invite(self, org_id: int, by: int, *, role: OrgRole = OrgRole.MEMBER, email: str | None = None,
               lifetime: timedelta | None = None, now: datetime = NOW):
        self._tokens += 1
        token = f"hash-{self._tokens}"
        invite = accounts.create_invite(self.directory, self.principal(by), org_id=org_id, token_hash=token, role=role,
                                        email=email, now=now, lifetime=lifetime)
        return token, invite

    def register(self, token: str, email: str = "bob@example.com", *, now: datetime = NOW):
        return accounts.register_with_invite(self.directory, self.hasher, token_hash=token, email=email,
                                             display_name=email.split("@")[0].title(), password=PASSWORD, now=now)

    def sign_in(self, email: str, password: str = PASSWORD):
        return accounts.authenticate(self.directory, self.log, self.hasher, email=email, password=password,
                                     client_ip="198.51.100.7", now=NOW)

    def session(self, user, *, lifetime: timedelta = DAY, now: datetime = NOW):
        self._tokens += 1
        return accounts.start_session(self.directory, user=user, token_hash=f"session-{self._tokens}", now=now,
                                      lifetime=lifetime)

    def resolve(self, session, *, now: datetime = NOW):
        return accounts.resolve_session(self.directory, token_hash=session.token_hash, now=now)


@pytest.fixture
def server() -> Server:
    return Server()


# --- the first account -----------------------------------------------------------------------------------


def test_the_first_account_becomes_server_admin_and_owner_of_the_first_organisation(server):
    user, organisation = server.first(email="  Ada@Example.COM ")
    assert (user.email, user.is_server_admin, user.is_active) == ("ada@example.com", True, True)
    assert (organisation.name, organisation.workflow_mode) == ("Acme", WorkflowMode.ORGANIZATION)
    assert server.principal(user.id).org_roles == {organisation.id: OrgRole.OWNER}
    assert server.hasher.verify(user.password_hash, PASSWORD)
    joined = server.directory.audit_log[-1]
    assert (joined.action, joined.organisation_id, joined.details["via"]) == (
        AuditAction.MEMBER_JOINED, organisation.id, "first account")


def test_after_the_first_account_joining_needs_an_invite(server):
    server.first()
    with pytest.raises(AccessDenied):
        accounts.register_first_account(server.directory, server.hasher, email="eve@example.com", display_name="Eve",
                                        password=PASSWORD, organisation_name="Eve's org")
    assert server.directory.count_users() == 1 and server.directory.user_by_email("eve@example.com") is None


@pytest.mark.parametrize(("field", "value"), [
    ("email", "not an email"), ("display_name", "   "), ("organisation_name", ""), ("password", "short")])
def test_a_first_registration_with_bad_input_creates_nobody(server, field, value):
    given = {"email": "ada@example.com", "display_name": "Ada", "password": PASSWORD,
             "organisation_name": "Acme"} | {field: value}
    with pytest.raises(InvalidInput):
        accounts.register_first_account(server.directory, server.hasher, **given)
    assert server.directory.count_users() == 0
    server.first()  # the server is still fresh


# --- creating, listing and revoking invites ----------------------------------------------------------------


@pytest.fixture
def acme(server):
    """Ada owns Acme; Adam is its admin, Mia a member; Oscar owns Other."""
    ada, org = server.first()
    people = {"ada": ada.id}
    for name, role in (("adam", OrgRole.ADMIN), ("mia", OrgRole.MEMBER)):
        token, _ = server.invite(org.id, ada.id, role=role)
        people[name] = server.register(token, f"{name}@example.com")[0].id
    people["oscar"] = server.directory.add_user("oscar@example.com", "Oscar", None, server_admin=False).id
    other = server.directory.add_organisation("Other", WorkflowMode.FOUNDER)
    server.directory.set_membership(other.id, people["oscar"], OrgRole.OWNER)
    return org.id, other.id, people


@pytest.mark.parametrize(("who", "role", "error"), [
    ("ada", OrgRole.OWNER, None),
    ("ada", OrgRole.ADMIN, None),
    ("adam", OrgRole.ADMIN, None),
    ("adam", OrgRole.MEMBER, None),
    ("adam", OrgRole.OWNER, AccessDenied),  # only an owner invites owners
    ("mia", OrgRole.MEMBER, AccessDenied),
    ("oscar", OrgRole.MEMBER, NotFound),  # another organisation's owner: Acme does not exist for him
], ids=lambda v: v.value if isinstance(v, OrgRole) else v if isinstance(v, str) else getattr(v, "__name__", "ok"))
def test_owners_and_admins_invite_and_only_owners_invite_owners(server, acme, who, role, error):
    org, _, people = acme
    if error is not None:
        with pytest.raises(error):
            server.invite(org, people[who], role=role)
        assert all(i.created_by != people[who] for i in server.directory.invites(org))
        return
    _, invite = server.invite(org, people[who], role=role, email="New@Example.com")
    assert (invite.role, invite.email, invite.expires_at, invite.state(NOW)) == (
        role, "new@example.com", NOW + accounts.InvitePolicy().default_lifetime, InviteState.PENDING)
    created = server.directory.audit_log[-1]
    assert (created.action, created.actor_id, created.target) == (
        AuditAction.INVITE_CREATED, people[who], f"invite:{invite.id}")


@pytest.mark.parametrize(("lifetime", "allowed"), [
    (timedelta(hours=1), True), (timedelta(days=30), True), (timedelta(days=30, seconds=1), False),
    (timedelta(seconds=-1), False)], ids=["an-hour", "thirty-days", "over-thirty-days", "negative"])
def test_an_invite_expires_within_thirty_days(server, acme, lifetime, allowed):
    org, _, people = acme
    if allowed:
        assert server.invite(org, people["ada"], lifetime=lifetime)[1].expires_at == NOW + lifetime
        return
    with pytest.raises(InvalidInput):
        server.invite(org, people["ada"], lifetime=lifetime)


def test_only_owners_and_admins_list_their_organisations_invites(server, acme):
    org, other, people = acme
    server.invite(other, people["oscar"])
    listed = accounts.list_invites(server.directory, server.principal(people["adam"]), org_id=org)
    assert {i.organisation_id for i in listed} == {org} and len(listed) == 2
    with pytest.raises(AccessDenied):
        accounts.list_invites(server.directory, server.principal(people["mia"]), org_id=org)
    with pytest.raises(NotFound):
        accounts.list_invites(server.directory, server.principal(people["oscar"]), org_id=org)


def test_a_pending_invite_is_revoked_once_and_audited(server, acme):
    org, _, people = acme
    token, invite = server.invite(org, people["ada"])
    revoke = dict(org_id=org, invite_id=invite.id, now=NOW)
    accounts.revoke_invite(server.directory, server.principal(people["adam"]), **revoke)
    assert server.directory.invite(invite.id).state(NOW) is InviteState.REVOKED
    assert server.directory.audit_log[-1].action is AuditAction.INVITE_REVOKED
    with pytest.raises(Conflict):
        accounts.revoke_invite(server.directory, server.principal(people["adam"]), **revoke)


def test_revoking_is_for_owners_and_admins_of_the_invites_own_organisation(server, acme):
    org, other, people = acme
    _, invite = server.invite(org, people["ada"])
    _, elsewhere = server.invite(other, people["oscar"])
    with pytest.raises(AccessDenied):
        accounts.revoke_invite(server.directory, server.principal(people["mia"]), org_id=org, invite_id=invite.id,
                               now=NOW)
    with pytest.raises(NotFound):  # Other's invite, named through Acme
        accounts.revoke_invite(server.directory, server.principal(people["ada"]), org_id=org,
                               invite_id=elsewhere.id, now=NOW)
    assert {server.directory.invite(i.id).state(NOW) for i in (invite, elsewhere)} == {InviteState.PENDING}


@pytest.mark.parametrize("state", ["used", "expired"])
def test_an_invite_that_is_no_longer_pending_cannot_be_revoked(server, acme, state):
    org, _, people = acme
    token, invite = server.invite(org, people["ada"], lifetime=DAY)
    now = NOW + 2 * DAY if state == "expired" else NOW
    if state == "used":
        server.register(token)
    with pytest.raises(Conflict) as refused:
        accounts.revoke_invite(server.directory, server.principal(people["ada"]), org_id=org, invite_id=invite.id,
                               now=now)
    assert state in str(refused.value)


# --- registering with an invite --------------------------------------------------------------------------


def test_registering_with_an_invite_joins_its_organisation_with_its_role_and_uses_it(server, acme):
    org, _, people = acme
    token, invite = server.invite(org, people["adam"], role=OrgRole.ADMIN, email="bob@example.com")
    user, used = server.register(token, "Bob@Example.com")
    assert (user.email, user.is_server_admin, used.id) == ("bob@example.com", False, invite.id)
    assert server.principal(user.id).org_roles == {org: OrgRole.ADMIN}
    assert server.directory.invite(invite.id).state(NOW) is InviteState.USED
    assert server.directory.invite_used_by(invite.id) == user.id
    joined = server.directory.audit_log[-1]
    assert (joined.action, joined.details["role"], joined.details["invite_id"]) == (
        AuditAction.MEMBER_JOINED, "admin", invite.id)


REFUSALS = [
    ("expired", Conflict, "expired"),
    ("revoked", Conflict, "revoked"),
    ("used", Conflict, "already been used"),
    ("bound-to-another-email", AccessDenied, "different email"),
    ("unknown-token", NotFound, "not found"),
]


@pytest.mark.parametrize(("case", "error", "says"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_an_invite_that_cannot_be_used_is_refused_with_its_own_reason_and_creates_nobody(server, acme, case, error,
                                                                                        says):
    org, _, people = acme
    token, invite = server.invite(org, people["ada"], lifetime=DAY,
                                  email="carol@example.com" if case == "bound-to-another-email" else None)
    now = NOW + DAY if case == "expired" else NOW  # expiry is inclusive
    if case == "revoked":
        accounts.revoke_invite(server.directory, server.principal(people["ada"]), org_id=org, invite_id=invite.id,
                               now=NOW)
    if case == "used":
        server.register(token, "carol@example.com")
    users = server.directory.count_users()
    with pytest.raises(error) as refused:
        server.register("no-such-hash" if case == "unknown-token" else token, "dave@example.com", now=now)
    assert says in str(refused.value)
    assert server.directory.count_users() == users and server.directory.user_by_email("dave@example.com") is None


def test_an_email_with_an_account_registers_nobody_and_leaves_the_invite_usable(server, acme):
    org, _, people = acme
    token, invite = server.invite(org, people["ada"])
    with pytest.raises(Conflict) as refused:
        server.register(token, "MIA@example.com")
    assert refused.value.field == "email"
    assert server.directory.invite(invite.id).state(NOW) is InviteState.PENDING


# --- accepting an invite when signed in ----------------------------------------------------------------------


@pytest.mark.parametrize(("current", "invited", "after"), [
    (None, OrgRole.MEMBER, OrgRole.MEMBER),
    (OrgRole.MEMBER, OrgRole.ADMIN, OrgRole.ADMIN),  # raised
    (OrgRole.OWNER, OrgRole.MEMBER, OrgRole.OWNER),  # never downgraded
    (OrgRole.ADMIN, OrgRole.ADMIN, OrgRole.ADMIN),
], ids=["joins", "raised-to-admin", "owner-stays-owner", "same-role"])
def test_a_signed_in_user_accepts_an_invite_and_is_never_downgraded(server, acme, current, invited, after):
    org, other, people = acme
    if current is not None:
        server.directory.set_membership(org, people["oscar"], current)
    token, invite = server.invite(org, people["ada"], role=invited)
    accounts.accept_invite(server.directory, server.principal(people["oscar"]), token_hash=token, now=NOW)
    assert server.principal(people["oscar"]).org_roles == {other: OrgRole.OWNER, org: after}
    assert server.directory.invite(invite.id).state(NOW) is InviteState.USED


def test_accepting_an_invite_bound_to_another_email_is_refused(server, acme):
    org, _, people = acme
    token, invite = server.invite(org, people["ada"], email="carol@example.com")
    with pytest.raises(AccessDenied):
        accounts.accept_invite(server.directory, server.principal(people["oscar"]), token_hash=token, now=NOW)
    assert org not in server.principal(people["oscar"]).org_roles
    assert server.directory.invite(invite.id).state(NOW) is InviteState.PENDING


# --- signing in ------------------------------------------------------------------------------------------


def test_signing_in_takes_the_email_in_any_case_and_upgrades_an_old_hash(server):
    user, _ = server.first()
    assert server.sign_in("  ADA@example.com").id == user.id
    stronger = FakePasswordHasher(prefix="fake2$")
    accounts.authenticate(server.directory, server.log, stronger, email="ada@example.com", password=PASSWORD,
                          client_ip="198.51.100.7", now=NOW)
    assert server.directory.user(user.id).password_hash == stronger.hash(PASSWORD)


@pytest.mark.parametrize("case", ["wrong-password", "unknown-email", "no-password-set", "deactivated"])
def test_every_failed_sign_in_gets_the_same_generic_answer(server, case):
    user, _ = server.first()
    email, password = "ada@example.com", PASSWORD
    if case == "wrong-password":
        password = "a wrong guess"
    elif case == "unknown-email":
        email = "nobody@example.com"
    elif case == "no-password-set":
        email = server.directory.add_user("sso@example.com", "Sso", None, server_admin=False).email
    else:
        server.directory.set_active(user.id, False)
    with pytest.raises(NotAuthenticated) as refused:
        server.sign_in(email, password)
    assert str(refused.value) == accounts.GENERIC_LOGIN_ERROR
    if case in ("unknown-email", "no-password-set"):
        assert server.hasher.dummy_calls == 1  # costs one verification too


# --- sessions --------------------------------------------------------------------------------------------


def test_a_session_starts_in_the_users_first_organisation_and_resolves_to_a_fresh_principal(server, acme):
    org, other, people = acme
    server.directory.set_membership(other, people["mia"], OrgRole.MEMBER)
    session = server.session(server.directory.user(people["mia"]), lifetime=DAY)
    assert (session.active_organisation_id, session.expires_at) == (org, NOW + DAY)
    resolved, principal = server.resolve(session)
    assert resolved == session and principal.org_roles == {org: OrgRole.MEMBER, other: OrgRole.MEMBER}
    server.directory.remove_membership(other, people["mia"])
    assert server.resolve(session)[1].org_roles == {org: OrgRole.MEMBER}  # loaded again on every request


def test_a_user_of_no_organisation_has_a_session_without_one(server):
    user = server.directory.add_user("lone@example.com", "Lone", None, server_admin=True)
    assert server.session(user).active_organisation_id is None


def test_every_sign_in_gets_a_new_session_and_an_old_one_stays_its_own(server):
    user, _ = server.first()
    first, second = server.session(user), server.session(user)
    assert first.token_hash != second.token_hash
    server.directory.revoke_session(first.token_hash, NOW)
    assert server.resolve(second)[0] == second


@pytest.mark.parametrize("case", ["revoked", "expired", "expires-this-instant", "unknown", "deactivated-user"])
def test_a_session_that_is_revoked_expired_unknown_or_of_a_deactivated_user_does_not_resolve(server, case):
    user, _ = server.first()
    session = server.session(user, lifetime=DAY)
    now = {"expired": NOW + 2 * DAY, "expires-this-instant": NOW + DAY}.get(case, NOW)
    if case == "revoked":
        server.directory.revoke_session(session.token_hash, NOW)
    if case == "deactivated-user":
        server.directory.set_active(user.id, False)
    token = "never-issued" if case == "unknown" else session.token_hash
    with pytest.raises(NotAuthenticated):
        accounts.resolve_session(server.directory, token_hash=token, now=now)


def test_a_deactivated_user_is_signed_out_at_once_and_cannot_sign_in_again(server):
    user, _ = server.first()
    session = server.session(user)
    server.directory.set_active(user.id, False)
    with pytest.raises(NotAuthenticated):
        server.resolve(session)
    with pytest.raises(NotAuthenticated):
        server.sign_in("ada@example.com")


def test_sign_out_everywhere_revokes_every_session_of_the_user_and_no_one_elses(server, acme):
    org, _, people = acme
    ada, mia = (server.directory.user(people[n]) for n in ("ada", "mia"))
    mine = [server.session(ada) for _ in range(3)]
    hers = server.session(mia)
    assert accounts.sign_out_everywhere(server.directory, InMemoryAccessTokens(), server.principal(ada.id), now=NOW) == 3
    for session in mine:
        with pytest.raises(NotAuthenticated):
            server.resolve(session)
    assert server.resolve(hers)[0] == hers
    assert accounts.sign_out_everywhere(server.directory, InMemoryAccessTokens(), server.principal(ada.id), now=NOW) == 0


def test_switching_organisation_needs_a_membership_there(server, acme):
    org, other, people = acme
    session = server.session(server.directory.user(people["mia"]))
    with pytest.raises(NotFound):
        accounts.switch_organisation(server.directory, server.principal(people["mia"]),
                                     token_hash=session.token_hash, org_id=other)
    assert server.resolve(session)[0].active_organisation_id == org
    server.directory.set_membership(other, people["mia"], OrgRole.MEMBER)
    accounts.switch_organisation(server.directory, server.principal(people["mia"]), token_hash=session.token_hash,
                                 org_id=other)
    assert server.resolve(session)[0].active_organisation_id == other


def test_a_fresh_server_needs_its_first_account_until_it_exists(server):
    assert accounts.needs_first_account(server.directory)
    server.first()
    assert not accounts.needs_first_account(server.directory)


def test_signing_out_revokes_only_this_browsers_session(server, acme):
    ada = server.directory.user_by_email("ada@example.com")
    here, elsewhere = server.session(ada), server.session(ada)
    accounts.sign_out(server.directory, token_hash=here.token_hash, now=NOW)
    with pytest.raises(NotAuthenticated):
        server.resolve(here)
    assert server.resolve(elsewhere)[1].user_id == ada.id


def test_own_account_and_organisations_are_shown_without_the_password_hash(server, acme):
    ada = server.directory.user_by_email("ada@example.com")
    me = accounts.current_user(server.directory, server.principal(ada.id))
    overview, organisations = accounts.account_overview(server.directory, ada.id)
    assert me.password_hash is None and overview.password_hash is None
    assert (me.email, overview.email) == ("ada@example.com", "ada@example.com")
    assert [(org.name, role) for org, role in organisations] == [("Acme", OrgRole.OWNER)]
    assert accounts.own_organisations(server.directory, server.principal(ada.id)) == organisations
