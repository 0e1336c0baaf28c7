"""Personal access tokens at every front door: the profile and settings pages, the JSON API, the MCP server (rules in
``tow_core.access_tokens``). The secret of a new token is drawn here (``TokenSecrets``), returned once and
never stored; the server keeps its SHA-256."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tow_core import access_tokens
from tow_core.access_tokens import AccessToken, MemberToken, NewToken, TokenPolicy
from tow_core.unit_of_work import Acting, Credential, Transactions
from tow_core.use_cases.frame import Framed, frame_of


class TokenSecrets(Protocol):
    """Draws a new token's secret (``tow_pat_`` + 32 random bytes) and the hash the server keeps of it."""

    def new_secret(self) -> str: ...
    def secret_hash(self, secret: str) -> str: ...


@dataclass(frozen=True)
class CreatedToken:
    """A new token and its secret: shown to its owner this once."""

    token: AccessToken
    secret: str


@dataclass(frozen=True)
class TokenUseCases:
    transactions: Transactions
    secrets: TokenSecrets
    policy: TokenPolicy

    def create(self, credential: Credential, new: NewToken) -> CreatedToken:
        """A token for the signed-in account (a session: a token cannot create tokens)."""
        with self.transactions.acting_as(credential) as acting:
            return self._create(acting, new)

    def create_on_page(self, credential: Credential, org_id: int, project_key: str | None, new: NewToken
                       ) -> Framed[CreatedToken]:
        """The profile page's form: the new token and the frame of the page that shows its secret once."""
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            return Framed(frame, self._create(acting, new))

    def _create(self, acting: Acting, new: NewToken) -> CreatedToken:
        access_tokens.refuse_token_minting(acting.token is not None or acting.by_provider_token)
        secret = self.secrets.new_secret()
        token = access_tokens.create_token(
            acting.stores.tokens, acting.principal, new, token_hash=self.secrets.secret_hash(secret),
            prefix=secret[:access_tokens.SHOWN_PREFIX_LENGTH], now=acting.now, policy=self.policy)
        return CreatedToken(token, secret)

    def check(self, credential: Credential) -> None:
        """Whether the credential still signs someone in (InvalidToken / NotAuthenticated otherwise): the MCP
        server's door, before it reads a request (each tool call then resolves the token again)."""
        with self.transactions.acting_as(credential):
            return None

    def mine(self, credential: Credential) -> list[AccessToken]:
        with self.transactions.acting_as(credential) as acting:
            return access_tokens.own_tokens(acting.stores.tokens, acting.principal)

    def revoke(self, credential: Credential, token_id: int) -> None:
        """Revokes one of your own tokens (NotFound for anyone else's)."""
        with self.transactions.acting_as(credential) as acting:
            access_tokens.revoke_own_token(acting.stores.tokens, acting.principal, token_id=token_id, now=acting.now)

    def of_organisation(self, credential: Credential, org_id: int) -> list[MemberToken]:
        """Owners/admins: the tokens of members that reach ``org_id`` (never their secrets)."""
        with self.transactions.acting_as(credential) as acting:
            return access_tokens.organisation_tokens(acting.stores.tokens, acting.stores.directory, acting.principal,
                                                     org_id=org_id)

    def organisation_page(self, credential: Credential, org_id: int, project_key: str | None
                          ) -> Framed[list[MemberToken]]:
        """The settings page of the organisation's members' tokens (owners/admins)."""
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            return Framed(frame, access_tokens.organisation_tokens(acting.stores.tokens, acting.stores.directory,
                                                                   acting.principal, org_id=org_id))

    def revoke_member_token(self, credential: Credential, org_id: int, token_id: int) -> None:
        with self.transactions.acting_as(credential) as acting:
            access_tokens.revoke_member_token(acting.stores.tokens, acting.stores.directory, acting.principal,
                                              org_id=org_id, token_id=token_id, now=acting.now)
