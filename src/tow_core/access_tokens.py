"""Personal access tokens: machine access to the JSON API and the MCP server as a person (issue 15).

Rules:
- A token acts as its user, never as more: it is resolved to the user's principal loaded fresh for every
  request (revocation, removed grants and deactivation take effect at once), then narrowed
  (``AccessToken.narrow``). A token restricted to one organisation carries only that membership, so every
  other organisation answers 404 as for a non-member, and it carries no server-admin flag (that power spans
  organisations). The one access policy (``tow_core.access``) decides everything else.
- ``read`` tokens never write: a front door marks a credential that asks to write (an unsafe HTTP method, a
  writing MCP tool) and ``resolve_token`` refuses it with ``TokenReadOnly`` before any use case runs.
- The secret is ``tow_pat_`` + 32 random bytes (urlsafe base64) and is shown once; the server keeps its
  SHA-256 only. A fast unsalted hash is right for a high-entropy random secret (nothing to brute-force, unlike
  a password; OWASP Password Storage Cheat Sheet applies to low-entropy secrets) and lets the lookup be one
  indexed equality.
- Expiry: ``expires_in_days`` from 1 to ``TokenPolicy.max_days`` (``auth.token_max_days``), default 90.
- A token may not create tokens (a restricted or read-only token minting an unrestricted one would be an
  escalation): creating one needs a signed-in session.
- Revoked with the account's sessions on password reset and sign out everywhere; a deactivated user's tokens
  stop working (their principal is inactive). Owners/admins list (never the secret) and revoke the tokens of
  their organisation's members that can reach it (unrestricted, or restricted to it); revoking someone
  else's token is audited (``token.revoked``).
- "Last used" is written at most once a minute per token, so a busy client does not write on every request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from tow_core.access import Principal, can_administer_org
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import AccessDenied, InvalidInput, InvalidToken, NotFound, TokenReadOnly
from tow_core.identity import Directory, Member, Session, clean_name

TOKEN_PREFIX = "tow_pat_"  # noqa: S105 (a public marker, not a secret)
SHOWN_PREFIX_LENGTH = len(TOKEN_PREFIX) + 6  # what lists show, so a person can tell their tokens apart
TOUCH_INTERVAL = timedelta(minutes=1)
DEFAULT_DAYS = 90


class TokenAccess(StrEnum):
    READ = "read"
    READ_WRITE = "read_write"


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    default_days: int = DEFAULT_DAYS
    max_days: int = 365

    @classmethod
    def up_to(cls, max_days: int) -> TokenPolicy:
        """The server's policy for a configured maximum: the default is 90 days, or the maximum when lower."""
        return cls(default_days=min(DEFAULT_DAYS, max_days), max_days=max_days)


@dataclass(frozen=True, slots=True)
class AccessToken:
    id: int
    user_id: int
    name: str
    prefix: str  # the secret's first characters, shown in lists
    access: TokenAccess
    organisation_id: int | None  # None: every organisation the user belongs to
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def due_for_touch(self, now: datetime) -> bool:
        return self.last_used_at is None or now - self.last_used_at >= TOUCH_INTERVAL

    def reaches(self, org_id: int) -> bool:
        return self.organisation_id in (None, org_id)

    def narrow(self, principal: Principal) -> Principal:
        """The user's principal as this token may use it (see the module's rules)."""
        if self.organisation_id is None:
            return principal
        roles = {org: role for org, role in principal.org_roles.items() if org == self.organisation_id}
        return replace(principal, org_roles=roles, is_server_admin=False)

    def session(self) -> Session:
        """What use cases that read "the session" see for a token: its organisation (or the user's first) is
        the active one; nothing is stored under this key, so session changes through a token change nothing."""
        return Session(f"token:{self.id}", self.user_id, self.organisation_id, self.expires_at)


@dataclass(frozen=True, slots=True)
class NewToken:
    name: str
    expires_in_days: int | None
    access: TokenAccess
    organisation_id: int | None


@dataclass(frozen=True, slots=True)
class MemberToken:
    """A token as an organisation's owners/admins see it: whose it is, never its secret."""

    token: AccessToken
    owner: Member


class AccessTokens(Protocol):
    """Personal access tokens, by the SHA-256 of their secret (only the hash is stored)."""

    def add_token(self, user_id: int, token_hash: str, new: NewToken, *, prefix: str, now: datetime,
                  expires_at: datetime) -> AccessToken: ...
    def token_by_hash(self, token_hash: str) -> AccessToken | None: ...
    def token(self, token_id: int) -> AccessToken | None: ...

    def tokens_of(self, user_ids: Sequence[int], *, organisation_id: int | None = None) -> Sequence[AccessToken]:
        """Unrevoked tokens of these users, newest first; with ``organisation_id``, only those that reach it
        (unrestricted or restricted to it)."""
        ...

    def revoke_token(self, token_id: int, now: datetime) -> None: ...
    def revoke_user_tokens(self, user_id: int, now: datetime) -> int: ...
    def touch_token(self, token_id: int, now: datetime) -> None: ...


def resolve_token(tokens: AccessTokens, directory: Directory, *, token_hash: str, writes: bool, now: datetime
                  ) -> tuple[AccessToken, Principal]:
    """The live token and its user's narrowed principal; InvalidToken (unknown, expired, revoked, deactivated
    user), TokenReadOnly (a read token asked to write)."""
    token = tokens.token_by_hash(token_hash)
    principal = directory.principal(token.user_id) if token is not None and token.live(now) else None
    if token is None or principal is None or not principal.is_active:
        raise InvalidToken("the access token is unknown, expired or revoked")
    if writes and token.access is TokenAccess.READ:
        raise TokenReadOnly("this access token is read-only: create a read_write token to make changes")
    if token.due_for_touch(now):
        tokens.touch_token(token.id, now)
    return token, token.narrow(principal)


def create_token(tokens: AccessTokens, principal: Principal, new: NewToken, *, token_hash: str, prefix: str,
                 now: datetime, policy: TokenPolicy) -> AccessToken:
    """A new token for ``principal``'s own account (the caller draws the secret and passes its hash)."""
    name = clean_name(new.name, "name", max_length=100)
    days = policy.default_days if new.expires_in_days is None else new.expires_in_days
    if not 1 <= days <= policy.max_days:
        raise InvalidInput(f"expires_in_days must be from 1 to {policy.max_days}", field="expires_in_days")
    if new.organisation_id is not None and new.organisation_id not in principal.org_roles:
        raise NotFound("organisation not found")
    return tokens.add_token(principal.user_id, token_hash, replace(new, name=name, expires_in_days=days),
                            prefix=prefix, now=now, expires_at=now + timedelta(days=days))


def refuse_token_minting(by_token: bool) -> None:
    """A personal or provider access token acting may not create tokens (see the module's rules)."""
    if by_token:
        raise AccessDenied("an access token cannot create tokens: sign in to create one")


def own_tokens(tokens: AccessTokens, principal: Principal) -> list[AccessToken]:
    return list(tokens.tokens_of([principal.user_id]))


def revoke_own_token(tokens: AccessTokens, principal: Principal, *, token_id: int, now: datetime) -> None:
    token = tokens.token(token_id)
    if token is None or token.user_id != principal.user_id or token.revoked_at is not None:
        raise NotFound("token not found")
    tokens.revoke_token(token_id, now)


def organisation_tokens(tokens: AccessTokens, directory: Directory, principal: Principal, *, org_id: int
                        ) -> list[MemberToken]:
    """The tokens of ``org_id``'s members that reach it, for its owners/admins."""
    members = _members_for_admin(directory, principal, org_id)
    return [MemberToken(t, members[t.user_id]) for t in tokens.tokens_of(list(members), organisation_id=org_id)]


def revoke_member_token(tokens: AccessTokens, directory: Directory, principal: Principal, *, org_id: int,
                        token_id: int, now: datetime) -> None:
    """An owner/admin revokes a member's token that reaches their organisation (audited)."""
    members = _members_for_admin(directory, principal, org_id)
    token = tokens.token(token_id)
    if token is None or token.user_id not in members or not token.reaches(org_id) or token.revoked_at is not None:
        raise NotFound("token not found")
    tokens.revoke_token(token_id, now)
    directory.audit(AuditEntry(org_id, principal.user_id, AuditAction.TOKEN_REVOKED, f"token:{token_id}",
                               {"owner": f"user:{token.user_id}", "name": token.name}))


def _members_for_admin(directory: Directory, principal: Principal, org_id: int) -> dict[int, Member]:
    if not principal.is_active or org_id not in principal.org_roles:
        raise NotFound("organisation not found")
    if not can_administer_org(principal, org_id):
        raise AccessDenied("only organisation owners and admins may see members' tokens")
    return {m.user_id: m for m in directory.members(org_id)}
