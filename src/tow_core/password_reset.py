"""Password reset for builtin accounts by email (issue 19; OWASP Forgot Password Cheat Sheet).

Rules:
- Asking for a reset always gets the same answer (``NEUTRAL_ANSWER``), whether or not the address belongs to
  an account: the response never tells who has one. Unknown addresses are throttled exactly like known ones.
- Only an active account that signs in with a password gets a link: one with a password, or one with neither
  a password nor a linked single sign-on identity (an account `tow import` made). An account that signs in
  only through single sign-on gets nothing (its password is the provider's business).
- The link's token is random (from the session token source), stored only as its SHA-256 hash, valid for
  ``RESET_LIFETIME``, and single use: setting a password uses every outstanding token of that account.
- Setting the new password checks the password policy, then ends every session of the account, so whoever
  held the old password or a stolen cookie is out on their next request.
- Throttled per address and per client (``ResetThrottle``): within the window, at most a few requests for
  one address and more from one client address (an IPv6 client by its /64), counting requests for unknown
  addresses and failed uses of a link (unknown, used, expired) too.
- A used, expired or unknown link says so when it is opened, before anyone types a password.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from tow_core.accounts import client_network
from tow_core.errors import Conflict, NotFound, Throttled, TowError
from tow_core.identity import User

RESET_LIFETIME = timedelta(minutes=30)
NEUTRAL_ANSWER = ("If an account with that address signs in with a password here, we have emailed it a link to "
                  "choose a new one. The link works once, within 30 minutes.")


class ResetState(StrEnum):
    PENDING = "pending"
    USED = "used"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ResetToken:
    id: int
    user_id: int
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None

    def state(self, now: datetime) -> ResetState:
        if self.used_at is not None:
            return ResetState.USED
        return ResetState.EXPIRED if now >= self.expires_at else ResetState.PENDING


class PasswordResets(Protocol):
    """Reset tokens and the log that throttles resets, on the caller's transaction."""

    def add_token(self, user_id: int, token_hash: str, *, now: datetime, expires_at: datetime) -> ResetToken: ...
    def token_by_hash(self, token_hash: str, *, for_update: bool = False) -> ResetToken | None: ...

    def use_tokens_of(self, user_id: int, now: datetime) -> int:
        """Marks every unused token of the user used; how many."""
        ...

    def record_attempt(self, email: str, client_ip: str, now: datetime, *, forget_before: datetime) -> None:
        """One request for ``email`` (``""`` for a failed use of a link) from ``client_ip``; rows older than
        ``forget_before`` may be deleted."""
        ...

    def recent_attempts(self, since: datetime, *, limit: int, email: str | None = None,
                        client_ip: str | None = None) -> Sequence[datetime]:
        """Up to ``limit`` attempt times since ``since`` for ``email`` and/or ``client_ip``."""
        ...


@dataclass(frozen=True, slots=True)
class ResetThrottle:
    window: timedelta = timedelta(minutes=15)
    max_per_address: int = 3
    max_per_client: int = 10


def check_throttle(resets: PasswordResets, *, email: str | None, client_ip: str, now: datetime,
                   policy: ResetThrottle) -> None:
    """Throttled (with the seconds to wait) once a limit is reached; ``email`` None checks the client only."""
    since = now - policy.window
    limits = [(policy.max_per_client, {"client_ip": client_ip})]
    if email is not None:
        limits.append((policy.max_per_address, {"email": email}))
    wait = max(_wait(resets.recent_attempts(since, limit=limit, **subject), limit, policy, now)
               for limit, subject in limits)
    if wait:
        raise Throttled("too many password reset attempts: wait before trying again", retry_after_seconds=wait)


def _wait(recent: Sequence[datetime], limit: int, policy: ResetThrottle, now: datetime) -> int:
    if len(recent) < limit:
        return 0
    oldest_counted = sorted(recent, reverse=True)[limit - 1]
    return max(1, int((oldest_counted + policy.window - now).total_seconds()) + 1)


def request(resets: PasswordResets, *, email: str, client_ip: str, now: datetime,
            policy: ResetThrottle) -> None:
    """Throttles, then counts one request for ``email`` (normalised) from the client's network."""
    network = client_network(client_ip)
    check_throttle(resets, email=email, client_ip=network, now=now, policy=policy)
    resets.record_attempt(email, network, now, forget_before=now - policy.window)


def may_reset(user: User | None, linked_identities: int) -> bool:
    """Whether an email for ``user`` gets a link (see the module's rules)."""
    return (user is not None and user.is_active
            and (user.password_hash is not None or linked_identities == 0))


def refusal(token: ResetToken | None, now: datetime) -> TowError | None:
    """Why a link cannot set a password now (unknown, used, expired), or None while it can."""
    if token is None:
        return NotFound("this password reset link is not valid: ask for a new one", field="token")
    state = token.state(now)
    if state is ResetState.USED:
        return Conflict("this password reset link was already used: ask for a new one", field="token")
    if state is ResetState.EXPIRED:
        return Conflict("this password reset link has expired (links work for 30 minutes): ask for a new one",
                        field="token")
    return None


def failed_use(resets: PasswordResets, *, client_ip: str, now: datetime, policy: ResetThrottle) -> None:
    """Counts a failed use of a link against the client."""
    resets.record_attempt("", client_network(client_ip), now, forget_before=now - policy.window)
