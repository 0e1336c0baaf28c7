"""Single sign-on's rules through its use case object (``tow_core.use_cases.single_sign_on``, rules in
``tow_core.oidc``) over the in-memory fakes and a scripted provider: who a provider login is (linked by issuer and
subject only, linked by email only when verified and allowed, created just in time only when a rule gives an
organisation), group → role mapping (additive, taken back exactly when the group is left, never a role granted by
hand, never the last owner, every change audited), the login in flight checked before the provider is asked, and
sign-out. A refused login changes nothing."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.fake_oidc_identities import InMemoryOidcIdentities
from tests.fake_tokens import InMemoryAccessTokens
from tests.fake_unit_of_work import fake_transactions
from tests.fakes import InMemoryDirectory
from tow_core import accounts
from tow_core.access import OrgRole
from tow_core.access_tokens import NewToken, TokenAccess, TokenPolicy
from tow_core.audit import AuditAction
from tow_core.errors import AccessDenied, Conflict, DependencyUnavailable, InvalidToken, NotFound, TokenReadOnly
from tow_core.identity import WorkflowMode
from tow_core.oidc import OrganisationRule, ProviderAccess, ProviderLogin, SignInRefused, SsoPolicy
from tow_core.unit_of_work import ProviderTokenCredential, SessionCredential
from tow_core.use_cases.single_sign_on import SingleSignOnUseCases
from tow_core.use_cases.tokens import TokenUseCases
from tow_http.context import PersonalAccessTokenSecrets

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ISSUER = "https://login.example.com/realms/company"
RULES = (OrganisationRule("Acme", OrgRole.MEMBER), OrganisationRule("Acme", OrgRole.ADMIN, "tow-admins"),
         OrganisationRule("Beta", OrgRole.MEMBER, "beta"), OrganisationRule("Gamma", OrgRole.OWNER, "gamma"))


class CountingTokens:
    def __init__(self) -> None:
        self._next = itertools.count(1)

    def new_token(self) -> str:
        return f"token-{next(self._next)}"

    @staticmethod
    def token_hash(token: str) -> str:
        return f"hash:{token}"


class ScriptedProvider:
    """The ``IdentityProvider`` port: ``answer`` is what the next redeemed code says (verified already)."""

    def __init__(self) -> None:
        self.answer: ProviderLogin | None = None
        self.redeemed: list[tuple[str, str, str]] = []
        self.logout_down = False
        self.has_logout = True
        self.access: dict[str, ProviderAccess] = {}
        self.audiences: list[str] = []

    def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        return f"https://login.example.com/auth?state={state}&nonce={nonce}"

    def redeem(self, *, code: str, code_verifier: str, nonce: str) -> ProviderLogin:
        self.redeemed.append((code, code_verifier, nonce))
        assert self.answer is not None
        return self.answer

    def verify_access_token(self, token: str, *, audience: str) -> ProviderAccess:
        """Scripted: ``access[token]`` is what a checked token says; any other token is refused."""
        self.audiences.append(audience)
        if token not in self.access:
            raise InvalidToken("the access token's signature does not verify")
        return self.access[token]

    def end_session_url(self, *, id_token_hint: str) -> str | None:
        if self.logout_down:
            raise DependencyUnavailable("the provider cannot be reached", retry_after_seconds=30)
        return f"https://login.example.com/logout?id_token_hint={id_token_hint}" if self.has_logout else None


class Server:
    def __init__(self, **policy) -> None:
        self.now = NOW
        self.directory = InMemoryDirectory(lambda: self.now)
        self.identities = InMemoryOidcIdentities(self.directory)
        self.provider = ScriptedProvider()
        transactions = fake_transactions(lambda: self.now, rollback=(self.directory, self.identities),
                                         directory=self.directory, oidc_identities=self.identities)
        self.sso = SingleSignOnUseCases(transactions, self.provider,
                                        SsoPolicy(**{"rules": RULES, "first_organisation_name": "Acme", "provider_logout": True,
                                                     **policy}),
                                        CountingTokens(), timedelta(hours=8))

    def login(self, subject: str, email: str = "", *, groups: tuple[str, ...] | None = None, verified: bool = True,
              issuer: str = ISSUER, name: str | None = None, invite: str = ""):
        start = self.sso.begin("/welcome", invite)
        self.provider.answer = ProviderLogin(issuer, subject, email or f"{subject}@example.com", verified,
                                             name, groups, id_token=f"id-token-of-{subject}")
        return self.sso.finish(start.pending, state=start.pending.state, code="code")

    def roles(self, user_id: int) -> dict[str, OrgRole]:
        return {organisation.name: role for organisation, role in self.directory.organisations_of(user_id)}

    def org(self, name: str) -> int:
        return self.directory.add_organisation(name, WorkflowMode.ORGANIZATION).id

    def tables(self) -> tuple:
        return (len(self.directory._users), dict(self.directory._memberships),  # noqa: SLF001
                dict(self.identities.identities), dict(self.identities.grants), len(self.directory.audit_log),
                len(self.directory._sessions))  # noqa: SLF001


def first_and_bob(server: Server, **groups) -> tuple[int, int]:
    ada = server.login("ada").signed_in.account.user.id
    return ada, server.login("bob", **groups).signed_in.account.user.id


def test_the_first_login_is_server_admin_and_owner_of_the_first_organisation():
    server = Server()
    signed_in = server.login("ada", "Ada@Example.com", name="Ada Lovelace")
    user = signed_in.signed_in.account.user
    assert (user.email, user.display_name, user.is_server_admin, user.password_hash) == (
        "ada@example.com", "Ada Lovelace", True, None)
    assert server.roles(user.id) == {"Acme": OrgRole.OWNER} and signed_in.return_to == "/welcome"
    assert signed_in.signed_in.token == "token-4"  # state, nonce, verifier, then a new session token
    actions = [(e.action, e.organisation_id is None) for e in server.directory.audit_log]
    assert actions == [(AuditAction.OIDC_ACCOUNT_CREATED, True), (AuditAction.MEMBER_JOINED, False)]
    assert server.identities.id_tokens == {"hash:token-4": "id-token-of-ada"}


def test_a_login_is_linked_by_issuer_and_subject_never_by_the_email_it_sends_later():
    server = Server()
    ada = server.login("ada").signed_in.account.user.id
    assert server.login("ada", "renamed@example.com").signed_in.account.user.id == ada
    assert server.directory.user(ada).email == "ada@example.com"
    with pytest.raises(SignInRefused, match="already exists"):  # same email, another provider: not linked
        server.login("ada", "ada@example.com", issuer="https://evil.example.com")


def test_people_are_created_just_in_time_only_when_a_rule_gives_them_an_organisation():
    server = Server(rules=(OrganisationRule("Acme", OrgRole.MEMBER, "staff"),))
    server.login("ada")
    before = server.tables()
    with pytest.raises(SignInRefused, match="not given any organisation"):
        server.login("eve", groups=("contractors",))
    assert server.tables() == before
    bob = server.login("bob", groups=("staff",)).signed_in.account.user
    assert server.roles(bob.id) == {"Acme": OrgRole.MEMBER} and not bob.is_server_admin
    created = [e for e in server.directory.audit_log if e.target == f"user:{bob.id}"]
    assert [e.action for e in created] == [AuditAction.OIDC_ACCOUNT_CREATED, AuditAction.MEMBER_JOINED]
    assert created[1].details["via"] == "single sign-on group mapping"


def test_group_roles_are_added_kept_without_the_claim_and_taken_back_when_the_group_is_left():
    server = Server()
    ada, bob = first_and_bob(server, groups=())
    server.org("Beta")
    assert server.roles(bob) == {"Acme": OrgRole.MEMBER}
    server.login("bob", groups=("tow-admins", "beta"))
    assert server.roles(bob) == {"Acme": OrgRole.ADMIN, "Beta": OrgRole.MEMBER}
    server.login("bob", groups=None)  # the claim is absent: nothing is taken back
    assert server.roles(bob) == {"Acme": OrgRole.ADMIN, "Beta": OrgRole.MEMBER}
    server.login("bob", groups=("beta",))  # left tow-admins: back to the rule for everyone
    assert server.roles(bob) == {"Acme": OrgRole.MEMBER, "Beta": OrgRole.MEMBER}
    server.login("bob", groups=())  # left beta: the membership the rule created goes
    assert server.roles(bob) == {"Acme": OrgRole.MEMBER}
    changes = [(e.action, e.details.get("role"), e.details.get("from")) for e in server.directory.audit_log
               if e.target == f"user:{bob}" and e.organisation_id is not None]
    assert changes == [(AuditAction.MEMBER_JOINED, "member", None), (AuditAction.MEMBER_ROLE_CHANGED, "admin", "member"),
                       (AuditAction.MEMBER_JOINED, "member", None), (AuditAction.MEMBER_ROLE_CHANGED, "member", "admin"),
                       (AuditAction.MEMBER_REMOVED, "member", None)]
    assert all(e.actor_id == bob for e in server.directory.audit_log if e.target == f"user:{bob}")


def test_roles_granted_by_hand_are_never_lowered_or_taken_by_the_mapping():
    server = Server()
    ada, bob = first_and_bob(server, groups=())
    beta = server.org("Beta")
    server.directory.set_membership(beta, bob, OrgRole.ADMIN)  # by hand, before any rule gave Beta
    server.login("bob", groups=("beta", "tow-admins"))  # beta's rule gives member: admin kept
    assert server.roles(bob) == {"Acme": OrgRole.ADMIN, "Beta": OrgRole.ADMIN}
    server.login("bob", groups=())
    assert server.roles(bob) == {"Acme": OrgRole.MEMBER, "Beta": OrgRole.ADMIN}  # only the mapping's came back
    server.login("bob", groups=("tow-admins",))
    acme = server.identities.organisations_named(["Acme"])["Acme"]
    server.directory.set_membership(acme, bob, OrgRole.OWNER)  # promoted by hand since: no longer the rule's
    server.login("bob", groups=())
    assert server.roles(bob) == {"Acme": OrgRole.OWNER, "Beta": OrgRole.ADMIN}


def test_a_role_the_mapping_raised_goes_back_to_the_one_it_replaced():
    server = Server()
    ada, bob = first_and_bob(server, groups=())
    beta = server.org("Beta")
    server.directory.set_membership(beta, bob, OrgRole.MEMBER)  # by hand
    server.org("Gamma")
    gamma = server.identities.organisations_named(["Gamma"])["Gamma"]
    server.directory.set_membership(gamma, ada, OrgRole.OWNER)
    server.directory.set_membership(gamma, bob, OrgRole.ADMIN)  # by hand
    server.login("bob", groups=("gamma",))
    assert server.roles(bob)["Gamma"] is OrgRole.OWNER
    server.login("bob", groups=())
    assert server.roles(bob) == {"Acme": OrgRole.MEMBER, "Beta": OrgRole.MEMBER, "Gamma": OrgRole.ADMIN}


def test_the_mapping_never_takes_away_an_organisations_last_owner():
    server = Server()
    ada, bob = first_and_bob(server, groups=())
    gamma = server.org("Gamma")
    server.login("bob", groups=("gamma",))  # the rule makes bob Gamma's (only) owner
    assert server.roles(bob)["Gamma"] is OrgRole.OWNER and server.directory.count_owners(gamma) == 1
    server.login("bob", groups=())
    assert server.roles(bob)["Gamma"] is OrgRole.OWNER
    server.directory.set_membership(gamma, ada, OrgRole.OWNER)
    server.login("bob", groups=())  # another owner now: the rule's membership goes
    assert "Gamma" not in server.roles(bob)


def test_an_existing_account_is_linked_by_email_only_when_verified_and_allowed():
    for policy, verified, linked in (({}, True, False), ({"link_existing_by_email": True}, False, False),
                                     ({"link_existing_by_email": True}, True, True)):
        server = Server(**policy)
        ada = server.directory.add_user("ada@example.com", "Ada", "password-hash", server_admin=True).id
        server.directory.set_membership(server.org("Acme"), ada, OrgRole.OWNER)
        before = server.tables()
        if not linked:
            with pytest.raises(SignInRefused, match="already exists here and is not linked"):
                server.login("mallory", "ADA@example.com", verified=verified)
            assert server.tables() == before
            continue
        assert server.login("ada-sso", "ada@example.com").signed_in.account.user.id == ada
        assert server.identities.linked_user(ISSUER, "ada-sso") == ada
        link = next(e for e in server.directory.audit_log if e.action is AuditAction.OIDC_IDENTITY_LINKED)
        assert link.details == {"issuer": ISSUER, "subject": "ada-sso", "via": "verified email"}


def test_unverified_emails_missing_emails_and_deactivated_accounts_are_refused_and_change_nothing():
    server = Server()
    before = server.tables()
    with pytest.raises(SignInRefused, match="not verified"):
        server.login("ada", verified=False)
    assert server.tables() == before
    ada, bob = first_and_bob(server)
    server.directory.set_active(bob, False)
    before = server.tables()
    with pytest.raises(SignInRefused, match="deactivated"):
        server.login("bob")
    start = server.sso.begin("/")
    server.provider.answer = ProviderLogin(ISSUER, "carol", None, True, None, None, "t")
    with pytest.raises(SignInRefused, match="no email address"):
        server.sso.finish(start.pending, state=start.pending.state, code="code")
    assert server.tables() == before


def test_an_invite_link_lets_someone_no_rule_maps_be_created_and_they_accept_it_on_its_page():
    server = Server(rules=(OrganisationRule("Acme", OrgRole.MEMBER, "staff"),))
    ada = server.login("ada").signed_in.account.user.id
    beta = server.org("Beta")
    server.directory.set_membership(beta, ada, OrgRole.OWNER)

    def invite(token: str, email: str | None = None) -> None:
        accounts.create_invite(server.directory, server.directory.principal(ada), org_id=beta, token_hash=f"hash:{token}",
                               role=OrgRole.ADMIN, email=email, now=NOW)

    invite("for-carol", email="carol@example.com")
    invite("revoked")
    server.directory.mark_invite_revoked(server.directory.invite_by_token_hash("hash:revoked").id, NOW)
    before = server.tables()
    for token, refusal in (("no-such-invite", NotFound), ("for-carol", SignInRefused), ("revoked", Conflict)):
        with pytest.raises(refusal):
            server.login("eve", groups=("contractors",), invite=token)
        assert server.tables() == before
    carol = server.login("carol", groups=(), invite="for-carol")
    assert carol.return_to == "/invite/for-carol"  # where she accepts it, as anyone signed in does
    assert server.roles(carol.signed_in.account.user.id) == {}  # the login itself joins nothing
    invite("for-anyone")  # someone with an account coming through an invite link: signed in, joins nothing
    bob = server.login("bob", groups=("staff",)).signed_in.account.user.id
    assert server.login("bob", groups=("staff",), invite="for-anyone").return_to == "/invite/for-anyone"
    assert server.roles(bob) == {"Acme": OrgRole.MEMBER}
    frank = server.login("frank", groups=("staff",), invite="no-such-invite")  # a rule lets him in anyway
    assert server.roles(frank.signed_in.account.user.id) == {"Acme": OrgRole.MEMBER}
    assert frank.return_to == "/invite/no-such-invite"  # whose page says why it cannot be used


def test_the_login_in_flight_is_checked_before_the_provider_is_asked():
    server = Server()
    start = server.sso.begin("/welcome")
    assert "state=token-1" in start.url and start.pending.expires_at == NOW + timedelta(minutes=10)
    other = server.sso.begin("/")
    for pending, state, says in ((None, start.pending.state, "not started in this browser"),
                                 (other.pending, start.pending.state, "does not belong"),
                                 (start.pending, start.pending.state + "x", "does not belong"),
                                 (start.pending, "", "does not belong")):
        with pytest.raises(SignInRefused, match=says):
            server.sso.finish(pending, state=state, code="code")
    with pytest.raises(SignInRefused, match="did not sign you in: access_denied"):
        server.sso.finish(start.pending, state=start.pending.state, code="", error="access_denied")
    with pytest.raises(SignInRefused, match="no authorization code"):
        server.sso.finish(start.pending, state=start.pending.state, code="")
    server.now = NOW + timedelta(minutes=10)
    with pytest.raises(SignInRefused, match="longer than 10 minutes"):
        server.sso.finish(start.pending, state=start.pending.state, code="code")
    assert server.provider.redeemed == [] and server.tables()[0] == 0


def test_sign_out_ends_the_session_and_names_the_providers_logout_for_single_sign_on_sessions():
    server = Server()
    token = server.login("ada").signed_in.token
    credential = SessionCredential(f"hash:{token}")
    assert server.sso.sign_out(credential) == "https://login.example.com/logout?id_token_hint=id-token-of-ada"
    assert server.directory.live_session(f"hash:{token}", NOW) is None
    assert server.sso.sign_out(None) is None
    for change, value in (("logout_down", True), ("has_logout", False)):
        setattr(server.provider, change, value)
        token = server.login("ada").signed_in.token
        assert server.sso.sign_out(SessionCredential(f"hash:{token}")) is None  # signed out here all the same
        assert server.directory.live_session(f"hash:{token}", NOW) is None
    quiet = Server(provider_logout=False)
    token = quiet.login("ada").signed_in.token
    assert quiet.sso.sign_out(SessionCredential(f"hash:{token}")) is None


def test_without_single_sign_on_configured_its_steps_are_not_found():
    server = Server()
    off = SingleSignOnUseCases(server.sso.transactions, None, None, CountingTokens(), timedelta(hours=1))
    with pytest.raises(NotFound):
        off.begin("/")
    with pytest.raises(NotFound):
        off.finish(None, state="", code="")


# --- the provider's access tokens (the MCP server with mcp.oidc_access_tokens) -------------------------------

ACCESS = {"issuer": ISSUER, "expires_at": NOW + timedelta(minutes=5)}


def access_server() -> Server:
    return Server(access_tokens=True, access_audience="tow-mcp", write_scope="tow:write")


def reads_as(server: Server, credential: ProviderTokenCredential, *, writes: bool = False) -> int:
    with server.sso.transactions.acting_as(replace(credential, writes=writes)) as acting:
        return acting.principal.user_id


def test_a_provider_access_token_acts_as_the_linked_account_and_writes_only_with_the_write_scope():
    server = access_server()
    ada, bob = first_and_bob(server)
    server.provider.access = {"ada-read": ProviderAccess(subject="ada", scopes=frozenset({"openid", "email"}), **ACCESS),
                              "bob-write": ProviderAccess(subject="bob", scopes=frozenset({"tow:write"}), **ACCESS)}
    reader, writer = server.sso.provider_access("ada-read"), server.sso.provider_access("bob-write")
    assert server.provider.audiences == ["tow-mcp", "tow-mcp"]
    assert (reader.subject, reader.may_write, reader.writes) == ("ada", False, False)
    assert reads_as(server, reader) == ada and reads_as(server, writer, writes=True) == bob
    with pytest.raises(TokenReadOnly, match="write scope"):
        reads_as(server, reader, writes=True)
    with server.sso.transactions.acting_as(writer) as acting:  # no personal token acts ...
        assert acting.token is None and acting.by_provider_token
    tokens = InMemoryAccessTokens()  # ... and it cannot mint one (a read-only token minting a writer's)
    minting = TokenUseCases(fake_transactions(lambda: server.now, directory=server.directory,
                                              oidc_identities=server.identities, tokens=tokens),
                            PersonalAccessTokenSecrets(), TokenPolicy())
    with pytest.raises(AccessDenied, match="cannot create tokens"):
        minting.create(replace(writer, writes=True), NewToken("escalate", 30, TokenAccess.READ_WRITE, None))
    assert tokens.tokens_of([bob]) == []


def test_a_provider_access_token_never_finds_an_account_by_email_and_never_creates_one():
    server = access_server()
    first_and_bob(server)
    server.provider.access = {
        "stranger": ProviderAccess(subject="carol", scopes=frozenset(), **ACCESS),
        "bob-elsewhere": ProviderAccess(subject="bob", scopes=frozenset(), issuer="https://evil.example.com",
                                        expires_at=NOW + timedelta(minutes=5))}
    before = server.tables()
    for token in ("stranger", "bob-elsewhere", "forged"):
        with pytest.raises(InvalidToken):
            server.sso.provider_access(token)
    with pytest.raises(InvalidToken, match="not linked"):
        server.sso.provider_access("stranger")
    assert server.tables() == before


def test_a_deactivated_account_an_unlinked_identity_and_an_expired_token_stop_at_the_next_call():
    server = access_server()
    ada, bob = first_and_bob(server)
    server.provider.access = {"bob": ProviderAccess(subject="bob", scopes=frozenset(), **ACCESS),
                              "ada": ProviderAccess(subject="ada", scopes=frozenset(), **ACCESS)}
    bobs, adas = server.sso.provider_access("bob"), server.sso.provider_access("ada")
    server.directory.set_active(bob, False)
    with pytest.raises(InvalidToken, match="deactivated"):
        reads_as(server, bobs)
    with pytest.raises(InvalidToken, match="deactivated"):
        server.sso.provider_access("bob")
    del server.identities.identities[(ISSUER, "ada")]
    with pytest.raises(InvalidToken, match="not linked"):
        reads_as(server, adas)
    server.identities.link(ISSUER, "ada", ada, server.now)
    assert reads_as(server, adas) == ada
    server.now = NOW + timedelta(minutes=5)
    with pytest.raises(InvalidToken, match="expired"):
        reads_as(server, adas)


def test_without_provider_access_tokens_configured_every_such_token_is_refused():
    server = Server()  # single sign-on, but mcp.oidc_access_tokens off
    first_and_bob(server)
    server.provider.access = {"ada": ProviderAccess(subject="ada", scopes=frozenset({"tow:write"}), **ACCESS)}
    with pytest.raises(InvalidToken, match="oidc_access_tokens"):
        server.sso.provider_access("ada")
    assert server.provider.audiences == []
