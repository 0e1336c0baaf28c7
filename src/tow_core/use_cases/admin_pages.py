"""The organisation settings pages (members, groups, invites, projects and grants, access review, audit log)
and the server settings page (SPEC §1, §2, §8): each reads its frame and content in one unit of work. Their
forms call ``OrganisationUseCases`` and ``ProjectUseCases``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from tow_core import accounts, administration, attachments
from tow_core.access import can_manage_project, is_server_admin
from tow_core.administration import AccessReview
from tow_core.audit import AuditEntry, AuditQuery, audit_actions
from tow_core.errors import NotFound
from tow_core.identity import Grant, Group, Invite, Member, Project, User
from tow_core.unit_of_work import SessionCredential, Transactions
from tow_core.uploads import UploadPurpose
from tow_core.use_cases.frame import Framed, frame_of

AUDIT_PAGE_SIZE = 100


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
    names: Mapping[int, str]  # member user id -> display name


@dataclass(frozen=True)
class ServerPage:
    admins: list[User]
    home_organisation_id: int | None  # the first organisation the admin belongs to, if any
    configuration: tuple[tuple[str, str, str], ...]  # (key, value with secrets masked, source)
    ai_status: object | None  # the secret-free AI status the composition root built, if AI is wired


@dataclass(frozen=True)
class AdminPageUseCases:
    transactions: Transactions
    uploads_enabled: bool = False
    configuration: tuple[tuple[str, str, str], ...] = ()
    ai_status: object | None = None

    def settings(self, credential: SessionCredential, org_id: int, project_key: str | None
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
            managed = frozenset(pr.id for pr in projects if can_manage_project(p, pr.access))
            return Framed(frame, SettingsPage(members, groups, invites, projects, grants, dict(avatars), managed,
                                              self.uploads_enabled, acting.now))

    def access_review(self, credential: SessionCredential, org_id: int, project_key: str | None
                      ) -> Framed[AccessReview]:
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            return Framed(frame, administration.access_review(acting.stores.directory, acting.principal,
                                                              org_id=org_id))

    def audit(self, credential: SessionCredential, org_id: int, project_key: str | None, *, action: str | None,
              cursor: str | None) -> Framed[AuditPage]:
        """Owners/admins: the newest entries, optionally of one ``action`` (InvalidInput for an unknown one)."""
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            query = AuditQuery(actions=audit_actions([action] if action else None))
            d, p = acting.stores.directory, acting.principal
            entries, next_cursor = administration.list_audit(d, p, org_id=org_id, query=query, cursor=cursor,
                                                             limit=AUDIT_PAGE_SIZE)
            names = {m.user_id: m.display_name for m in administration.list_members(d, p, org_id=org_id)}
            return Framed(frame, AuditPage(list(entries), next_cursor, names))

    def server(self, credential: SessionCredential) -> ServerPage:
        """Server admins only; for anyone else the page does not exist (NotFound, like every invisible thing)."""
        with self.transactions.acting_as(credential) as acting:
            if not is_server_admin(acting.principal):
                raise NotFound("no such page")
            admins = administration.list_server_admins(acting.stores.directory, acting.principal)
            organisations = accounts.own_organisations(acting.stores.directory, acting.principal)
            home = organisations[0][0].id if organisations else None
            return ServerPage(admins, home, self.configuration, self.ai_status)
