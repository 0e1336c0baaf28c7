"""Administration's use cases (SPEC §1, §2, §8), one unit of work per call, rules in ``tow_core.administration``
and ``tow_core.accounts``:

- ``OrganisationUseCases``: organisations, members, groups, invites and the audit log;
- ``ProjectUseCases``: projects and their grants, explaining access, the access review and server admins;
- ``AdminPageUseCases``: the organisation settings pages and the server settings page, each reading its frame
  and content in one unit of work (their forms call the other two).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from tow_core import accounts, administration, attachments
from tow_core.access import OrgRole, ProjectRole, Scope, ScopeKind, Visibility, is_server_admin
from tow_core.administration import UNCHANGED, AccessExplanation, AccessReview, Unchanged
from tow_core.audit import AuditAction, AuditEntry, AuditQuery, audit_actions
from tow_core.errors import InvalidInput, NotFound
from tow_core.identity import (
    Directory,
    Grant,
    Group,
    Invite,
    InviteState,
    Member,
    Organisation,
    Project,
    ProjectStatus,
    User,
    WorkflowMode,
)
from tow_core.mail import MailComposer, OutgoingEmail
from tow_core.outbox import QueuedEmail
from tow_core.unit_of_work import Acting, Credential, Transactions
from tow_core.uploads import UploadPurpose
from tow_core.use_cases.frame import Framed, frame_of

# --- organisations, members, groups, invites, audit log -------------------------------------------


class InviteTokens(Protocol):
    """Makes an invite's secret token and the hash stored in its place (the session cookie signer does)."""

    def new_token(self) -> str: ...

    def token_hash(self, token: str) -> str: ...


@dataclass(frozen=True)
class DatedInvite:
    """An invite and its state at the moment it was read."""

    invite: Invite
    state: InviteState


@dataclass(frozen=True)
class CreatedInvite:
    """A new invite and its token, shown once: only the token's hash is stored."""

    invite: Invite
    state: InviteState
    token: str
    emailed: bool = False  # its link was queued to be emailed to the invite's address


@dataclass(frozen=True)
class JoinedAccount:
    """After accepting an invite: the account, its organisations with roles, and the one it just joined."""

    user: User
    organisations: list[tuple[Organisation, OrgRole]]
    organisation_id: int


@dataclass(frozen=True)
class OrganisationUseCases:
    transactions: Transactions
    tokens: InviteTokens
    mail: MailComposer | None = None  # None: invites cannot be emailed (tests that do not send mail)

    # --- organisations ------------------------------------------------------------------------

    def create_organisation(self, credential: Credential, *, name: str,
                            workflow_mode: WorkflowMode | str) -> Organisation:
        with self.transactions.acting_as(credential) as acting:
            return administration.create_organisation(acting.stores.directory, acting.principal, name=name,
                                                      workflow_mode=workflow_mode)

    def organisation(self, credential: Credential, org_id: int) -> Organisation:
        with self.transactions.acting_as(credential) as acting:
            return administration.get_organisation(acting.stores.directory, acting.principal, org_id=org_id)

    def update_organisation(self, credential: Credential, org_id: int, *, name: str | None,
                            workflow_mode: WorkflowMode | str | None,
                            require_second_reviewer: bool | None = None) -> Organisation:
        with self.transactions.acting_as(credential) as acting:
            return administration.update_organisation(acting.stores.directory, acting.principal, org_id=org_id,
                                                      name=name, workflow_mode=workflow_mode,
                                                      require_second_reviewer=require_second_reviewer)

    # --- members ------------------------------------------------------------------------------

    def members(self, credential: Credential, org_id: int) -> list[Member]:
        with self.transactions.acting_as(credential) as acting:
            return administration.list_members(acting.stores.directory, acting.principal, org_id=org_id)

    def change_member_role(self, credential: Credential, org_id: int, user_id: int,
                           role: OrgRole | str) -> Member:
        """Their new role; they are notified (``NotificationKind.ACCESS``)."""
        with self.transactions.acting_as(credential) as acting:
            member = administration.change_member_role(acting.stores.directory, acting.principal, org_id=org_id,
                                                       user_id=user_id, role=role)
            acting.notifications().access_changed(acting.principal.user_id, user_id, org_id)
            return member

    def remove_member(self, credential: Credential, org_id: int, user_id: int) -> None:
        with self.transactions.acting_as(credential) as acting:
            administration.remove_member(acting.stores.directory, acting.principal, org_id=org_id, user_id=user_id)

    def set_member_active(self, credential: Credential, org_id: int, user_id: int, active: bool) -> Member:
        """Deactivate (every session ends at once) or reactivate a member's account (``set_user_active``)."""
        with self.transactions.acting_as(credential) as acting:
            return administration.set_user_active(acting.stores.directory, acting.principal, org_id=org_id,
                                                  user_id=user_id, active=active, now=acting.now)

    # --- groups -------------------------------------------------------------------------------

    def groups(self, credential: Credential, org_id: int) -> list[Group]:
        with self.transactions.acting_as(credential) as acting:
            return administration.list_groups(acting.stores.directory, acting.principal, org_id=org_id)

    def create_group(self, credential: Credential, org_id: int, name: str) -> Group:
        with self.transactions.acting_as(credential) as acting:
            return administration.create_group(acting.stores.directory, acting.principal, org_id=org_id, name=name)

    def rename_group(self, credential: Credential, org_id: int, group_id: int, name: str) -> Group:
        with self.transactions.acting_as(credential) as acting:
            return administration.rename_group(acting.stores.directory, acting.principal, org_id=org_id,
                                               group_id=group_id, name=name)

    def delete_group(self, credential: Credential, org_id: int, group_id: int) -> None:
        """Its members lose what its grants gave them: they are notified (``NotificationKind.ACCESS``)."""
        with self.transactions.acting_as(credential) as acting:
            group = acting.stores.directory.group(group_id)
            administration.delete_group(acting.stores.directory, acting.principal, org_id=org_id, group_id=group_id)
            if group is not None:
                acting.notifications().group_access_changed(acting.principal.user_id, group)

    def add_group_member(self, credential: Credential, org_id: int, group_id: int, user_id: int) -> Group:
        """The group; the person added is notified (their access changed)."""
        with self.transactions.acting_as(credential) as acting:
            group = administration.add_group_member(acting.stores.directory, acting.principal, org_id=org_id,
                                                    group_id=group_id, user_id=user_id)
            acting.notifications().access_changed(acting.principal.user_id, user_id, org_id)
            return group

    def remove_group_member(self, credential: Credential, org_id: int, group_id: int, user_id: int) -> Group:
        """The group; the person removed is notified (their access changed)."""
        with self.transactions.acting_as(credential) as acting:
            group = administration.remove_group_member(acting.stores.directory, acting.principal, org_id=org_id,
                                                       group_id=group_id, user_id=user_id)
            acting.notifications().access_changed(acting.principal.user_id, user_id, org_id)
            return group

    # --- invites ------------------------------------------------------------------------------

    def create_invite(self, credential: Credential, org_id: int, *, role: OrgRole, email: str | None,
                      lifetime: timedelta, send_email: bool = False) -> CreatedInvite:
        """Owners/admins (only owners invite owners); the token is returned once and only its hash is kept.
        ``send_email``: the invite is bound to ``email`` and its link emailed there, queued in the outbox with
        the invite (both commit or neither)."""
        if send_email and not (email or "").strip():
            raise InvalidInput("enter the email address to send the invite to", field="email")
        if send_email and self.mail is None:
            raise InvalidInput("this server cannot send email", field="send_email")
        token = self.tokens.new_token()
        with self.transactions.acting_as(credential) as acting:
            directory = acting.stores.directory
            invite = accounts.create_invite(directory, acting.principal, org_id=org_id,
                                            token_hash=self.tokens.token_hash(token), role=role, email=email,
                                            now=acting.now, lifetime=lifetime, emailed=send_email)
            if send_email and self.mail is not None and invite.email is not None:
                acting.stores.email_outbox.queue(self._invite_email(directory, acting.principal.user_id, invite, token),
                                                 now=acting.now)
            return CreatedInvite(invite, invite.state(acting.now), token, emailed=send_email)

    def _invite_email(self, directory: Directory, inviter_id: int, invite: Invite, token: str) -> OutgoingEmail:
        assert self.mail is not None and invite.email is not None
        organisation, inviter = directory.organisation(invite.organisation_id), directory.user(inviter_id)
        assert organisation is not None and inviter is not None  # create_invite checked both
        return self.mail.invite(to=invite.email, organisation_name=organisation.name, inviter_name=inviter.display_name,
                                role=invite.role.value, token=token, expires_at=invite.expires_at)

    def invites(self, credential: Credential, org_id: int) -> list[DatedInvite]:
        with self.transactions.acting_as(credential) as acting:
            invites = accounts.list_invites(acting.stores.directory, acting.principal, org_id=org_id)
            return [DatedInvite(i, i.state(acting.now)) for i in invites]

    def revoke_invite(self, credential: Credential, org_id: int, invite_id: int) -> None:
        with self.transactions.acting_as(credential) as acting:
            accounts.revoke_invite(acting.stores.directory, acting.principal, org_id=org_id, invite_id=invite_id,
                                   now=acting.now)

    def accept_invite(self, credential: Credential, token: str) -> JoinedAccount:
        """A signed-in user joins the invite's organisation (an existing higher role is kept)."""
        with self.transactions.acting_as(credential) as acting:
            directory = acting.stores.directory
            invite = accounts.accept_invite(directory, acting.principal, token_hash=self.tokens.token_hash(token),
                                            now=acting.now)
            user, organisations = accounts.account_overview(directory, acting.principal.user_id)
            return JoinedAccount(user, organisations, invite.organisation_id)

    # --- audit log ----------------------------------------------------------------------------

    def audit(self, credential: Credential, org_id: int | None, query: AuditQuery, *, cursor: str | None,
              limit: int) -> tuple[list[AuditEntry], str | None]:
        """An organisation's log (owners/admins), or the server's (``org_id`` None: server admins)."""
        with self.transactions.acting_as(credential) as acting:
            entries, next_cursor = administration.list_audit(acting.stores.directory, acting.principal,
                                                             org_id=org_id, query=query, cursor=cursor, limit=limit)
            return list(entries), next_cursor


# --- projects, grants, access, server admins -------------------------------------------------


def _grant_changed(acting: Acting, grant: Grant, org_id: int) -> None:
    """Whose access a grant put or removed changed: its user's, or its group's members' (notified)."""
    notifications = acting.notifications()
    if grant.user_id is not None:
        notifications.access_changed(acting.principal.user_id, grant.user_id, org_id)
    group = acting.stores.directory.group(grant.group_id) if grant.group_id is not None else None
    if group is not None:
        notifications.group_access_changed(acting.principal.user_id, group)


@dataclass(frozen=True)
class ProjectUseCases:
    transactions: Transactions

    # --- projects -----------------------------------------------------------------------------

    def projects(self, credential: Credential, org_id: int, *,
                 status: ProjectStatus | str | None = None) -> list[Project]:
        with self.transactions.acting_as(credential) as acting:
            return administration.list_projects(acting.stores.directory, acting.principal, org_id=org_id,
                                                status=status)

    def create_project(self, credential: Credential, org_id: int, *, key: str, name: str,
                       visibility: Visibility | str, description: str = "",
                       lead_user_id: int | None = None) -> Project:
        with self.transactions.acting_as(credential) as acting:
            return administration.create_project(acting.stores.directory, acting.principal, org_id=org_id, key=key,
                                                 name=name, visibility=visibility, description=description,
                                                 lead_user_id=lead_user_id)

    def project(self, credential: Credential, org_id: int, project_id: int) -> Project:
        with self.transactions.acting_as(credential) as acting:
            return administration.get_project(acting.stores.directory, acting.principal, org_id=org_id,
                                              project_id=project_id)

    def update_project(self, credential: Credential, org_id: int, project_id: int, *,
                       name: str | None = None, description: str | None = None,
                       lead_user_id: int | None | Unchanged = UNCHANGED, visibility: Visibility | str | None = None,
                       status: ProjectStatus | str | None = None) -> Project:
        """``None`` (``UNCHANGED`` for the lead, where None clears it) leaves a field alone."""
        with self.transactions.acting_as(credential) as acting:
            return administration.update_project(acting.stores.directory, acting.principal, org_id=org_id,
                                                 project_id=project_id, name=name, description=description,
                                                 lead_user_id=lead_user_id, visibility=visibility, status=status)

    # --- grants -------------------------------------------------------------------------------

    def grants(self, credential: Credential, org_id: int, project_id: int) -> list[Grant]:
        with self.transactions.acting_as(credential) as acting:
            return administration.list_grants(acting.stores.directory, acting.principal, org_id=org_id,
                                              project_id=project_id)

    def put_grant(self, credential: Credential, org_id: int, project_id: int, *, role: ProjectRole | str,
                  user_id: int | None = None, group_id: int | None = None) -> Grant:
        """The grant; the person granted, or the group's members, are notified (``NotificationKind.ACCESS``)."""
        with self.transactions.acting_as(credential) as acting:
            grant = administration.put_grant(acting.stores.directory, acting.principal, org_id=org_id,
                                             project_id=project_id, role=role, user_id=user_id, group_id=group_id)
            _grant_changed(acting, grant, org_id)
            return grant

    def remove_grant(self, credential: Credential, org_id: int, project_id: int, grant_id: int) -> None:
        with self.transactions.acting_as(credential) as acting:
            grant = acting.stores.directory.grant(grant_id)
            administration.remove_grant(acting.stores.directory, acting.principal, org_id=org_id,
                                        project_id=project_id, grant_id=grant_id)
            if grant is not None:
                _grant_changed(acting, grant, org_id)

    # --- access -------------------------------------------------------------------------------

    def explain_access(self, credential: Credential, org_id: int, scope_kind: ScopeKind, scope_ref: int, *,
                       user_id: int | None = None) -> AccessExplanation:
        """Why ``user_id`` (by default the caller) can or cannot read and write the scope ``KIND:REF`` of
        ``org_id``; an organisation scope must name that organisation (NotFound otherwise)."""
        with self.transactions.acting_as(credential) as acting:
            if scope_kind is ScopeKind.ORGANISATION and scope_ref != org_id:
                raise NotFound("scope not found")
            scope = Scope(scope_kind, org_id, scope_ref)
            who = acting.principal.user_id if user_id is None else user_id
            return administration.explain_access(acting.stores.directory, acting.principal, org_id=org_id,
                                                  user_id=who, scope=scope)

    def access_review(self, credential: Credential, org_id: int) -> AccessReview:
        with self.transactions.acting_as(credential) as acting:
            return administration.access_review(acting.stores.directory, acting.principal, org_id=org_id)

    # --- server admins ------------------------------------------------------------------------

    def server_admins(self, credential: Credential) -> list[User]:
        with self.transactions.acting_as(credential) as acting:
            return administration.list_server_admins(acting.stores.directory, acting.principal)

    def set_server_admin(self, credential: Credential, user_id: int, value: bool) -> User:
        """Grant (``value`` True) or revoke server admin; never the last active one."""
        with self.transactions.acting_as(credential) as acting:
            return administration.set_server_admin(acting.stores.directory, acting.principal, user_id, value)


# --- pages ------------------------------------------------------------------------------------


def _ref_id(ref: str, kind: str) -> int | None:
    """``N`` of a ``kind:N`` reference (audit targets and holders), else None."""
    prefix, _, number = ref.partition(":")
    return int(number) if prefix == kind and number.isdecimal() else None


def _people_named(entries: Iterable[AuditEntry]) -> set[int]:
    """The user ids audit entries name: who acted, a ``user:N`` target or holder, a ``user_id`` detail."""
    found: set[int] = set()
    for entry in entries:
        refs = [_ref_id(entry.target, "user"), _ref_id(str(entry.details.get("holder", "")), "user")]
        found.update(r for r in refs if r is not None)
        if entry.actor_id is not None:
            found.add(entry.actor_id)
        if isinstance(entry.details.get("user_id"), int):
            found.add(entry.details["user_id"])
        found.update(u for u in entry.details.get("member_ids", ()) if isinstance(u, int))
    return found


AUDIT_PAGE_SIZE = 100
DEAD_LETTERS_SHOWN = 50


@dataclass(frozen=True)
class SettingsPage:
    members: list[Member]
    groups: list[Group]
    invites: list[Invite]  # owners/admins only; empty for everyone else
    projects: list[Project]  # the ones the user reads
    grants: Mapping[int, list[Grant]]  # project id -> its grants
    avatars: Mapping[int, int]  # user id -> upload id of the avatars the user may see
    managed_project_ids: frozenset[int]  # projects whose settings offer the logo form
    uploads_enabled: bool
    now: datetime  # when it was read (an invite's state depends on it)


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    next_cursor: str | None
    names: Mapping[int, str]  # user id -> display name, for everyone the entries name (former members too)
    projects: Mapping[int, str] = field(default_factory=dict)  # project id -> "KEY — name"
    groups: Mapping[int, str] = field(default_factory=dict)  # group id -> name (deleted ones: their last name)


@dataclass(frozen=True)
class ServerPage:
    admins: list[User]
    home_organisation_id: int | None  # the first organisation the admin belongs to, if any
    configuration: tuple[tuple[str, str, str], ...]  # (key, value with secrets masked, source)
    ai_status: object | None  # the secret-free AI status the composition root built, if AI is wired
    dead_letters: list[QueuedEmail]  # emails given up on after email.max_attempts, newest first


@dataclass(frozen=True)
class AdminPageUseCases:
    transactions: Transactions
    uploads_enabled: bool = False
    configuration: tuple[tuple[str, str, str], ...] = ()
    ai_status: object | None = None

    def settings(self, credential: Credential, org_id: int, project_key: str | None
                 ) -> Framed[SettingsPage]:
        """Any member sees members, groups, the projects they read and their grants; owners/admins also invites."""
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            d, p = acting.stores.directory, acting.principal
            members = administration.list_members(d, p, org_id=org_id)
            groups = administration.list_groups(d, p, org_id=org_id)
            invites = accounts.list_invites(d, p, org_id=org_id) if frame.role.manages_org else []
            projects = administration.list_projects(d, p, org_id=org_id)
            grants = {pr.id: administration.list_grants(d, p, org_id=org_id, project_id=pr.id) for pr in projects}
            avatars = attachments.visible_images(p, acting.stores.uploads, UploadPurpose.AVATAR,
                                                 [m.user_id for m in members])
            managed = frozenset(pr.id for pr in projects if pr.managed_by(p))
            return Framed(frame, SettingsPage(members, groups, invites, projects, grants, dict(avatars), managed,
                                              self.uploads_enabled, acting.now))

    def access_review(self, credential: Credential, org_id: int, project_key: str | None
                      ) -> Framed[AccessReview]:
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            return Framed(frame, administration.access_review(acting.stores.directory, acting.principal,
                                                              org_id=org_id))

    def audit(self, credential: Credential, org_id: int, project_key: str | None, *, action: str | None,
              cursor: str | None) -> Framed[AuditPage]:
        """Owners/admins: the newest entries, optionally of one ``action`` (InvalidInput for an unknown one)."""
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            query = AuditQuery(actions=audit_actions([action] if action else None))
            d, p = acting.stores.directory, acting.principal
            entries, next_cursor = administration.list_audit(d, p, org_id=org_id, query=query, cursor=cursor,
                                                             limit=AUDIT_PAGE_SIZE)
            names = {m.user_id: m.display_name for m in administration.list_members(d, p, org_id=org_id)}
            for user_id in sorted(_people_named(entries) - names.keys()):
                user = d.user(user_id)  # a former member, named in the log: still a person, not an id
                if user is not None:
                    names[user_id] = user.display_name
            projects = {pr.id: f"{pr.key} — {pr.name}" for pr in d.projects(org_id)}
            groups = {_ref_id(e.target, "group"): str(e.details["name"]) for e in entries
                      if e.action is AuditAction.GROUP_DELETED and "name" in e.details}
            groups.update({g.id: g.name for g in d.groups(org_id)})
            return Framed(frame, AuditPage(list(entries), next_cursor, names, projects, groups))

    def server(self, credential: Credential) -> ServerPage:
        """Server admins only; for anyone else the page does not exist (NotFound, like every invisible thing)."""
        with self.transactions.acting_as(credential) as acting:
            if not is_server_admin(acting.principal):
                raise NotFound("no such page")
            admins = administration.list_server_admins(acting.stores.directory, acting.principal)
            organisations = accounts.own_organisations(acting.stores.directory, acting.principal)
            home = organisations[0][0].id if organisations else None
            dead = list(acting.stores.email_outbox.dead_letters(limit=DEAD_LETTERS_SHOWN))
            return ServerPage(admins, home, self.configuration, self.ai_status, dead)
