"""Your own account (SPEC §1, §3): display name, email and password, changed by the signed-in person.

Rules:
- Anyone signed in changes their own display name.
- Changing the email or the password asks for the current password (a borrowed, unlocked browser or a
  stolen session cookie must not be enough to take the account over: OWASP Authentication Cheat Sheet,
  "Require re-authentication for sensitive features"). A wrong current password counts as a failed
  sign-in of that account from that address and is throttled exactly like one (``accounts.check_throttle``),
  so the form cannot be used to guess the password either.
- The new email is normalised and must be nobody else's (Conflict). The new password follows the policy
  (``passwords.check_password_policy``).
- A password change signs out every OTHER session of the account at once (whoever knew the old password
  or holds an old cookie is out on their next request) and keeps the session that made the change.
- An account without a password (single sign-on only) has no password to change or confirm with, and with
  single sign-on (``auth.mode: oidc``) every email comes from the provider: neither changes here.
- Every change is audited at server level (accounts span organisations), naming the old and new value;
  never a password or its hash.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from tow_core.access import Principal
from tow_core.accounts import ThrottlePolicy, check_throttle, client_network
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import AccessDenied, InvalidInput
from tow_core.identity import Accounts, AuditTrail, Directory, SignInLog, User, clean_name, normalise_email
from tow_core.passwords import PasswordHasher, check_password_policy

WRONG_PASSWORD = "your current password is wrong"  # noqa: S105 - a message, not a password
FROM_PROVIDER = "this server signs in through single sign-on: your email comes from the provider"
NO_PASSWORD = ("your account signs in through single sign-on: it has no password here to change or "  # noqa: S105
               "confirm with")  # (a message, not a password)
THROTTLE = ThrottlePolicy()


def _own(directory: Accounts, principal: Principal) -> User:
    user = directory.user(principal.user_id)
    assert user is not None  # the session's principal is an existing user
    return user


def _audit(directory: AuditTrail, principal: Principal, action: AuditAction, **details: object) -> None:
    directory.audit(AuditEntry(None, principal.user_id, action, f"user:{principal.user_id}", details))


def confirm_password(user: User, hasher: PasswordHasher, log: SignInLog, *, password: str, client_ip: str,
                     now: datetime, policy: ThrottlePolicy = THROTTLE) -> None:
    """InvalidInput(field="current_password") unless ``password`` is the account's; throttled like sign-in."""
    if user.password_hash is None:
        raise AccessDenied(NO_PASSWORD)
    network = client_network(client_ip)
    check_throttle(log, email=user.email, client_ip=network, user_id=user.id, now=now, policy=policy)
    if not password or not hasher.verify(user.password_hash, password):
        log.record_failure(user.email, network, now, forget_before=now - policy.window)
        raise InvalidInput(WRONG_PASSWORD, field="current_password")


def change_profile(directory: Directory, hasher: PasswordHasher, log: SignInLog, principal: Principal, *,
                   display_name: str | None, email: str | None, current_password: str, client_ip: str,
                   now: datetime, email_from_provider: bool = False) -> User:
    """A new display name and/or email (None: unchanged); a different email needs the current password."""
    user = _own(directory, principal)
    name = clean_name(display_name, "display_name") if display_name is not None else user.display_name
    new_email = normalise_email(email) if email is not None else user.email
    if new_email != user.email and email_from_provider:
        raise AccessDenied(FROM_PROVIDER)
    if new_email != user.email:
        confirm_password(user, hasher, log, password=current_password, client_ip=client_ip, now=now)
    if (name, new_email) == (user.display_name, user.email):
        return replace(user, password_hash=None)
    directory.set_profile(user.id, email=new_email, display_name=name)
    changes: dict[str, object] = {}
    if name != user.display_name:
        changes.update(old_name=user.display_name, new_name=name)
    if new_email != user.email:
        changes.update(old_email=user.email, new_email=new_email)
    _audit(directory, principal, AuditAction.USER_PROFILE_CHANGED, **changes)
    return replace(user, email=new_email, display_name=name, password_hash=None)


def change_password(directory: Directory, hasher: PasswordHasher, log: SignInLog, principal: Principal, *,
                    current_password: str, new_password: str, keep_token_hash: str | None, client_ip: str,
                    now: datetime) -> int:
    """Sets the new password and revokes every other session of the account; how many were signed out."""
    user = _own(directory, principal)
    confirm_password(user, hasher, log, password=current_password, client_ip=client_ip, now=now)
    try:
        check_password_policy(new_password)
    except InvalidInput as refused:
        raise InvalidInput(refused.message.replace("password", "new password", 1), field="new_password") from None
    directory.set_password_hash(user.id, hasher.hash(new_password))
    signed_out = directory.revoke_user_sessions(user.id, now, keep_token_hash=keep_token_hash)
    _audit(directory, principal, AuditAction.USER_PASSWORD_CHANGED, other_sessions_signed_out=signed_out)
    return signed_out
