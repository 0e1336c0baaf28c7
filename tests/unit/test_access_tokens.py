"""Personal access tokens through their use cases over the fakes (rules in ``tow_core.access_tokens``), as
attacks: wrong, expired, revoked and read-only tokens, a token limited to one organisation reaching for
another, a deactivated user, tokens outliving a password reset or "sign out everywhere", a token minting a
token, and owners/admins seeing (never using) their members' tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fake_tokens import InMemoryAccessTokens
from tests.fake_unit_of_work import fake_transactions, signed_in
from tests.fakes import FakePasswordHasher, InMemoryDirectory
from tests.unit.records_world import World
from tow_core.access import OrgRole
from tow_core.access_tokens import NewToken, TokenAccess, TokenPolicy
from tow_core.audit import AuditAction
from tow_core.errors import AccessDenied, InvalidInput, InvalidToken, NotFound, TokenReadOnly
from tow_core.unit_of_work import TokenCredential
from tow_core.use_cases.accounts import AccountUseCases
from tow_core.use_cases.operator import OperatorUseCases
from tow_core.use_cases.tokens import TokenUseCases
from tow_http.context import PersonalAccessTokenSecrets, secret_hash

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Server:
    """The records world's people (Ada owns Acme, Bob and Cy are members, Oscar owns Other) with tokens."""

    def __init__(self) -> None:
        self.world = World()
        self.clock = Clock()
        self.directory: InMemoryDirectory = self.world.directory
        self.tokens = InMemoryAccessTokens()
        self.transactions = fake_transactions(self.clock, rollback=(self.directory, self.tokens),
                                              directory=self.directory, tokens=self.tokens,
                                              records=self.world.records, history=self.world.keeping)
        self.use_cases = TokenUseCases(self.transactions, PersonalAccessTokenSecrets(), TokenPolicy(max_days=365))
        self.ids = self.world.ids

    def session(self, name: str):
        return signed_in(self.directory, self.ids[name], self.clock.now, lifetime=timedelta(days=3650))

    def create(self, name: str, *, access: TokenAccess = TokenAccess.READ_WRITE, org: int | None = None,
               days: int | None = None):
        return self.use_cases.create(self.session(name), NewToken(f"{name}'s script", days, access, org))

    def me(self, secret: str, *, writes: bool = False) -> list:
        """What the token reads through a use case that loads its principal: the organisations it reaches."""
        with self.transactions.acting_as(TokenCredential(secret_hash(secret), writes=writes)) as acting:
            return sorted(acting.principal.org_roles)


@pytest.fixture
def server() -> Server:
    return Server()


def test_a_new_token_is_shown_once_and_stored_as_its_hash_only(server):
    created = server.create("bob")
    assert created.secret.startswith("tow_pat_") and len(created.secret) >= len("tow_pat_") + 43
    assert server.tokens.token_by_hash(secret_hash(created.secret)) == created.token
    assert created.secret not in repr(vars(server.tokens))  # nothing but the hash is kept
    listed = server.use_cases.mine(server.session("bob"))
    assert [t.id for t in listed] == [created.token.id] and created.secret.startswith(listed[0].prefix)
    assert created.token.expires_at == START + timedelta(days=90)  # the default
    assert server.me(created.secret) == [server.world.org]


@pytest.mark.parametrize("secret", ["tow_pat_" + "x" * 43, "tow_pat_", "tow_pat_wrong"])
def test_a_wrong_token_is_refused(server, secret):
    server.create("bob")
    with pytest.raises(InvalidToken):
        server.me(secret)


def test_an_expired_token_is_refused(server):
    created = server.create("bob", days=1)
    server.clock.now = START + timedelta(days=1)
    with pytest.raises(InvalidToken):
        server.me(created.secret)


def test_a_revoked_token_is_refused_and_only_its_owner_revokes_it(server):
    created = server.create("bob")
    with pytest.raises(NotFound):  # Cy cannot revoke Bob's token, nor learn that it exists
        server.use_cases.revoke(server.session("cy"), created.token.id)
    assert server.me(created.secret)
    server.use_cases.revoke(server.session("bob"), created.token.id)
    with pytest.raises(InvalidToken):
        server.me(created.secret)
    assert server.use_cases.mine(server.session("bob")) == []


def test_a_read_only_token_reads_but_never_writes(server):
    created = server.create("bob", access=TokenAccess.READ)
    assert server.me(created.secret) == [server.world.org]
    with pytest.raises(TokenReadOnly):
        server.me(created.secret, writes=True)
    assert server.me(server.create("bob").secret, writes=True)  # a read_write one does


def test_a_token_limited_to_one_organisation_sees_no_other(server):
    oscar = server.ids["oscar"]
    server.directory.set_membership(server.world.org, oscar, OrgRole.MEMBER)
    server.directory.set_server_admin(oscar, True)
    limited = server.create("oscar", org=server.world.other_org)
    with server.transactions.acting_as(TokenCredential(secret_hash(limited.secret), writes=False)) as acting:
        assert list(acting.principal.org_roles) == [server.world.other_org]
        assert not acting.principal.is_server_admin  # server admin spans organisations: not through this token
        with pytest.raises(NotFound):  # as for a non-member
            acting.workspace(server.world.org)
        assert acting.workspace(server.world.other_org).org_id == server.world.other_org
    assert server.me(server.create("oscar").secret) == sorted([server.world.org, server.world.other_org])


def test_a_token_cannot_be_limited_to_an_organisation_its_user_is_not_in(server):
    with pytest.raises(NotFound):
        server.create("bob", org=server.world.other_org)


def test_expiry_is_bounded_by_the_server_maximum(server):
    for days in (0, 366):
        with pytest.raises(InvalidInput) as refused:
            server.create("bob", days=days)
        assert refused.value.field == "expires_in_days"
    assert server.create("bob", days=365).token.expires_at == START + timedelta(days=365)


def test_a_deactivated_users_tokens_stop_working(server):
    created = server.create("bob")
    server.directory.set_active(server.ids["bob"], False)
    with pytest.raises(InvalidToken):
        server.me(created.secret)


def test_a_removed_membership_is_gone_from_the_token_at_once(server):
    created = server.create("bob", org=server.world.org)
    server.directory.remove_membership(server.world.org, server.ids["bob"])
    credential = TokenCredential(secret_hash(created.secret), writes=False)
    with server.transactions.acting_as(credential) as acting, pytest.raises(NotFound):
        acting.workspace(server.world.org)


def test_sign_out_everywhere_revokes_every_token_of_the_user_only(server):
    mine, theirs = server.create("bob"), server.create("cy")
    accounts = AccountUseCases(server.transactions, None, FakePasswordHasher(), None, timedelta(days=1))
    accounts.sign_out_everywhere(server.session("bob"))
    with pytest.raises(InvalidToken):
        server.me(mine.secret)
    assert server.me(theirs.secret)


def test_a_password_reset_from_the_shell_revokes_the_accounts_tokens(server):
    created = server.create("bob")
    OperatorUseCases(server.transactions, FakePasswordHasher()).reset_password(
        email="bob@example.com", password="a brand new passphrase")
    with pytest.raises(InvalidToken):
        server.me(created.secret)


def test_a_token_cannot_create_tokens(server):
    created = server.create("bob")
    credential = TokenCredential(secret_hash(created.secret), writes=True)
    with pytest.raises(AccessDenied):
        server.use_cases.create(credential, NewToken("escalate", None, TokenAccess.READ_WRITE, None))


def test_last_use_is_written_at_most_once_a_minute(server):
    created = server.create("bob")
    server.me(created.secret)
    first = server.tokens.token(created.token.id).last_used_at
    server.clock.now = START + timedelta(seconds=30)
    server.me(created.secret)
    assert server.tokens.token(created.token.id).last_used_at == first == START
    server.clock.now = START + timedelta(minutes=2)
    server.me(created.secret)
    assert server.tokens.token(created.token.id).last_used_at == START + timedelta(minutes=2)


def test_owners_and_admins_see_and_revoke_the_tokens_that_reach_their_organisation(server):
    org, other = server.world.org, server.world.other_org
    server.directory.set_membership(other, server.ids["bob"], OrgRole.MEMBER)
    everywhere, here, elsewhere = (server.create("bob"), server.create("bob", org=org),
                                   server.create("bob", org=other))
    listed = server.use_cases.of_organisation(server.session("ada"), org)
    assert {t.token.id for t in listed} == {everywhere.token.id, here.token.id}  # not the one limited to Other
    assert all(t.owner.email == "bob@example.com" for t in listed)
    assert all(not hasattr(t.token, "secret") for t in listed)
    with pytest.raises(NotFound):  # Ada cannot reach the token Bob limited to another organisation
        server.use_cases.revoke_member_token(server.session("ada"), org, elsewhere.token.id)
    server.use_cases.revoke_member_token(server.session("ada"), org, everywhere.token.id)
    with pytest.raises(InvalidToken):
        server.me(everywhere.secret)
    entry = server.directory.audit_log[-1]
    assert (entry.action, entry.target, entry.actor_id) == (AuditAction.TOKEN_REVOKED, f"token:{everywhere.token.id}",
                                                            server.ids["ada"])


def test_members_cannot_see_each_others_tokens_and_strangers_learn_nothing(server):
    server.create("bob")
    with pytest.raises(AccessDenied):
        server.use_cases.of_organisation(server.session("cy"), server.world.org)
    with pytest.raises(NotFound):
        server.use_cases.of_organisation(server.session("oscar"), server.world.org)
