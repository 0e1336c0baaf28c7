"""Accounts at every front door: first run, sign-in (throttled), registration and invites, sessions and "me"
(rules in ``tow_core.accounts``).

Signing in creates a new session whose token the use case draws (``SessionTokens``) and hands back, so the
front door can put it in a cookie; the server keeps only its hash. Signing in always creates a new session,
so a session id planted before sign-in is never promoted (session fixation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from tow_core import accounts, profile
from tow_core.access import Principal
from tow_core.accounts import AccountOverview
from tow_core.errors import AccessDenied, NotAuthenticated
from tow_core.identity import SignInLog, User
from tow_core.passwords import PasswordHasher
from tow_core.unit_of_work import Credential, SessionCredential, Transactions, Unattended


class SessionTokens(Protocol):
    """Draws the random token of a new session (or an invite's) and the hash the server keeps of it."""

    def new_token(self) -> str: ...
    def token_hash(self, token: str) -> str: ...


SSO_ONLY = ("this server signs in through single sign-on: use \"Sign in with single sign-on\" (passwords are only "
            "for the break-glass server admin)")


@dataclass(frozen=True)
class SignedInAs:
    """A new session: its token (for the front door's cookie only) and the account it signs in."""

    token: str
    account: AccountOverview


@dataclass(frozen=True)
class Home:
    """Where ``/`` leads: the first-account form on a fresh server, else the signed-in account (None: nobody)."""

    needs_first_account: bool
    account: AccountOverview | None


@dataclass(frozen=True)
class Joined:
    """An invite taken up: the organisation joined and, when it created an account, its new session."""

    organisation_id: int
    signed_in: SignedInAs | None


@dataclass(frozen=True)
class AccountUseCases:
    transactions: Transactions
    sign_in_log: SignInLog  # commits on its own: a refused sign-in still counts
    password_hasher: PasswordHasher
    tokens: SessionTokens
    session_lifetime: timedelta
    # auth.mode oidc: accounts come from the provider; passwords sign in only the break-glass server admin
    single_sign_on: bool = False

    def needs_first_account(self) -> bool:
        with self.transactions.unattended() as unattended:
            return accounts.needs_first_account(unattended.stores.directory)

    def first_account(self, *, email: str, display_name: str, password: str,
                      organisation_name: str) -> SignedInAs:
        """The first account on a fresh server (server admin, owner of the organisation it names), signed in."""
        self._refuse_password_accounts()
        with self.transactions.unattended() as unattended:
            user, _ = accounts.register_first_account(
                unattended.stores.directory, self.password_hasher, email=email, display_name=display_name,
                password=password, organisation_name=organisation_name)
            return self._start_session(unattended, user, None)

    def register(self, *, invite_token: str, email: str, display_name: str, password: str) -> SignedInAs:
        """A new account through an invite, in the invite's organisation, signed in."""
        self._refuse_password_accounts()
        with self.transactions.unattended() as unattended:
            user, invite = self._register_with_invite(unattended, invite_token, email, display_name, password)
            return self._start_session(unattended, user, invite.organisation_id)

    def sign_in(self, *, email: str, password: str, client_ip: str) -> SignedInAs:
        """Email + password, throttled through the sign-in log (``accounts.authenticate``)."""
        with self.transactions.unattended() as unattended:
            user = accounts.authenticate(unattended.stores.directory, self.sign_in_log, self.password_hasher,
                                         email=email, password=password, client_ip=client_ip, now=unattended.now)
            if self.single_sign_on and not user.is_server_admin:
                raise AccessDenied(SSO_ONLY)
            return self._start_session(unattended, user, None)

    def sign_out(self, credential: SessionCredential | None) -> None:
        """Revokes this browser's session, if it has one (a revoked or expired one stays revoked)."""
        if credential is None:
            return
        with self.transactions.unattended() as unattended:
            accounts.sign_out(unattended.stores.directory, token_hash=credential.token_hash, now=unattended.now)

    def sign_out_everywhere(self, credential: Credential) -> int:
        """Revokes every session and access token of the signed-in user; how many sessions there were."""
        with self.transactions.acting_as(credential) as acting:
            return accounts.sign_out_everywhere(acting.stores.directory, acting.stores.tokens, acting.principal,
                                                now=acting.now)

    def me(self, credential: Credential) -> AccountOverview:
        with self.transactions.acting_as(credential) as acting:
            return accounts.overview(acting.stores.directory, acting.principal.user_id,
                                     acting.session.active_organisation_id)

    def current_user(self, credential: Credential) -> User:
        """The signed-in account, without its password hash."""
        with self.transactions.acting_as(credential) as acting:
            return accounts.current_user(acting.stores.directory, acting.principal)

    def change_profile(self, credential: Credential, *, display_name: str | None, email: str | None,
                       current_password: str, client_ip: str) -> AccountOverview:
        """Your display name and/or email (None: unchanged); a new email needs your current password
        (``tow_core.profile``). With single sign-on the provider owns the email."""
        with self.transactions.acting_as(credential) as acting:
            d = acting.stores.directory
            profile.change_profile(d, self.password_hasher, self.sign_in_log, acting.principal,
                                   display_name=display_name, email=email, current_password=current_password,
                                   client_ip=client_ip, now=acting.now, email_from_provider=self.single_sign_on)
            return accounts.overview(d, acting.principal.user_id, acting.session.active_organisation_id)

    def change_password(self, credential: Credential, *, current_password: str, new_password: str,
                        client_ip: str) -> int:
        """A new password; every other session of yours ends at once, this one stays (asked with an API token:
        every session ends). How many ended."""
        keep = credential.token_hash if isinstance(credential, SessionCredential) else None
        with self.transactions.acting_as(credential) as acting:
            return profile.change_password(acting.stores.directory, self.password_hasher, self.sign_in_log,
                                           acting.principal, current_password=current_password,
                                           new_password=new_password, keep_token_hash=keep,
                                           client_ip=client_ip, now=acting.now)

    def switch_organisation(self, credential: Credential, org_id: int) -> AccountOverview:
        """Makes ``org_id`` the session's active organisation: NotFound unless the user is a member (through an
        access token, whose "session" is stored nowhere, that changes nothing)."""
        with self.transactions.acting_as(credential) as acting:
            accounts.switch_organisation(acting.stores.directory, acting.principal,
                                         token_hash=acting.session.token_hash, org_id=org_id)
            return accounts.overview(acting.stores.directory, acting.principal.user_id, org_id)

    def home(self, credential: SessionCredential | None) -> Home:
        """Where a browser starts: NotAuthenticated for a session that is missing, expired or revoked."""
        with self.transactions.unattended() as unattended:
            directory = unattended.stores.directory
            if accounts.needs_first_account(directory):
                return Home(True, None)
            if credential is None:
                return Home(False, None)
            session, principal = accounts.resolve_session(directory, token_hash=credential.token_hash,
                                                          now=unattended.now)
            return Home(False, accounts.overview(directory, principal.user_id, session.active_organisation_id))

    def invited_user(self, credential: SessionCredential | None) -> User | None:
        """Who opens an invite: the signed-in account, or None for nobody (an expired or revoked session too:
        it joins as a new account would)."""
        if credential is None:
            return None  # nothing to look up
        with self.transactions.unattended() as unattended:
            principal = _signed_in_or_none(unattended, credential)
            return accounts.current_user(unattended.stores.directory, principal) if principal else None

    def invite_problem(self, invite_token: str) -> str | None:
        """Why the invite behind a link cannot be taken up (expired, revoked, used, unknown), or None."""
        with self.transactions.unattended() as unattended:
            invite = unattended.stores.directory.invite_by_token_hash(self.tokens.token_hash(invite_token),
                                                                      for_update=False)
            refused = accounts.invite_refusal(invite, unattended.now)
            return refused.message if refused is not None else None

    def join(self, credential: SessionCredential | None, *, invite_token: str, email: str, display_name: str,
             password: str) -> Joined:
        """Takes up an invite: a signed-in user accepts it (``email``, ``display_name`` and ``password`` are not
        used); anyone else (an expired or revoked session too) registers a new account with it, signed in."""
        with self.transactions.unattended() as unattended:
            principal = _signed_in_or_none(unattended, credential)
            if principal is not None:
                invite = accounts.accept_invite(unattended.stores.directory, principal,
                                                token_hash=self.tokens.token_hash(invite_token), now=unattended.now)
                return Joined(invite.organisation_id, None)
            self._refuse_password_accounts()
            user, invite = self._register_with_invite(unattended, invite_token, email, display_name, password)
            return Joined(invite.organisation_id, self._start_session(unattended, user, invite.organisation_id))

    def _refuse_password_accounts(self) -> None:
        if self.single_sign_on:
            raise AccessDenied(SSO_ONLY)

    def _register_with_invite(self, unattended: Unattended, invite_token: str, email: str, display_name: str,
                              password: str):
        return accounts.register_with_invite(
            unattended.stores.directory, self.password_hasher, token_hash=self.tokens.token_hash(invite_token),
            email=email, display_name=display_name, password=password, now=unattended.now)

    def _start_session(self, unattended: Unattended, user: User, active_organisation_id: int | None) -> SignedInAs:
        token = self.tokens.new_token()  # a new id at every sign-in (session fixation)
        accounts.start_session(unattended.stores.directory, user=user, token_hash=self.tokens.token_hash(token),
                               now=unattended.now, lifetime=self.session_lifetime)
        return SignedInAs(token, accounts.overview(unattended.stores.directory, user.id, active_organisation_id))


def _signed_in_or_none(unattended: Unattended, credential: SessionCredential | None) -> Principal | None:
    """The credential's principal, or None when there is none or its session is expired or revoked."""
    if credential is None:
        return None
    try:
        return accounts.resolve_session(unattended.stores.directory, token_hash=credential.token_hash,
                                        now=unattended.now)[1]
    except NotAuthenticated:
        return None
