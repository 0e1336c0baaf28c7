"""Single sign-on at the browser's front door (rules in ``tow_core.oidc``): start a login at the provider,
finish it when the provider sends the browser back, and sign out (locally, then at the provider); and, for the MCP
server, the provider's access tokens as credentials (``provider_access``).

The login in flight (state, nonce, PKCE verifier, where to go afterwards) lives in the browser's signed,
short-lived cookie, not on the server, so a callback works whichever process answers it. The callback is
accepted only with that cookie and a matching ``state`` (a login started in another browser, or a forged
answer, is refused). The provider is called outside any transaction: a slow provider holds no database
connection.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from tow_core import accounts, oidc
from tow_core.errors import DependencyUnavailable, InvalidToken, NotFound
from tow_core.oidc import IdentityProvider, PendingLogin, SignInRefused, SsoPolicy
from tow_core.unit_of_work import ProviderTokenCredential, SessionCredential, Transactions
from tow_core.use_cases.accounts import SessionTokens, SignedInAs

LOGIN_LIFETIME = timedelta(minutes=10)
NOT_CONFIGURED = "single sign-on is not configured on this server (auth.mode is builtin)"


@dataclass(frozen=True)
class LoginStart:
    """Send the browser to ``url``; keep ``pending`` in its cookie."""

    url: str
    pending: PendingLogin


@dataclass(frozen=True)
class SsoSignedIn:
    signed_in: SignedInAs
    return_to: str


@dataclass(frozen=True)
class SingleSignOnUseCases:
    transactions: Transactions
    provider: IdentityProvider | None  # None: auth.mode builtin
    policy: SsoPolicy | None
    tokens: SessionTokens
    session_lifetime: timedelta

    def begin(self, return_to: str, invite: str = "") -> LoginStart:
        """A new login: fresh state, nonce and PKCE verifier, and the provider's URL for them; ``invite`` is the
        token of the invite link it came from (the login then ends on that link's page, to accept it)."""
        provider = self._provider()
        pending = PendingLogin(state=self.tokens.new_token(), nonce=self.tokens.new_token(),
                               code_verifier=self.tokens.new_token(), return_to=return_to,
                               expires_at=self.transactions.clock() + LOGIN_LIFETIME, invite=invite[:200])
        url = provider.authorization_url(state=pending.state, nonce=pending.nonce,
                                         code_verifier=pending.code_verifier)
        return LoginStart(url, pending)

    def finish(self, pending: PendingLogin | None, *, state: str, code: str, error: str = "",
               error_description: str = "") -> SsoSignedIn:
        """The provider's answer for this browser's ``pending`` login: a new session, or ``SignInRefused``."""
        provider, policy = self._provider(), self.policy
        assert policy is not None
        if error:
            detail = f" ({error_description[:200]})" if error_description else ""
            raise SignInRefused(f"the provider did not sign you in: {error[:100]}{detail}")
        if pending is None:
            raise SignInRefused("this sign-in was not started in this browser, or its cookie is missing: start "
                                "again from the sign-in page")
        if self.transactions.clock() >= pending.expires_at:
            raise SignInRefused("this sign-in took longer than 10 minutes: start again from the sign-in page")
        if not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise SignInRefused("the provider's answer does not belong to the sign-in this browser started: "
                                "start again from the sign-in page")
        if not code:
            raise SignInRefused("the provider's answer has no authorization code: start again")
        login = provider.redeem(code=code, code_verifier=pending.code_verifier, nonce=pending.nonce)
        with self.transactions.unattended() as unattended:
            stores = unattended.stores
            invite_hash = self.tokens.token_hash(pending.invite) if pending.invite else None
            user = oidc.sign_in(stores.directory, stores.oidc_identities, policy, login, now=unattended.now,
                                invite_token_hash=invite_hash)
            token = self.tokens.new_token()  # a new session id at every sign-in (session fixation)
            token_hash = self.tokens.token_hash(token)
            accounts.start_session(stores.directory, user=user, token_hash=token_hash, now=unattended.now,
                                   lifetime=self.session_lifetime)
            stores.oidc_identities.remember_id_token(token_hash, login.id_token)
            overview = accounts.overview(stores.directory, user.id, None)
        return_to = f"/invite/{quote(pending.invite, safe='')}" if pending.invite else pending.return_to
        return SsoSignedIn(SignedInAs(token, overview), return_to)  # an invite: its page, to accept it

    def sign_out(self, credential: SessionCredential | None) -> str | None:
        """Revokes this browser's session; the provider's logout URL when the session came from single sign-on
        and the provider has one (and ``provider_logout`` is on), else None."""
        if credential is None:
            return None
        with self.transactions.unattended() as unattended:
            id_token = unattended.stores.oidc_identities.id_token_of(credential.token_hash)
            accounts.sign_out(unattended.stores.directory, token_hash=credential.token_hash, now=unattended.now)
        if self.provider is None or self.policy is None or not self.policy.provider_logout or not id_token:
            return None
        try:
            return self.provider.end_session_url(id_token_hint=id_token)
        except DependencyUnavailable:
            return None  # signed out here all the same; the provider's own session then lasts until it ends

    def provider_access(self, token: str) -> ProviderTokenCredential:
        """The credential a provider's access token (a JWT) is, checked: its signature, issuer, audience and expiry
        by the provider's adapter (outside any transaction: fetching keys holds no connection), then that it
        names an active linked account (``tow_core.oidc.resolve_provider_access``). InvalidToken otherwise, also
        when this server does not take provider access tokens. It asks to read; a writing call asks again with
        ``writes=True``."""
        if self.provider is None or self.policy is None or not self.policy.access_tokens:
            raise InvalidToken("this server takes no single sign-on access tokens (mcp.oidc_access_tokens is off): "
                               "use a personal access token, tow_pat_...")
        access = self.provider.verify_access_token(token, audience=self.policy.access_audience)
        credential = ProviderTokenCredential(access.issuer, access.subject, self.policy.write_scope in access.scopes,
                                             writes=False, expires_at=access.expires_at)
        with self.transactions.acting_as(credential):
            return credential

    def _provider(self) -> IdentityProvider:
        if self.provider is None or self.policy is None:
            raise NotFound(NOT_CONFIGURED)
        return self.provider
