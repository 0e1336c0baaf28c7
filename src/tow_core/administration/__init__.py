"""Administration: organisations, members, groups, projects, grants, server admins, and explaining
access (SPEC §1, §2).

Rules:
- Deny by default without revealing existence (SPEC §2): an organisation the caller is not an active
  member of, a restricted project they cannot read, and any group, project, grant or member id that does
  not belong to the organisation named in the request are ``NotFound`` — every id in a request is
  checked against that organisation ("Every ID is checked"). Something the caller can see but may not
  change is ``AccessDenied``.
- Server admins create organisations (the creator becomes owner) and grant or revoke server admin; the
  server always keeps one active server admin. Server admin grants no organisation role (SPEC §1).
- Any member reads the organisation, its members, its groups, and the projects they can read.
- Owners and admins rename the organisation, change its workflow mode, and manage members, groups and
  projects. Only an owner may grant or remove the owner role; the organisation always keeps at least one
  active owner. Any member may leave, except its last active owner.
- A project is managed (name, description, lead, visibility, archive, grants) by organisation
  owners/admins and by holders of its lead or admin role. Its key is fixed at creation: it prefixes
  ticket keys.
- **Open projects are readable and writable by every member of the organisation** ("open" means writable
  by all). A grant on an open project can raise a member to lead/admin, never lower anyone below member.
- People named in a request (group member, grantee, project lead) must be members of the organisation,
  else ``InvalidInput`` on that field. Deactivated members stay eligible (their records and grants are
  kept; the access review lists grants they hold).
- The access explanation is for owners/admins, and for any member about themselves; the access review is
  for owners/admins.
- Nothing here caches a principal or a decision: a removed grant, group membership, membership or a
  visibility change applies on the very next request (SPEC §2 "Immediate revocation").
"""

from __future__ import annotations

from tow_core.administration._guards import MAX_DESCRIPTION_LENGTH, UNCHANGED, Unchanged
from tow_core.administration.access_explanation import (
    AccessExplanation,
    AccessReview,
    DeactivatedGrant,
    ReviewedGrant,
    ReviewedProject,
    ReviewedUser,
    access_review,
    explain_access,
)
from tow_core.administration.audit_log import (
    list_audit,
)
from tow_core.administration.groups import (
    add_group_member,
    create_group,
    delete_group,
    list_groups,
    remove_group_member,
    rename_group,
)
from tow_core.administration.organisations import (
    change_member_role,
    create_organisation,
    get_organisation,
    list_members,
    list_server_admins,
    remove_member,
    set_server_admin,
    set_user_active,
    update_organisation,
)
from tow_core.administration.projects import (
    create_project,
    get_project,
    list_grants,
    list_projects,
    put_grant,
    remove_grant,
    update_project,
)

__all__ = [
    "MAX_DESCRIPTION_LENGTH",
    "AccessExplanation",
    "AccessReview",
    "DeactivatedGrant",
    "ReviewedGrant",
    "ReviewedProject",
    "ReviewedUser",
    "UNCHANGED",
    "Unchanged",
    "access_review",
    "add_group_member",
    "change_member_role",
    "create_group",
    "create_organisation",
    "create_project",
    "delete_group",
    "explain_access",
    "get_organisation",
    "get_project",
    "list_audit",
    "list_grants",
    "list_groups",
    "list_members",
    "list_projects",
    "list_server_admins",
    "put_grant",
    "set_user_active",
    "remove_grant",
    "remove_group_member",
    "remove_member",
    "rename_group",
    "set_server_admin",
    "update_organisation",
    "update_project",
]
