"""Reading the audit log (owners/admins).
"""

from __future__ import annotations

from tow_core.access import (
    Principal,
)
from tow_core.audit import AuditEntry, AuditQuery, require_audit_reader
from tow_core.errors import InvalidInput
from tow_core.identity import (
    AuditTrail,
)

# --- audit log --------------------------------------------------------------------------------


def list_audit(
    directory: AuditTrail, principal: Principal, *, org_id: int | None, query: AuditQuery, cursor: str | None,
    limit: int,
) -> tuple[list[AuditEntry], str | None]:
    """Owners/admins list their organisation's audit log, newest first; server admins list the server
    level (``org_id`` None). Filters: actions, actor, target, time range."""
    require_audit_reader(principal, org_id)
    if not 1 <= limit <= 200:
        raise InvalidInput("limit must be from 1 to 200", field="limit")
    return directory.audit_entries(org_id, query, cursor=cursor, limit=limit)
