"""The audit log in words people read (issue 18): who did what to whom, naming people, projects and groups by
name instead of ``user:2``, ``project:1`` or ``email=None``. Only wording: what is logged is ``tow_core.audit``'s."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tow_core.audit import AuditAction, AuditEntry
from tow_core.use_cases.administration import AuditPage

ACTIONS: dict[AuditAction, str] = {
    AuditAction.MEMBER_JOINED: "joined the organisation",
    AuditAction.MEMBER_ROLE_CHANGED: "changed a member's role",
    AuditAction.MEMBER_REMOVED: "removed a member",
    AuditAction.INVITE_CREATED: "created an invite",
    AuditAction.INVITE_REVOKED: "revoked an invite",
    AuditAction.GROUP_CREATED: "created a group",
    AuditAction.GROUP_RENAMED: "renamed a group",
    AuditAction.GROUP_DELETED: "deleted a group",
    AuditAction.GROUP_MEMBER_ADDED: "added someone to a group",
    AuditAction.GROUP_MEMBER_REMOVED: "removed someone from a group",
    AuditAction.PROJECT_CREATED: "created a project",
    AuditAction.PROJECT_RENAMED: "renamed a project",
    AuditAction.PROJECT_VISIBILITY_CHANGED: "changed a project's visibility",
    AuditAction.PROJECT_STATUS_CHANGED: "archived or unarchived a project",
    AuditAction.GRANT_SET: "granted project access",
    AuditAction.GRANT_REMOVED: "removed project access",
    AuditAction.USER_PROFILE_CHANGED: "changed their name or email",
    AuditAction.USER_PASSWORD_CHANGED: "changed their password",
    AuditAction.USER_DEACTIVATED: "deactivated an account",
    AuditAction.USER_REACTIVATED: "reactivated an account",
    AuditAction.SERVER_ADMIN_GRANTED: "made someone server admin",
    AuditAction.SERVER_ADMIN_REVOKED: "revoked server admin",
    AuditAction.RECORD_DELETED: "deleted a record",
    AuditAction.RECORD_SCOPE_MOVED: "moved a record to another scope",
    AuditAction.ORGANISATION_SETTING_CHANGED: "changed an organisation setting",
}

DETAIL_LABELS = {
    "old": "from", "new": "to", "from": "from", "role": "role", "via": "via", "holder": "for", "user_id": "person",
    "member_ids": "members", "name": "name", "key": "key", "email": "only for", "sessions_ended": "sessions ended",
    "other_sessions_signed_out": "other sessions signed out", "old_name": "old name", "new_name": "new name",
    "old_email": "old email", "new_email": "new email", "setting": "setting", "visibility": "visibility",
}


@dataclass(frozen=True)
class AuditRow:
    entry: AuditEntry
    who: str
    action: str  # in words; ``entry.action.value`` is the code the filter takes
    target: str
    details: tuple[tuple[str, str], ...]


def _ref(ref: str, page: AuditPage) -> str:
    kind, _, number = ref.partition(":")
    if not number.isdecimal():
        return ref  # a display ID (DOC-7) or free text: already readable
    tables: Mapping[str, Mapping[int, str]] = {"user": page.names, "project": page.projects, "group": page.groups}
    if kind in tables:
        return tables[kind].get(int(number), f"a deleted {kind}" if kind != "user" else "someone no longer here")
    return {"organisation": "this organisation", "invite": f"invite {number}", "export": f"export {number}"}.get(
        kind, ref)


def _value(key: str, value: object, page: AuditPage) -> str:
    if value is None:
        return "anyone" if key == "email" else "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if key == "user_id" and isinstance(value, int):
        return page.names.get(value, "someone no longer here")
    if key == "member_ids" and isinstance(value, list | tuple):
        return ", ".join(page.names.get(u, "someone no longer here") for u in value) or "nobody"
    if key == "holder":
        return _ref(str(value), page)
    return str(value).replace("_", " ") if key in ("role", "old", "new", "from", "visibility") else str(value)


def audit_rows(page: AuditPage) -> list[AuditRow]:
    return [AuditRow(e, page.names.get(e.actor_id, "the system") if e.actor_id is not None else "the system",
                     ACTIONS.get(e.action, e.action.value.replace("_", " ").replace(".", ": ")), _ref(e.target, page),
                     tuple((DETAIL_LABELS.get(k, k.replace("_", " ")), _value(k, v, page))
                           for k, v in e.details.items()))
            for e in page.entries]
