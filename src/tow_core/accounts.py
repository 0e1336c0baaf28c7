"""Builtin accounts: first-run registration, invites, sign-in with throttling, sessions (SPEC §1, §3).

Rules:
- The first account on a fresh server becomes server admin and owner of the first organisation it
  names. After that, joining needs a valid invite.
- Sign-in errors are generic ("email or password is wrong") whether or not the email exists, and an
  unknown email costs one password verification too.
- Sign-in throttling a stranger cannot turn into a lockout (OWASP Authentication Cheat Sheet, "Account
  Lockout"; issue 11): within 15 minutes, at most 5 failures for one account from one client address
  and 20 from one address across accounts; and 100 for one account from all addresses together, except
  from an address that signed in to that account successfully within the last 30 days. So a stranger's
  failures throttle the stranger's own address, never the owner's usual one. A throttled attempt is
  refused (``Throttled``, with the seconds until it would be allowed) before the password is checked;
  unknown emails count and are throttled exactly like accounts. A success forgets that (account,
  address) pair's failures only. An IPv6 client counts by its /64, see ``client_network``.
- Sessions are rows (revocable at once: logout, sign out everywhere, deactivation) identified by the
  SHA-256 of the random token in the signed cookie. Sign out everywhere revokes the account's personal
  access tokens too (``tow_core.access_tokens``). Signing in always creates a new session, so a
  session id planted before login is never promoted (session fixation).
- Invites store only the token's hash; expired, revoked, used and email-mismatched invites are
  refused with distinct errors.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from tow_core.access import OrgRole, Principal, can_administer_org, is_org_owner
from tow_core.access_tokens import AccessTokens
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotAuthenticated, NotFound, Throttled, TowError
from tow_core.identity import (
    Accounts,
    AuditTrail,
    Directory,
    Invitations,
    Invite,
    InviteState,
    Memberships,
    Organisation,
    Session,
    Sessions,
    SignInLog,
    User,
    WorkflowMode,
    clean_name,
    normalise_email,
)
from tow_core.passwords import PasswordHasher, check_password_policy

GENERIC_LOGIN_ERROR = "email or password is wrong"


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """Sign-in limits: failures counted within ``window`` (see the module's rules)."""

    window: timedelta = timedelta(minutes=15)
    max_failures_per_account_and_ip: int = 5
    max_failures_per_ip: int = 20
    max_failures_per_account: int = 100  # from addresses the account has not recently signed in from
    known_address_for: timedelta = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class InvitePolicy:
    default_lifetime: timedelta = timedelta(days=7)
    max_lifetime: timedelta = timedelta(days=30)


def register_first_account(
    directory: Directory, hasher: PasswordHasher, *, email: str, display_name: str, password: str,
    organisation_name: str,
) -> tuple[User, Organisation]:
    """Create the first user (server admin) and the first organisation (owned by them)."""
    email = normalise_email(email)
    display_name = clean_name(display_name, "display_name")
    organisation_name = clean_name(organisation_name, "organisation_name")
    check_password_policy(password)
    directory.lock_registration()  # two simultaneous first registrations: only one wins
    if directory.count_users() > 0:
        raise AccessDenied("this server already has accounts: ask an organisation admin for an invite")
    user = directory.add_user(email, display_name, hasher.hash(password), server_admin=True)
    organisation = directory.add_organisation(organisation_name, WorkflowMode.ORGANIZATION)
    directory.set_membership(organisation.id, user.id, OrgRole.OWNER)
    directory.audit(AuditEntry(organisation.id, user.id, AuditAction.MEMBER_JOINED, f"user:{user.id}",
                               {"role": OrgRole.OWNER.value, "via": "first account"}))
    return user, organisation


def invite_refusal(invite: Invite | None, now: datetime) -> TowError | None:
    """Why an invite cannot be taken up now (not found, expired, revoked, used), or None while it can; the
    invite page says so before anyone fills in the form."""
    if invite is None:
        return NotFound("invite not found: check the link, or ask for a new invite")
    state = invite.state(now)
    if state is InviteState.EXPIRED:
        return Conflict("this invite has expired: ask an organisation admin for a new one", field="token")
    if state is InviteState.REVOKED:
        return Conflict("this invite was revoked: ask an organisation admin for a new one", field="token")
    if state is InviteState.USED:
        return Conflict("this invite has already been used", field="token")
    return None


def _usable_invite(directory: Invitations, token_hash: str, now: datetime, email: str | None) -> Invite:
    invite = directory.invite_by_token_hash(token_hash, for_update=True)
    if (refused := invite_refusal(invite, now)) is not None:
        raise refused
    assert invite is not None
    if invite.email is not None and invite.email != email:
        raise AccessDenied("this invite is for a different email address")
    return invite


def register_with_invite(
    directory: Directory, hasher: PasswordHasher, *, token_hash: str, email: str, display_name: str,
    password: str, now: datetime,
) -> tuple[User, Invite]:
    """A new person registers through an invite and joins its organisation with its role."""
    email = normalise_email(email)
    display_name = clean_name(display_name, "display_name")
    check_password_policy(password)
    invite = _usable_invite(directory, token_hash, now, email)
    if directory.user_by_email(email) is not None:
        raise Conflict("an account with this email exists: sign in, then accept the invite", field="email")
    user = directory.add_user(email, display_name, hasher.hash(password), server_admin=False)
    directory.set_membership(invite.organisation_id, user.id, invite.role)
    directory.mark_invite_used(invite.id, user.id, now)
    _joined(directory, invite, user.id, "invite (new account)")
    return user, invite


def accept_invite(directory: Directory, principal: Principal, *, token_hash: str, now: datetime) -> Invite:
    """A signed-in user joins the invite's organisation (an existing membership is never downgraded)."""
    user = directory.user(principal.user_id)
    assert user is not None
    invite = _usable_invite(directory, token_hash, now, user.email)
    current = principal.org_roles.get(invite.organisation_id)
    if current is None or _rank(invite.role) > _rank(current):
        directory.set_membership(invite.organisation_id, user.id, invite.role)
        _joined(directory, invite, user.id, "invite (existing account)")
    directory.mark_invite_used(invite.id, user.id, now)
    return invite


def _joined(directory: AuditTrail, invite: Invite, user_id: int, via: str) -> None:
    directory.audit(AuditEntry(invite.organisation_id, user_id, AuditAction.MEMBER_JOINED, f"user:{user_id}",
                               {"role": invite.role.value, "via": via, "invite_id": invite.id}))


def _rank(role: OrgRole) -> int:
    return {OrgRole.MEMBER: 1, OrgRole.ADMIN: 2, OrgRole.OWNER: 3}[role]


def create_invite(
    directory: Directory, principal: Principal, *, org_id: int, token_hash: str, role: OrgRole,
    email: str | None, now: datetime, lifetime: timedelta | None = None, policy: InvitePolicy = InvitePolicy(),
    emailed: bool = False,
) -> Invite:
    """Owners/admins invite; only owners may invite owners. ``emailed``: its link is emailed to ``email``
    (the audit entry says so)."""
    _require_org_admin(directory, principal, org_id)
    if role is OrgRole.OWNER and not is_org_owner(principal, org_id):
        raise AccessDenied("only an owner may invite another owner")
    lifetime = lifetime or policy.default_lifetime
    if lifetime <= timedelta(0) or lifetime > policy.max_lifetime:
        raise InvalidInput(f"expiry must be within {policy.max_lifetime.days} days", field="expires_in_hours")
    bound_email = normalise_email(email) if email else None
    invite = directory.add_invite(org_id, token_hash, role, bound_email, principal.user_id, now + lifetime)
    details: dict[str, object] = {"role": role.value, "email": bound_email}
    if emailed:
        details["emailed"] = True
    directory.audit(AuditEntry(org_id, principal.user_id, AuditAction.INVITE_CREATED, f"invite:{invite.id}",
                               details))
    return invite


def revoke_invite(
    directory: Directory, principal: Principal, *, org_id: int, invite_id: int, now: datetime
) -> None:
    _require_org_admin(directory, principal, org_id)
    invite = directory.invite(invite_id)
    if invite is None or invite.organisation_id != org_id:
        raise NotFound("invite not found")
    if invite.state(now) is not InviteState.PENDING:
        raise Conflict(f"invite is already {invite.state(now).value}")
    directory.mark_invite_revoked(invite_id, now)
    directory.audit(AuditEntry(org_id, principal.user_id, AuditAction.INVITE_REVOKED, f"invite:{invite_id}", {}))


def list_invites(directory: Directory, principal: Principal, *, org_id: int) -> list[Invite]:
    _require_org_admin(directory, principal, org_id)
    return list(directory.invites(org_id))


def _require_org_admin(directory: Directory, principal: Principal, org_id: int) -> None:
    if principal.org_roles.get(org_id) is None or not principal.is_active:
        raise NotFound("organisation not found")
    if not can_administer_org(principal, org_id):
        raise AccessDenied("only organisation owners and admins may do this")


def client_network(client_ip: str) -> str:
    """The address throttling counts for a client: an IPv4 address as is (an IPv4-mapped IPv6 one as
    its IPv4), an IPv6 address as its /64 — one network (RFC 4291 §2.5.1), inside which privacy
    addresses change daily (RFC 8981) and an attacker has 2^64 addresses to rotate through; anything
    unparseable (no client) as given."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def check_throttle(log: SignInLog, *, email: str, client_ip: str, user_id: int | None, now: datetime,
                   policy: ThrottlePolicy = ThrottlePolicy()) -> None:
    """Raise Throttled when a limit that applies is reached, with the seconds until none is.
    ``email`` is normalised, ``client_ip`` a ``client_network``; ``user_id`` is None for unknown emails."""
    since = now - policy.window

    def wait(limit: int, **subject: str) -> int:
        return _wait(log.recent_failures(since, limit=limit, **subject), limit, policy, now)

    waits = [wait(policy.max_failures_per_account_and_ip, email=email, client_ip=client_ip),
             wait(policy.max_failures_per_ip, client_ip=client_ip)]
    account_wait = wait(policy.max_failures_per_account, email=email)
    if account_wait and not _known_address(log, user_id, client_ip, now, policy):
        waits.append(account_wait)
    if max(waits):
        raise Throttled("too many failed sign-ins: wait before trying again", retry_after_seconds=max(waits))


def _wait(recent: Sequence[datetime], limit: int, policy: ThrottlePolicy, now: datetime) -> int:
    """0 below the limit; else the seconds until the oldest counted failure leaves the window."""
    if len(recent) < limit:
        return 0
    oldest_counted = sorted(recent, reverse=True)[limit - 1]
    return max(1, int((oldest_counted + policy.window - now).total_seconds()) + 1)


def _known_address(log: SignInLog, user_id: int | None, client_ip: str, now: datetime,
                   policy: ThrottlePolicy) -> bool:
    return user_id is not None and log.signed_in_from(user_id, client_ip, now - policy.known_address_for)


def authenticate(
    directory: Accounts, log: SignInLog, hasher: PasswordHasher, *, email: str, password: str,
    client_ip: str, now: datetime, policy: ThrottlePolicy = ThrottlePolicy(),
) -> User:
    """Check email + password; generic error; throttled as the module's rules say."""
    subject, network = email.strip().lower(), client_network(client_ip)
    user = directory.user_by_email(subject)
    check_throttle(log, email=subject, client_ip=network, user_id=user.id if user else None, now=now,
                   policy=policy)
    if user is None or user.password_hash is None:
        hasher.dummy_verify(password)
        ok = False
    else:
        ok = hasher.verify(user.password_hash, password) and user.is_active
    if not ok or user is None:
        log.record_failure(subject, network, now, forget_before=now - policy.window)
        raise NotAuthenticated(GENERIC_LOGIN_ERROR)
    if user.password_hash is not None and hasher.needs_rehash(user.password_hash):
        directory.set_password_hash(user.id, hasher.hash(password))
    log.clear_failures(subject, network)
    log.record_success(user.id, network, now, forget_before=now - policy.known_address_for)
    return user


def start_session(
    directory: Directory, *, user: User, token_hash: str, now: datetime, lifetime: timedelta,
) -> Session:
    """A new session row for a fresh token; the active organisation is the user's first."""
    organisations = directory.organisations_of(user.id)
    active = organisations[0][0].id if organisations else None
    session = Session(token_hash, user.id, active, now + lifetime)
    directory.add_session(session)
    return session


def resolve_session(directory: Directory, *, token_hash: str, now: datetime) -> tuple[Session, Principal]:
    """The live session and a freshly loaded principal, the unit of work acting for its user, or
    NotAuthenticated (revoked, expired, deactivated user). Loaded on every request: revocation is immediate."""
    found = directory.acting_session(token_hash, now)
    if found is None or not found[1].is_active:
        raise NotAuthenticated("sign in first: your session is missing, expired or revoked")
    return found


def switch_organisation(directory: Sessions, principal: Principal, *, token_hash: str, org_id: int) -> None:
    if org_id not in principal.org_roles:
        raise NotFound("organisation not found")
    directory.set_session_organisation(token_hash, org_id)


def sign_out_everywhere(directory: Sessions, tokens: AccessTokens, principal: Principal, *, now: datetime) -> int:
    """Revokes every session and every personal access token of the user; how many sessions there were."""
    tokens.revoke_user_tokens(principal.user_id, now)
    return directory.revoke_user_sessions(principal.user_id, now)


def needs_first_account(directory: Accounts) -> bool:
    """True on a fresh server, until the first account exists (then joining needs an invite)."""
    return directory.count_users() == 0


def sign_out(directory: Sessions, *, token_hash: str, now: datetime) -> None:
    """Revoke this browser's session server-side: its cookie stops working even if it is kept."""
    directory.revoke_session(token_hash, now)


def current_user(directory: Accounts, principal: Principal) -> User:
    """The signed-in person's own account, without its password hash."""
    user = directory.user(principal.user_id)
    assert user is not None  # resolve_session only returns principals of existing users
    return replace(user, password_hash=None)


def own_organisations(directory: Memberships, principal: Principal) -> list[tuple[Organisation, OrgRole]]:
    """The organisations the signed-in person belongs to, with their role in each."""
    return list(directory.organisations_of(principal.user_id))


def account_overview(directory: Directory, user_id: int) -> tuple[User, list[tuple[Organisation, OrgRole]]]:
    """An account (without its password hash) and its organisations with roles: what "me" shows."""
    user = directory.user(user_id)
    assert user is not None  # called for the signed-in or just-registered user only
    return replace(user, password_hash=None), list(directory.organisations_of(user_id))


@dataclass(frozen=True, slots=True)
class AccountOverview:
    """What "me" shows: the account (without its password hash), its organisations with roles, and the
    active one."""

    user: User
    memberships: list[tuple[Organisation, OrgRole]]
    active_organisation_id: int | None


def overview(directory: Directory, user_id: int, active_organisation_id: int | None) -> AccountOverview:
    """``user_id``'s account overview; an organisation they are not (or no longer) a member of is never the
    active one: their first organisation is, or none."""
    user, memberships = account_overview(directory, user_id)
    member_of = [organisation.id for organisation, _ in memberships]
    if active_organisation_id not in member_of:
        active_organisation_id = member_of[0] if member_of else None
    return AccountOverview(user, memberships, active_organisation_id)
