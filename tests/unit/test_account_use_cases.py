"""The accounts use case object front doors call (``tow_core.use_cases.accounts``) over the in-memory fakes: one
unit of work per call, rolled back when it raises; sign-in failures counted by the sign-in log even then; a new
session token at every sign-in; sessions loaded fresh (revocation is immediate)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from tests.fake_tokens import InMemoryAccessTokens
from tests.fake_unit_of_work import fake_transactions, signed_in
from tests.fakes import FakePasswordHasher, InMemoryDirectory, InMemorySignInLog
from tow_core import accounts
from tow_core.access import OrgRole
from tow_core.errors import AccessDenied, NotAuthenticated, NotFound, Throttled
from tow_core.identity import WorkflowMode
from tow_core.unit_of_work import SessionCredential, Transactions
from tow_core.use_cases.accounts import AccountUseCases, Home

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
ADDRESS = "198.51.100.7"
LIFETIME = timedelta(hours=8)


class CountingTokens:
    """``SessionTokens`` drawing token-1, token-2 ... (the hash is recognisable in the fake directory)."""

    def __init__(self) -> None:
        self._next = itertools.count(1)

    def new_token(self) -> str:
        return f"token-{next(self._next)}"

    @staticmethod
    def token_hash(token: str) -> str:
        return f"hash:{token}"


class Server:
    def __init__(self) -> None:
        self.directory, self.log, self.tokens = InMemoryDirectory(lambda: NOW), InMemorySignInLog(), CountingTokens()
        self.opened = 0
        transactions = fake_transactions(lambda: NOW, rollback=(self.directory,), directory=self.directory,
                                         tokens=InMemoryAccessTokens())

        def counted():
            self.opened += 1
            return transactions.unit_of_work()

        self.accounts = AccountUseCases(Transactions(counted, transactions.clock), self.log, FakePasswordHasher(),
                                        self.tokens, LIFETIME)
        self.sso_accounts = AccountUseCases(Transactions(counted, transactions.clock), self.log, FakePasswordHasher(),
                                            self.tokens, LIFETIME, single_sign_on=True)  # auth.mode oidc

    def first(self):
        return self.accounts.first_account(email="Ada@Example.com", display_name="Ada", password=PASSWORD,
                                           organisation_name="Acme")

    def credential(self, token: str) -> SessionCredential:
        """What the front door hands over for a cookie carrying ``token``."""
        return SessionCredential(self.tokens.token_hash(token))

    def invite(self, org_id: int, by: int, token: str, *, email: str | None = None) -> None:
        accounts.create_invite(self.directory, self.directory.principal(by), org_id=org_id,
                               token_hash=self.tokens.token_hash(token), role=OrgRole.MEMBER, email=email, now=NOW)


@pytest.fixture
def server() -> Server:
    return Server()


def test_the_first_account_is_signed_in_with_a_session_only_its_token_opens(server):
    assert server.accounts.needs_first_account()
    ada = server.first()
    assert not server.accounts.needs_first_account()
    user, memberships = ada.account.user, ada.account.memberships
    assert (user.email, user.is_server_admin, user.password_hash) == ("ada@example.com", True, None)
    assert [(o.name, role) for o, role in memberships] == [("Acme", OrgRole.OWNER)]
    assert ada.account.active_organisation_id == memberships[0][0].id
    session = server.directory.live_session(server.tokens.token_hash(ada.token), NOW)
    assert (session.user_id, session.expires_at) == (user.id, NOW + LIFETIME)
    assert server.accounts.me(server.credential(ada.token)) == ada.account

    with pytest.raises(AccessDenied):  # the server has accounts now: nothing of the attempt remains
        server.accounts.first_account(email="eve@example.com", display_name="Eve", password=PASSWORD,
                                      organisation_name="Eve's")
    assert server.directory.count_users() == 1 and server.directory.user_by_email("eve@example.com") is None


def test_sign_in_issues_a_new_session_each_time_and_a_refused_one_still_counts(server):
    first = server.first()
    sign_in = dict(email="ada@example.com", client_ip=ADDRESS)
    again = server.accounts.sign_in(password=PASSWORD, **sign_in)
    assert again.token != first.token and again.account == first.account  # session fixation: always a new id
    assert server.directory.live_session(server.tokens.token_hash(again.token), NOW) is not None

    for _ in range(accounts.ThrottlePolicy().max_failures_per_account_and_ip):
        with pytest.raises(NotAuthenticated):
            server.accounts.sign_in(password="wrong password", **sign_in)
    # the unit of work rolled back each time, yet the sign-in log kept every failure: now throttled,
    # the right password included, and no session was started for it
    assert len(server.log.recent_failures(NOW - timedelta(minutes=15), limit=100, email="ada@example.com")) == 5
    with pytest.raises(Throttled):
        server.accounts.sign_in(password=PASSWORD, **sign_in)
    assert server.directory.revoke_user_sessions(first.account.user.id, NOW) == 2  # the first two sign-ins only


def test_registering_with_an_invite_signs_in_to_its_organisation_and_a_bad_invite_creates_nobody(server):
    ada = server.first()
    acme = ada.account.active_organisation_id
    server.invite(acme, ada.account.user.id, "invite-1", email="bob@example.com")

    with pytest.raises(AccessDenied):  # bound to another email
        server.accounts.register(invite_token="invite-1", email="eve@example.com", display_name="Eve",
                                 password=PASSWORD)
    with pytest.raises(NotFound):
        server.accounts.register(invite_token="no-such-invite", email="bob@example.com", display_name="Bob",
                                 password=PASSWORD)
    assert server.directory.count_users() == 1

    bob = server.accounts.register(invite_token="invite-1", email="bob@example.com", display_name="Bob",
                                   password=PASSWORD)
    assert bob.account.active_organisation_id == acme
    assert [(o.id, role) for o, role in bob.account.memberships] == [(acme, OrgRole.MEMBER)]
    assert server.accounts.me(server.credential(bob.token)).user.email == "bob@example.com"


def test_switching_organisation_needs_membership_and_me_follows_the_session(server):
    ada = server.first()
    acme, user_id = ada.account.active_organisation_id, ada.account.user.id
    other = server.directory.add_organisation("Other", WorkflowMode.FOUNDER)
    stranger = server.directory.add_organisation("Stranger", WorkflowMode.FOUNDER)
    server.directory.set_membership(other.id, user_id, OrgRole.MEMBER)
    credential = server.credential(ada.token)

    with pytest.raises(NotFound):  # not a member: the session keeps its organisation
        server.accounts.switch_organisation(credential, stranger.id)
    assert server.accounts.me(credential).active_organisation_id == acme
    assert server.accounts.switch_organisation(credential, other.id).active_organisation_id == other.id
    assert server.accounts.me(credential).active_organisation_id == other.id

    server.directory.remove_membership(other.id, user_id)  # removed from the active one: the first one is shown
    assert server.accounts.me(credential).active_organisation_id == acme
    with pytest.raises(NotAuthenticated):
        server.accounts.me(SessionCredential("forged"))


def test_signing_out_revokes_at_once_and_without_a_session_opens_no_unit_of_work(server):
    ada = server.first()
    laptop = server.accounts.sign_in(email="ada@example.com", password=PASSWORD, client_ip=ADDRESS)
    phone = server.accounts.sign_in(email="ada@example.com", password=PASSWORD, client_ip=ADDRESS)

    opened = server.opened
    server.accounts.sign_out(None)
    assert server.opened == opened

    server.accounts.sign_out(server.credential(laptop.token))
    with pytest.raises(NotAuthenticated):
        server.accounts.me(server.credential(laptop.token))
    assert server.accounts.me(server.credential(phone.token)).user.id == ada.account.user.id

    assert server.accounts.sign_out_everywhere(server.credential(phone.token)) == 2  # phone and the first one
    for token in (ada.token, phone.token):
        with pytest.raises(NotAuthenticated):
            server.accounts.current_user(server.credential(token))
    with pytest.raises(NotAuthenticated):  # a revoked session cannot sign out everywhere either
        server.accounts.sign_out_everywhere(server.credential(phone.token))


def test_a_deactivated_account_is_refused_on_its_next_call(server):
    ada = server.first()
    credential = server.credential(ada.token)
    assert server.accounts.current_user(credential).password_hash is None
    server.directory.set_active(ada.account.user.id, False)
    for call in (server.accounts.me, server.accounts.current_user, server.accounts.sign_out_everywhere):
        with pytest.raises(NotAuthenticated):
            call(credential)
    with pytest.raises(NotAuthenticated):
        server.accounts.home(credential)
    with pytest.raises(NotAuthenticated):
        server.accounts.sign_in(email="ada@example.com", password=PASSWORD, client_ip=ADDRESS)


def test_home_leads_to_setup_then_sign_in_then_the_active_organisation(server):
    assert (server.accounts.home(None).needs_first_account,
            server.accounts.home(SessionCredential("anything")).needs_first_account) == (True, True)
    ada = server.first()
    assert server.accounts.home(None) == Home(False, None)
    assert server.accounts.home(server.credential(ada.token)) == Home(False, ada.account)
    with pytest.raises(NotAuthenticated):
        server.accounts.home(SessionCredential("forged"))


def test_an_invite_is_accepted_when_signed_in_and_registers_a_new_account_otherwise(server):
    ada = server.first()
    acme = ada.account.active_organisation_id
    oscar = server.directory.add_user("oscar@example.com", "Oscar", None, server_admin=False)
    other = server.directory.add_organisation("Other", WorkflowMode.FOUNDER)
    server.directory.set_membership(other.id, oscar.id, OrgRole.OWNER)
    oscar_credential = signed_in(server.directory, oscar.id, NOW)
    server.invite(acme, ada.account.user.id, "for-oscar")
    server.invite(acme, ada.account.user.id, "for-bob", email="bob@example.com")

    assert server.accounts.invited_user(oscar_credential).email == "oscar@example.com"
    assert server.accounts.invited_user(None) is None
    joined = server.accounts.join(oscar_credential, invite_token="for-oscar", email="", display_name="",
                                  password="")
    assert (joined.organisation_id, joined.signed_in) == (acme, None)  # accepted; no new session
    assert server.directory.principal(oscar.id).org_roles[acme] is OrgRole.MEMBER

    server.accounts.sign_out(oscar_credential)  # a revoked session joins as nobody would: a new account
    assert server.accounts.invited_user(oscar_credential) is None
    with pytest.raises(AccessDenied):  # bound to bob: refused, nothing created
        server.accounts.join(oscar_credential, invite_token="for-bob", email="eve@example.com", display_name="Eve",
                             password=PASSWORD)
    assert server.directory.user_by_email("eve@example.com") is None
    bob = server.accounts.join(oscar_credential, invite_token="for-bob", email="bob@example.com",
                               display_name="Bob", password=PASSWORD)
    assert bob.organisation_id == acme and bob.signed_in.account.user.email == "bob@example.com"
    assert server.accounts.me(server.credential(bob.signed_in.token)).active_organisation_id == acme


def test_an_account_and_its_session_commit_together_or_not_at_all(server):
    def broken() -> str:
        raise RuntimeError("no randomness today")

    server.tokens.new_token = broken  # the session cannot start after the account was written
    with pytest.raises(RuntimeError):
        server.first()
    assert server.accounts.needs_first_account() and server.directory.user_by_email("ada@example.com") is None
    del server.tokens.new_token
    assert server.first().account.user.email == "ada@example.com"


def test_with_single_sign_on_passwords_sign_in_only_the_break_glass_server_admin(server):
    ada = server.first()  # server admin, with a password (as `tow users create-admin` makes one)
    acme = ada.account.active_organisation_id
    server.invite(acme, ada.account.user.id, "invite-1")
    server.accounts.register(invite_token="invite-1", email="bob@example.com", display_name="Bob", password=PASSWORD)
    sso = server.sso_accounts
    assert sso.sign_in(email="ada@example.com", password=PASSWORD, client_ip=ADDRESS).account.user.is_server_admin
    with pytest.raises(AccessDenied, match="single sign-on"):  # a member's password no longer signs in
        sso.sign_in(email="bob@example.com", password=PASSWORD, client_ip=ADDRESS)
    with pytest.raises(NotAuthenticated):  # a wrong password is the generic refusal, as ever
        sso.sign_in(email="ada@example.com", password="wrong password", client_ip=ADDRESS)
    server.invite(acme, ada.account.user.id, "invite-2")
    users = server.directory.count_users()
    with pytest.raises(AccessDenied, match="single sign-on"):  # nor are password accounts registered
        sso.register(invite_token="invite-2", email="carol@example.com", display_name="Carol", password=PASSWORD)
    with pytest.raises(AccessDenied, match="single sign-on"):
        sso.first_account(email="x@example.com", display_name="X", password=PASSWORD, organisation_name="X")
    assert server.directory.count_users() == users
