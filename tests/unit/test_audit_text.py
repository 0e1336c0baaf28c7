"""The audit log in words (``tow_http.administration.audit_text``): people, projects and groups by name, never
``user:2``, ``project:1``, ``user_id=2`` or ``email=None``; someone or something no longer there says so."""

from __future__ import annotations

from datetime import UTC, datetime

from tow_core.audit import AuditAction, AuditEntry
from tow_core.use_cases.administration import AuditPage
from tow_http.administration.audit_text import audit_rows

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_audit_rows_name_people_projects_and_groups_and_say_when_they_are_gone():
    entries = [
        AuditEntry(1, 1, AuditAction.INVITE_CREATED, "invite:4", {"role": "member", "email": None}, 6, AT),
        AuditEntry(1, 1, AuditAction.GRANT_SET, "project:3", {"holder": "group:2", "role": "viewer"}, 5, AT),
        AuditEntry(1, 1, AuditAction.GROUP_MEMBER_ADDED, "group:2", {"user_id": 2}, 4, AT),
        AuditEntry(1, 1, AuditAction.MEMBER_REMOVED, "user:9", {"role": "member"}, 3, AT),
        AuditEntry(1, None, AuditAction.PROJECT_STATUS_CHANGED, "project:8", {"old": "active", "new": "archived"}, 2,
                   AT),
    ]
    page = AuditPage(entries, None, {1: "Ada", 2: "Bob"}, {3: "APP — The app"}, {2: "Engineering"})
    rows = [(r.who, r.action, r.target, r.details) for r in audit_rows(page)]
    assert rows == [
        ("Ada", "created an invite", "invite 4", (("role", "member"), ("only for", "anyone"))),
        ("Ada", "granted project access", "APP — The app", (("for", "Engineering"), ("role", "viewer"))),
        ("Ada", "added someone to a group", "Engineering", (("person", "Bob"),)),
        ("Ada", "removed a member", "someone no longer here", (("role", "member"),)),
        ("the system", "archived or unarchived a project", "a deleted project", (("from", "active"), ("to", "archived"))),
    ]
    text = str(rows)
    for internal in ("user:", "project:", "group:", "user_id", "None"):
        assert internal not in text, internal
