"""Account helpers for the operator's shell (`tow users ...`, SPEC §12).

The operator at the server's shell is trusted like the first person to register (SPEC §1 "First account"):
the shell is where a server is installed and recovered. Rules:
- ``create-admin`` on a fresh server (no accounts) creates the first server admin, without an
  organisation (server admins create organisations; server admin grants no organisation role). It takes
  the same registration lock as the first web registration, so only one of them can win.
- On a server with accounts it only promotes an existing, active account; it never creates one there
  (people join through invites). The promotion is audited at server level as granted from the shell.
- A password set or reset from the shell signs the account out everywhere: every session and personal access
  token is revoked, so whoever held the old password (or a stolen cookie or token) is out on their next request.
- Listings never carry password hashes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from tow_core.access_tokens import AccessTokens
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import Conflict, NotFound
from tow_core.identity import Accounts, AuditTrail, Directory, User, clean_name, normalise_email
from tow_core.passwords import PasswordHasher, check_password_policy

FROM_SHELL = "tow users create-admin"


@dataclass(frozen=True, slots=True)
class AdminOutcome:
    user: User
    created: bool  # True: the first account of a fresh server; False: an existing account promoted


def create_admin_from_shell(
    directory: Directory, hasher: PasswordHasher, *, email: str, display_name: str | None,
    read_password: Callable[[], str],
) -> AdminOutcome:
    """Create the first server admin on a fresh server, or promote an existing account to server admin.
    ``read_password`` is called only when an account is created."""
    email = normalise_email(email)
    directory.lock_registration()  # a first registration through the web at the same time: one wins
    if directory.count_users() == 0:
        name = clean_name(display_name or email.split("@", 1)[0], "display_name")
        password = read_password()
        check_password_policy(password)
        user = directory.add_user(email, name, hasher.hash(password), server_admin=True)
        _audit_granted(directory, user, created=True)
        return AdminOutcome(replace(user, password_hash=None), created=True)
    user = directory.user_by_email(email)
    if user is None:
        raise NotFound(f"no account with email {email}: on a server with accounts, create-admin only promotes "
                       "an existing account (invite the person first)")
    if not user.is_active:
        raise Conflict(f"{email} is deactivated: a deactivated account cannot become server admin")
    if not user.is_server_admin:
        directory.set_server_admin(user.id, True)
        _audit_granted(directory, user, created=False)
    return AdminOutcome(replace(user, is_server_admin=True, password_hash=None), created=False)


def _audit_granted(directory: AuditTrail, user: User, *, created: bool) -> None:
    directory.audit(AuditEntry(None, None, AuditAction.SERVER_ADMIN_GRANTED, f"user:{user.id}",
                               {"via": FROM_SHELL, "account_created": created}))


def server_admins_for_operator(directory: Accounts) -> list[User]:
    """The active server admins, password hashes stripped."""
    return [replace(u, password_hash=None) for u in directory.server_admins()]


def reset_password_from_shell(
    directory: Directory, tokens: AccessTokens, hasher: PasswordHasher, *, email: str, password: str, now: datetime,
) -> int:
    """Set the account's password and revoke all its sessions and personal access tokens; returns how many
    sessions were revoked."""
    email = normalise_email(email)
    check_password_policy(password)
    user = directory.user_by_email(email)
    if user is None:
        raise NotFound(f"no account with email {email}")
    directory.set_password_hash(user.id, hasher.hash(password))
    tokens.revoke_user_tokens(user.id, now)
    return directory.revoke_user_sessions(user.id, now)
