"""The audit log (issue 4; SPEC §2 "explainable access"): who changed access or removed knowledge, when.

Entries are written by the use cases that make the change, in the same transaction (an audited
change and its entry commit together or not at all). They hold identifiers and small details —
never record bodies. Owners and admins of an organisation list its entries; server-level changes
(server admin granted/revoked) have no organisation and are listed by server admins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from tow_core.access import Principal, can_administer_org, is_server_admin
from tow_core.errors import AccessDenied, InvalidInput, NotFound


class AuditAction(StrEnum):
    MEMBER_JOINED = "member.joined"
    MEMBER_ROLE_CHANGED = "member.role_changed"
    MEMBER_REMOVED = "member.removed"
    INVITE_CREATED = "invite.created"
    INVITE_REVOKED = "invite.revoked"
    GROUP_CREATED = "group.created"
    GROUP_DELETED = "group.deleted"
    GROUP_RENAMED = "group.renamed"
    GROUP_MEMBER_ADDED = "group.member_added"
    GROUP_MEMBER_REMOVED = "group.member_removed"
    PROJECT_CREATED = "project.created"
    PROJECT_VISIBILITY_CHANGED = "project.visibility_changed"
    PROJECT_STATUS_CHANGED = "project.status_changed"
    PROJECT_RENAMED = "project.renamed"
    GRANT_SET = "grant.set"
    GRANT_REMOVED = "grant.removed"
    USER_PROFILE_CHANGED = "user.profile_changed"  # their own display name or email
    USER_PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 - by themselves; other sessions signed out
    USER_DEACTIVATED = "user.deactivated"  # cannot sign in; every session revoked at once
    USER_REACTIVATED = "user.reactivated"
    SERVER_ADMIN_GRANTED = "server_admin.granted"
    SERVER_ADMIN_REVOKED = "server_admin.revoked"
    RECORD_DELETED = "record.deleted"
    RECORD_SCOPE_MOVED = "record.scope_moved"
    MEMORY_DIFF_APPROVED = "memory_diff.approved"
    MEMORY_DIFF_PARTIALLY_APPLIED = "memory_diff.partially_applied"
    MEMORY_DIFF_REJECTED = "memory_diff.rejected"
    SNAPSHOT_ACTIVATED = "snapshot.activated"
    UPLOAD_ATTACHED = "upload.attached"
    UPLOAD_DETACHED = "upload.detached"
    UPLOAD_DELETED = "upload.deleted"
    EXPORT_REQUESTED = "export.requested"
    EXPORT_DOWNLOADED = "export.downloaded"
    EXPORT_DOWNLOAD_REFUSED = "export.download_refused"  # the requester's access shrank since the export
    EXPORT_WRITTEN = "export.written"  # by the operator's `tow export`, to a file on the server (no actor)
    ORGANISATION_IMPORTED = "organisation.imported"
    ORGANISATION_SETTING_CHANGED = "organisation.setting_changed"
    AGENT_RUN_CANCELLED = "agent_run.cancelled"  # by an owner/admin, of someone else's run
    TOKEN_REVOKED = "token.revoked"  # noqa: S105 (an audit action); an owner/admin revoked a member's token
    OIDC_ACCOUNT_CREATED = "oidc.account_created"  # a first single sign-on login created the account
    OIDC_IDENTITY_LINKED = "oidc.identity_linked"  # a provider identity linked to an existing account
    PASSWORD_RESET = "password.reset"  # noqa: S105 - an action name; through an emailed link (server level: no organisation)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    organisation_id: int | None
    actor_id: int | None
    action: AuditAction
    target: str  # "user:12", "project:3", "DOC-7", ...
    details: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditQuery:
    actions: frozenset[AuditAction] = frozenset()
    actor_id: int | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def audit_actions(values: list[str] | None) -> frozenset[AuditAction]:
    try:
        return frozenset(AuditAction(v) for v in values or ())
    except ValueError as exc:
        known = ", ".join(a.value for a in AuditAction)
        raise InvalidInput(f"action must be one of {known}", field="action") from exc


def require_audit_reader(principal: Principal, org_id: int | None) -> None:
    """Owners/admins read their organisation's log; server admins read the server-level one."""
    if org_id is None:
        if not is_server_admin(principal):
            raise AccessDenied("only server admins read the server audit log")
        return
    if not principal.is_active or org_id not in principal.org_roles:
        raise NotFound("organisation not found")
    if not can_administer_org(principal, org_id):
        raise AccessDenied("only organisation owners and admins read the audit log")
