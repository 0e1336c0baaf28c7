"""People, organisations, groups, projects, grants, invites and sessions (SPEC §1–§3) and the port
through which use cases read and change them.

Entities validate their own fields; use cases in ``tow_core.accounts`` and ``tow_core.administration``
decide who may change what, using ``tow_core.access``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from tow_core.access import OrgRole, Principal, ProjectAccess, ProjectRole, Visibility, can_manage_project
from tow_core.audit import AuditEntry, AuditQuery
from tow_core.errors import InvalidInput

# Deliberately loose (RFC 5322 is not worth enforcing): one @, a dot in the domain, no spaces.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
# SPEC §2: 2–10 upper-case letters/digits; at least one letter, so that "APP-42" style ticket IDs can
# always be told apart from numbers and dates in running text (see records.DISPLAY_ID_PATTERN).
PROJECT_KEY = re.compile(r"^(?=[A-Z0-9]*[A-Z])[A-Z0-9]{2,10}$")


def normalise_email(email: str, field: str = "email") -> str:
    """Emails are unique case-insensitively (SPEC §1): store and compare them lower-cased."""
    cleaned = email.strip().lower()
    if len(cleaned) > 320 or not _EMAIL.match(cleaned):
        raise InvalidInput(f"{field} is not a valid email address", field=field)
    return cleaned


def clean_name(value: str, field: str, *, max_length: int = 200) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(cleaned) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters", field=field)
    return cleaned


def check_project_key(key: str) -> str:
    if not PROJECT_KEY.fullmatch(key):
        raise InvalidInput("key must be 2–10 upper-case letters or digits with at least one letter, e.g. APP",
                           field="key")
    return key


class WorkflowMode(StrEnum):
    FOUNDER = "founder"
    ORGANIZATION = "organization"


class ProjectStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    display_name: str
    is_server_admin: bool
    is_active: bool
    password_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Organisation:
    id: int
    name: str
    workflow_mode: WorkflowMode
    # memory.require_second_reviewer: nobody approves a memory diff they (or an agent run of theirs) proposed
    require_second_reviewer: bool = False


@dataclass(frozen=True, slots=True)
class Member:
    organisation_id: int
    user_id: int
    role: OrgRole
    email: str
    display_name: str
    is_active: bool

    def changes_owner_role(self, new_role: OrgRole | None) -> bool:
        """Whether moving this member to ``new_role`` (None: leaving) grants or takes the owner role: only an
        owner may do that (SPEC §1)."""
        return self.role is not new_role and OrgRole.OWNER in (self.role, new_role)

    def would_leave_no_owner(self, new_role: OrgRole | None, active_owners: int) -> bool:
        """Whether the move takes the organisation's last active owner away (SPEC §1: refused)."""
        loses_owner = self.role is OrgRole.OWNER and new_role is not OrgRole.OWNER
        return loses_owner and self.is_active and active_owners <= 1


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    organisation_id: int
    name: str
    member_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    organisation_id: int
    key: str
    name: str
    description: str
    lead_user_id: int | None
    visibility: Visibility
    status: ProjectStatus

    @property
    def access(self) -> ProjectAccess:
        return ProjectAccess(self.id, self.organisation_id, self.visibility)

    def managed_by(self, principal: Principal) -> bool:
        """Its leads and admins, and the organisation's owners and admins, manage it (settings, grants, logo)."""
        return can_manage_project(principal, self.access)


@dataclass(frozen=True, slots=True)
class Grant:
    id: int
    project_id: int
    user_id: int | None
    group_id: int | None
    role: ProjectRole


class InviteState(StrEnum):
    PENDING = "pending"
    EXPIRED = "expired"
    REVOKED = "revoked"
    USED = "used"


@dataclass(frozen=True, slots=True)
class Invite:
    id: int
    organisation_id: int
    role: OrgRole
    email: str | None
    created_by: int | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    used_at: datetime | None

    def state(self, now: datetime) -> InviteState:
        if self.used_at is not None:
            return InviteState.USED
        if self.revoked_at is not None:
            return InviteState.REVOKED
        if now >= self.expires_at:
            return InviteState.EXPIRED
        return InviteState.PENDING


@dataclass(frozen=True, slots=True)
class Session:
    token_hash: str
    user_id: int
    active_organisation_id: int | None
    expires_at: datetime


class Accounts(Protocol):
    """People: their accounts, server-admin flags, and the principal loaded for a request."""

    def lock_registration(self) -> None: ...
    def count_users(self) -> int: ...
    def user(self, user_id: int) -> User | None: ...
    def user_by_email(self, email: str) -> User | None: ...
    def add_user(self, email: str, display_name: str, password_hash: str | None, *, server_admin: bool) -> User: ...
    def set_password_hash(self, user_id: int, password_hash: str) -> None: ...
    def set_profile(self, user_id: int, *, email: str, display_name: str) -> None:
        """A new (lower-cased) email and display name; Conflict when another account has that email."""
        ...
    def set_server_admin(self, user_id: int, value: bool) -> None: ...
    def set_active(self, user_id: int, value: bool) -> None: ...
    def server_admins(self) -> Sequence[User]: ...
    def lock_server_admins(self) -> None:
        """Serialise "is this the last server admin?" checks until the transaction ends."""
        ...
    def principal(self, user_id: int) -> Principal | None: ...


class Memberships(Protocol):
    """Organisations and who belongs to them with which role (SPEC §1; the last-owner rule locks here)."""

    def add_organisation(self, name: str, workflow_mode: WorkflowMode) -> Organisation: ...
    def organisation(self, org_id: int) -> Organisation | None: ...
    def organisations_named(self, name: str) -> Sequence[Organisation]:
        """The organisations with this name, compared case-insensitively, by id."""
        ...
    def organisations_of(self, user_id: int) -> Sequence[tuple[Organisation, OrgRole]]: ...
    def update_organisation(self, org_id: int, *, name: str, workflow_mode: WorkflowMode,
                            require_second_reviewer: bool) -> Organisation: ...
    def members(self, org_id: int) -> Sequence[Member]: ...
    def set_membership(self, org_id: int, user_id: int, role: OrgRole) -> None: ...
    def remove_membership(self, org_id: int, user_id: int) -> None: ...
    def count_owners(self, org_id: int) -> int: ...
    def lock_owners(self, org_id: int) -> None:
        """Serialise "is this the last owner?" checks for one organisation until the transaction ends."""
        ...


class GroupRoster(Protocol):
    """Groups of an organisation's members (project grants and knowledge scopes use them)."""

    def add_group(self, org_id: int, name: str) -> Group: ...
    def group(self, group_id: int) -> Group | None: ...
    def groups(self, org_id: int) -> Sequence[Group]: ...
    def rename_group(self, group_id: int, name: str) -> Group: ...
    def delete_group(self, group_id: int) -> None: ...
    def add_group_member(self, group_id: int, user_id: int) -> None: ...
    def remove_group_member(self, group_id: int, user_id: int) -> None: ...


class ProjectGrants(Protocol):
    """Projects and the grants that open restricted ones to users and groups (SPEC §2)."""

    def add_project(self, project: Project) -> Project: ...
    def project(self, project_id: int) -> Project | None: ...
    def projects(self, org_id: int) -> Sequence[Project]: ...
    def update_project(self, project: Project) -> Project: ...
    def grants(self, project_id: int) -> Sequence[Grant]: ...
    def grant(self, grant_id: int) -> Grant | None: ...
    def put_grant(self, project_id: int, *, user_id: int | None, group_id: int | None, role: ProjectRole) -> Grant: ...
    def delete_grant(self, grant_id: int) -> None: ...


class Invitations(Protocol):
    """Invites to join an organisation; only the token's hash is kept (SPEC §1)."""

    def add_invite(
        self, org_id: int, token_hash: str, role: OrgRole, email: str | None, created_by: int, expires_at: datetime
    ) -> Invite: ...
    def invite(self, invite_id: int) -> Invite | None: ...
    def invite_by_token_hash(self, token_hash: str, *, for_update: bool = False) -> Invite | None: ...
    def invites(self, org_id: int) -> Sequence[Invite]: ...
    def mark_invite_revoked(self, invite_id: int, now: datetime) -> None: ...
    def mark_invite_used(self, invite_id: int, user_id: int, now: datetime) -> None: ...


class AuditTrail(Protocol):
    """The audit log, written in the same transaction as the change it describes."""

    def audit(self, entry: AuditEntry) -> None: ...
    def audit_entries(
        self, org_id: int | None, query: AuditQuery, *, cursor: str | None, limit: int
    ) -> tuple[list[AuditEntry], str | None]:
        """Newest first; the second value is the cursor of the next page (None on the last)."""
        ...


class Sessions(Protocol):
    """Server-side sessions, so that logout, deactivation and "sign out everywhere" revoke at once."""

    def add_session(self, session: Session) -> None: ...
    def live_session(self, token_hash: str, now: datetime) -> Session | None: ...
    def set_session_organisation(self, token_hash: str, org_id: int) -> None: ...
    def revoke_session(self, token_hash: str, now: datetime) -> None: ...
    def revoke_user_sessions(self, user_id: int, now: datetime, *, keep_token_hash: str | None = None) -> int:
        """Revokes every live-or-expired session of the user not revoked yet, except ``keep_token_hash``'s
        (a password change keeps the browser that made it); how many."""
        ...

    def act_for(self, user_id: int) -> None:
        """This transaction acts for ``user_id`` (the session's user): what the storage writes on its own
        for the changes made in it — the embedding outbox, whose egress-ledger rows then name that
        person (issue 13) — is attributed to them. Ends with the transaction."""
        ...

    def acting_session(self, token_hash: str, now: datetime) -> tuple[Session, Principal] | None:
        """What every signed-in request starts with, at once: the live session (as ``live_session``), its
        user's principal (as ``principal``) and this transaction acting for that user (as ``act_for``);
        None, and nothing set, when no live session has that hash."""
        ...


class Directory(Accounts, Memberships, GroupRoster, ProjectGrants, Invitations, AuditTrail, Sessions, Protocol):
    """Identity and access data, inside the caller's unit of work (one transaction): every role-named port
    above in one. A use case that needs only one of them asks for that one."""


class SignInLog(Protocol):
    """What sign-in throttling remembers (``tow_core.accounts``): each failure by the lower-cased email
    as typed (an account or not) and the client address; the last success by (user, client address).
    Writes commit on their own, so a refused sign-in still counts although the request that made it fails.
    Writes also forget what no longer counts (IP addresses are personal data; an attacker's failures
    must not fill the disk)."""

    def record_failure(self, email: str, client_ip: str, now: datetime, *, forget_before: datetime) -> None:
        """Also deletes failures from before ``forget_before`` (a bounded batch per call)."""
        ...

    def recent_failures(
        self, since: datetime, *, limit: int, email: str | None = None, client_ip: str | None = None
    ) -> Sequence[datetime]:
        """Failures after ``since`` for this email and/or this address (both given: that pair), newest
        first, at most ``limit``."""
        ...

    def clear_failures(self, email: str, client_ip: str) -> None:
        """Forget the failures of this (email, address) pair only."""
        ...

    def record_success(self, user_id: int, client_ip: str, now: datetime, *, forget_before: datetime) -> None:
        """Remember that ``user_id`` signed in from ``client_ip`` at ``now``; also deletes successes from
        before ``forget_before`` (a bounded batch per call)."""
        ...

    def signed_in_from(self, user_id: int, client_ip: str, since: datetime) -> bool:
        """Whether ``user_id`` signed in successfully from ``client_ip`` after ``since``."""
        ...
