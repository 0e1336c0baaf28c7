"""Single sign-on through an OpenID Connect provider (SPEC §1, issue 15): who a verified provider login is
here, and which organisation roles the provider's groups give them.

Rules:
- An account is linked to a provider identity by (issuer, subject) only, never by a name or an email the
  provider sends at a later login (emails can be reassigned at the provider).
- A provider identity whose email matches an existing, never linked account is linked to it only when the
  server allows it (``link_existing_by_email``) AND the provider says the email is verified; otherwise the
  sign-in is refused and nothing is created: an attacker with an unverified address at some provider
  cannot take over a password account.
- The first login on a fresh server becomes server admin and owner of the first organisation (SPEC §1).
  After that a new person is created only when some organisation rule maps them into an organisation, or
  they came through a usable invite link (SPEC §1: joining needs an invite), which they then accept on its
  page like anyone signed in (never accepted by the login itself: a link from elsewhere must not make
  anyone join an organisation).
- Organisation rules (``OrganisationRule``) are additive and audited. At each login every matching rule's
  role is granted (the highest per organisation) unless the person already has that role or a higher one
  (a role granted by hand is never lowered). What a rule granted is remembered (``MappedRole``): when the
  groups claim is present and no longer matches, that grant is taken back at the next login (the
  membership removed, or the role it replaced restored). When the claim is absent nothing is taken back.
  A grant someone changed by hand since is no longer the mapping's. The last owner is never removed.
  Every change made at login is written to the audit log, with the person as actor.
- Provider access tokens (the MCP server, when ``SsoPolicy.access_tokens`` is on): a JWT whose signature (from
  the provider's JWKS; never ``alg: none`` or HS*), issuer, audience (``access_audience``) and expiry the
  adapter checked acts as the account linked to its (issuer, subject) — never found by email, never created —
  while that account is active; it writes only when its scopes hold ``write_scope``. Checked again on every
  call (``resolve_provider_access``), so removing the link or deactivating the account counts at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tow_core import accounts
from tow_core.access import OrgRole, Principal
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import AccessDenied, InvalidInput, InvalidToken, TokenReadOnly
from tow_core.identity import Directory, User, WorkflowMode, clean_name, normalise_email

SSO = "single sign-on"


class SignInRefused(AccessDenied):
    """The provider's answer, or the person it names, cannot sign in here; the message says why."""

    code = "sign_in_refused"


@dataclass(frozen=True, slots=True)
class ProviderLogin:
    """What a provider said about the person, from an ID token whose signature, issuer, audience, expiry and
    nonce were checked (``IdentityProvider.redeem``). ``groups`` is None when the claim was absent."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None
    groups: tuple[str, ...] | None
    id_token: str


@dataclass(frozen=True, slots=True)
class ProviderAccess:
    """What a provider's access token (a JWT) says, its signature, issuer, audience and expiry checked
    (``IdentityProvider.verify_access_token``)."""

    issuer: str
    subject: str
    scopes: frozenset[str]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A login this browser started: kept in its signed cookie until the provider sends it back."""

    state: str
    nonce: str
    code_verifier: str
    return_to: str
    expires_at: datetime
    invite: str = ""  # the invite link's token this login takes up ("": none)


class IdentityProvider(Protocol):
    """The OpenID Connect provider (an adapter does the HTTP; it raises ``SignInRefused`` for an answer that
    fails a check and ``DependencyUnavailable`` when the provider cannot be reached)."""

    def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        """Where the browser goes to sign in (authorization code flow, PKCE S256 from ``code_verifier``)."""
        ...

    def redeem(self, *, code: str, code_verifier: str, nonce: str) -> ProviderLogin:
        """Trade the code for tokens and check the ID token (its nonce must be ``nonce``)."""
        ...

    def end_session_url(self, *, id_token_hint: str) -> str | None:
        """The provider's RP-initiated logout URL, or None when it has no ``end_session_endpoint``."""
        ...

    def verify_access_token(self, token: str, *, audience: str) -> ProviderAccess:
        """Check an access token the provider issued as a JWT for ``audience`` (``InvalidToken`` saying which
        check failed; ``DependencyUnavailable`` when its keys cannot be fetched)."""
        ...


@dataclass(frozen=True, slots=True)
class MappedRole:
    """A membership role an organisation rule granted; ``previous_role`` is what it replaced (None: the rule
    created the membership)."""

    role: OrgRole
    previous_role: OrgRole | None


class OidcIdentities(Protocol):
    """Linked provider identities, the roles rules granted, and the ID token of each single sign-on session."""

    def linked_user(self, issuer: str, subject: str) -> int | None: ...
    def link(self, issuer: str, subject: str, user_id: int, now: datetime) -> None: ...
    def record_login(self, issuer: str, subject: str, now: datetime) -> None: ...
    def identities_of(self, user_id: int) -> Sequence[tuple[str, str]]: ...
    def organisations_named(self, names: Sequence[str]) -> Mapping[str, int]:
        """The id of each organisation with one of ``names`` (the oldest, where names repeat)."""
        ...
    def mapped_roles(self, user_id: int) -> Mapping[int, MappedRole]: ...
    def put_mapped_role(self, user_id: int, org_id: int, mapped: MappedRole) -> None: ...
    def forget_mapped_role(self, user_id: int, org_id: int) -> None: ...
    def remember_id_token(self, session_token_hash: str, id_token: str) -> None: ...
    def id_token_of(self, session_token_hash: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class OrganisationRule:
    organisation: str
    role: OrgRole
    when_group: str | None = None

    def matches(self, groups: tuple[str, ...] | None) -> bool:
        return self.when_group is None or (groups is not None and self.when_group in groups)

    def describe(self) -> str:
        return f"{self.organisation}: {self.role.value}" + (f" for group {self.when_group}" if self.when_group
                                                           else " for everyone")


@dataclass(frozen=True, slots=True)
class SsoPolicy:
    rules: tuple[OrganisationRule, ...] = ()
    require_email_verified: bool = True
    link_existing_by_email: bool = False
    first_organisation_name: str = "TOW"
    provider_logout: bool = False
    access_tokens: bool = False  # the MCP server accepts the provider's access tokens (module rules)
    access_audience: str = ""  # the ``aud`` they must name
    write_scope: str = "tow:write"  # the scope that lets one write


_RANK = {OrgRole.MEMBER: 1, OrgRole.ADMIN: 2, OrgRole.OWNER: 3}


def sign_in(directory: Directory, identities: OidcIdentities, policy: SsoPolicy, login: ProviderLogin, *,
            now: datetime, invite_token_hash: str | None = None) -> User:
    """The account ``login`` signs in (linked, linked by verified email, or created), its roles reconciled
    with the rules. ``invite_token_hash``: the invite link the login came from, which lets a person no rule
    gives an organisation be created (it must be usable and, when bound to an email, for theirs); it is not
    taken up here: the person accepts it on its page, so a link from elsewhere cannot make anyone join an
    organisation. Raises ``SignInRefused`` (or the invite's refusal); a refused login changes nothing."""
    if not login.issuer or not login.subject:
        raise SignInRefused("the ID token names no issuer or subject")
    user = _linked(directory, identities, login, now)
    if user is None:
        directory.lock_registration()  # two first logins at once: one links or creates, the other finds it
        user = _linked(directory, identities, login, now) or _link_or_create(
            directory, identities, policy, login, now, invite_token_hash=invite_token_hash)
    reconcile_roles(directory, identities, user_id=user.id, rules=policy.rules, groups=login.groups)
    return user


def resolve_provider_access(directory: Directory, identities: OidcIdentities, *, issuer: str, subject: str,
                            may_write: bool, writes: bool, expires_at: datetime, now: datetime) -> Principal:
    """The principal of the account a checked provider access token names (module rules): InvalidToken when it
    has expired, names no linked account or a deactivated one; TokenReadOnly when it asks to write without
    the write scope."""
    if now >= expires_at:
        raise InvalidToken("the access token has expired: get a new one from your provider")
    user_id = identities.linked_user(issuer, subject)
    principal = directory.principal(user_id) if user_id is not None else None
    if principal is None:
        raise InvalidToken("the access token's provider account is not linked to an account here: sign in to TOW "
                           "with single sign-on once first")
    if not principal.is_active:
        raise InvalidToken("the access token's account is deactivated: ask an organisation admin")
    if writes and not may_write:
        raise TokenReadOnly("this access token is read-only: ask your provider for one with TOW's write scope "
                            "(mcp.oidc_write_scope)")
    return principal


def _check_invite(directory: Directory, token_hash: str, email: str, now: datetime) -> None:
    invite = directory.invite_by_token_hash(token_hash, for_update=False)
    if (refused := accounts.invite_refusal(invite, now)) is not None:
        raise refused
    assert invite is not None
    if invite.email is not None and invite.email != email:
        raise SignInRefused("this invite is for a different email address than your provider account's")


def _linked(directory: Directory, identities: OidcIdentities, login: ProviderLogin, now: datetime) -> User | None:
    user_id = identities.linked_user(login.issuer, login.subject)
    if user_id is None:
        return None
    user = directory.user(user_id)
    assert user is not None  # identities cascade with their user
    if not user.is_active:
        raise SignInRefused("this account is deactivated: ask an organisation admin")
    identities.record_login(login.issuer, login.subject, now)
    return user


def _link_or_create(directory: Directory, identities: OidcIdentities, policy: SsoPolicy, login: ProviderLogin,
                    now: datetime, *, invite_token_hash: str | None) -> User:
    if not login.email:
        raise SignInRefused("the provider sent no email address for you: TOW needs one (auth.oidc.email_claim)")
    try:
        email = normalise_email(login.email)
    except InvalidInput as exc:
        raise SignInRefused("the email address the provider sent is not valid") from exc
    existing = directory.user_by_email(email)
    if existing is not None:
        if not (policy.link_existing_by_email and login.email_verified):
            raise SignInRefused(
                "an account with this email already exists here and is not linked to your provider account: ask "
                "a server admin (linking by a verified email can be allowed: auth.oidc.link_existing_by_email)")
        if not existing.is_active:
            raise SignInRefused("this account is deactivated: ask an organisation admin")
        identities.link(login.issuer, login.subject, existing.id, now)
        directory.audit(AuditEntry(None, existing.id, AuditAction.OIDC_IDENTITY_LINKED, f"user:{existing.id}",
                                   {"issuer": login.issuer, "subject": login.subject, "via": "verified email"}))
        return existing
    if policy.require_email_verified and not login.email_verified:
        raise SignInRefused("the provider has not verified your email address: verify it there, then sign in again")
    first = directory.count_users() == 0
    if not first and not _desired_roles(identities, policy.rules, login.groups):
        if invite_token_hash is None:
            raise SignInRefused("your provider account is not given any organisation on this server: ask an "
                                "organisation admin for an invite, or to add your group to auth.oidc.organisations")
        _check_invite(directory, invite_token_hash, email, now)
    name = clean_name((login.name or email.split("@")[0])[:200], "display_name")
    user = directory.add_user(email, name, None, server_admin=first)
    identities.link(login.issuer, login.subject, user.id, now)
    directory.audit(AuditEntry(None, user.id, AuditAction.OIDC_ACCOUNT_CREATED, f"user:{user.id}",
                               {"issuer": login.issuer, "subject": login.subject, "server_admin": first}))
    if first:
        organisation = directory.add_organisation(policy.first_organisation_name, WorkflowMode.ORGANIZATION)
        directory.set_membership(organisation.id, user.id, OrgRole.OWNER)
        directory.audit(AuditEntry(organisation.id, user.id, AuditAction.MEMBER_JOINED, f"user:{user.id}",
                                   {"role": OrgRole.OWNER.value, "via": f"first account ({SSO})"}))
    return user


def _desired_roles(identities: OidcIdentities, rules: Sequence[OrganisationRule],
                   groups: tuple[str, ...] | None) -> dict[int, OrganisationRule]:
    """Per organisation, the matching rule with the highest role (rules naming no organisation here are skipped)."""
    ids = identities.organisations_named(sorted({rule.organisation for rule in rules}))
    desired: dict[int, OrganisationRule] = {}
    for rule in rules:
        org_id = ids.get(rule.organisation)
        if org_id is None or not rule.matches(groups):
            continue
        if org_id not in desired or _RANK[rule.role] > _RANK[desired[org_id].role]:
            desired[org_id] = rule
    return desired


def reconcile_roles(directory: Directory, identities: OidcIdentities, *, user_id: int,
                    rules: Sequence[OrganisationRule], groups: tuple[str, ...] | None) -> None:
    """Grant what the rules give, take back what they gave and no longer give (module rules)."""
    desired = _desired_roles(identities, rules, groups)
    current = {organisation.id: role for organisation, role in directory.organisations_of(user_id)}
    mapped = dict(identities.mapped_roles(user_id))
    for org_id, grant in list(mapped.items()):
        if current.get(org_id) != grant.role:  # changed or removed by hand since: no longer the mapping's
            identities.forget_mapped_role(user_id, org_id)
            del mapped[org_id]
    change = _Changes(directory, identities, user_id)
    for org_id, rule in desired.items():
        have, grant = current.get(org_id), mapped.get(org_id)
        if have is None:
            change.set_role(org_id, rule.role, MappedRole(rule.role, None), None, rule.describe())
        elif _RANK[rule.role] > _RANK[have]:
            previous = grant.previous_role if grant else have
            change.set_role(org_id, rule.role, MappedRole(rule.role, previous), have, rule.describe())
        elif (groups is not None and grant is not None and _RANK[rule.role] < _RANK[have]
              and change.may_leave(org_id, have, rule.role)):  # the higher role's group was left
            change.set_role(org_id, rule.role, MappedRole(rule.role, grant.previous_role), have, rule.describe())
    if groups is None:
        return  # the claim is absent: additive only, nothing is taken back
    for org_id, grant in mapped.items():
        if org_id in desired or not change.may_leave(org_id, grant.role, grant.previous_role):
            continue
        reason = "no rule gives it any more"
        if grant.previous_role is None:
            change.remove(org_id, grant.role, reason)
        else:
            change.set_role(org_id, grant.previous_role, None, grant.role, reason)


@dataclass(frozen=True)
class _Changes:
    directory: Directory
    identities: OidcIdentities
    user_id: int

    def may_leave(self, org_id: int, role: OrgRole, new_role: OrgRole | None) -> bool:
        """False when the change would take the organisation's last owner away (SPEC §1)."""
        if role is not OrgRole.OWNER or new_role is OrgRole.OWNER:
            return True
        self.directory.lock_owners(org_id)
        return self.directory.count_owners(org_id) > 1

    def set_role(self, org_id: int, role: OrgRole, mapped: MappedRole | None, was: OrgRole | None,
                 rule: str) -> None:
        self.directory.set_membership(org_id, self.user_id, role)
        if mapped is None:
            self.identities.forget_mapped_role(self.user_id, org_id)
        else:
            self.identities.put_mapped_role(self.user_id, org_id, mapped)
        details = {"role": role.value, "via": f"{SSO} group mapping", "rule": rule}
        if was is None:
            self._audit(org_id, AuditAction.MEMBER_JOINED, details)
        else:
            self._audit(org_id, AuditAction.MEMBER_ROLE_CHANGED, {**details, "from": was.value})

    def remove(self, org_id: int, was: OrgRole, rule: str) -> None:
        self.directory.remove_membership(org_id, self.user_id)
        self.identities.forget_mapped_role(self.user_id, org_id)
        self._audit(org_id, AuditAction.MEMBER_REMOVED, {"role": was.value, "via": f"{SSO} group mapping",
                                                         "rule": rule})

    def _audit(self, org_id: int, action: AuditAction, details: dict[str, str]) -> None:
        self.directory.audit(AuditEntry(org_id, self.user_id, action, f"user:{self.user_id}", details))
