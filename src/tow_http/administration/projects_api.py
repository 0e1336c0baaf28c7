"""Projects and their grants (SPEC §2). Rules live in ``tow_core.administration``."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from tow_core import administration
from tow_core.access import ProjectRole, Visibility
from tow_core.administration import MAX_DESCRIPTION_LENGTH
from tow_core.identity import Grant, Project, ProjectStatus
from tow_core.unit_of_work import Credential
from tow_core.use_cases.administration import ProjectUseCases
from tow_http.administration.organisations_api import unset_to_none
from tow_http.shapes import END, Id, Name, Strict

# identity.check_project_key: 2–10 upper-case letters or digits, at least one letter
Key = Annotated[str, msgspec.Meta(min_length=2, max_length=10, pattern=f"^[A-Z0-9]*[A-Z][A-Z0-9]*{END}",
                                  description="2–10 upper-case letters or digits, at least one letter, e.g. APP")]
Description = Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION_LENGTH)]

VISIBILITY_RULES = (
    '**Visibility.** `open`: every member of the organisation can **read AND write** the project — "open" '
    "means writable by all, not just visible to all; a grant on an open project can raise a member to lead/admin "
    "but never lower anyone below member. `restricted`: only users granted directly or through a group, plus "
    "organisation owners/admins, can read it; grantees whose role writes (member, lead, admin — not viewer), "
    "plus owners/admins, can write. Restricted projects protect project-scoped access; they are **not tenant "
    "isolation**: everyone in the organisation still shares its organisation-scoped records, members and groups. "
    "A project you cannot read answers 404, as if it did not exist."
)


# --- shapes -----------------------------------------------------------------------------------


class ProjectIn(Strict):
    key: Key
    name: Name
    visibility: Visibility
    description: Description = ""
    lead_user_id: Id | None = None


class ProjectPatch(Strict):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    lead_user_id: Id | None | msgspec.UnsetType = msgspec.UNSET  # null clears the lead
    visibility: Visibility | msgspec.UnsetType = msgspec.UNSET
    status: ProjectStatus | msgspec.UnsetType = msgspec.UNSET


class ProjectOut(msgspec.Struct):
    id: int
    organisation_id: int
    key: str
    name: str
    description: str
    lead_user_id: int | None
    visibility: str
    status: str


class GrantIn(Strict):
    role: ProjectRole
    user_id: Id | None = None
    group_id: Id | None = None


class GrantOut(msgspec.Struct):
    id: int
    project_id: int
    user_id: int | None
    group_id: int | None
    role: str


def project_out(project: Project) -> ProjectOut:
    return ProjectOut(
        project.id,
        project.organisation_id,
        project.key,
        project.name,
        project.description,
        project.lead_user_id,
        project.visibility.value,
        project.status.value,
    )


def grant_out(grant: Grant) -> GrantOut:
    return GrantOut(grant.id, grant.project_id, grant.user_id, grant.group_id, grant.role.value)


# --- projects ---------------------------------------------------------------------------------


@get(
    "/organisations/{org_id:int}/projects",
    summary="Projects you can read",
    description="Any member; lists only the projects you can read (every open project, restricted ones you are "
    "granted, all of them for owners/admins). Optional `status` filter (`active` / `archived`).\n\n" + VISIBILITY_RULES,
    sync_to_thread=True,
)
def list_projects(
    org_id: int, caller: NamedDependency[Credential], projects: NamedDependency[ProjectUseCases],
    status: ProjectStatus | None = None,
) -> list[ProjectOut]:
    return [project_out(p) for p in projects.projects(caller, org_id, status=status)]


@post(
    "/organisations/{org_id:int}/projects",
    summary="Create a project (owners/admins)",
    description="Owners and admins. `key` is 2–10 upper-case letters/digits, unique in the organisation (409) "
    "and fixed forever: it prefixes ticket keys. `visibility` is required. `lead_user_id` must name a member of "
    "the organisation (422).\n\n" + VISIBILITY_RULES,
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
)
def create_project(
    org_id: int, data: JSONBody[ProjectIn], caller: NamedDependency[Credential],
    projects: NamedDependency[ProjectUseCases],
) -> ProjectOut:
    project = projects.create_project(caller, org_id, key=data.key, name=data.name, visibility=data.visibility,
                                      description=data.description, lead_user_id=data.lead_user_id)
    return project_out(project)


@get(
    "/organisations/{org_id:int}/projects/{project_id:int}",
    summary="A project",
    description="404 unless the project is in this organisation and you can read it.\n\n" + VISIBILITY_RULES,
    sync_to_thread=True,
)
def get_project(
    org_id: int, project_id: int, caller: NamedDependency[Credential],
    projects: NamedDependency[ProjectUseCases],
) -> ProjectOut:
    return project_out(projects.project(caller, org_id, project_id))


@patch(
    "/organisations/{org_id:int}/projects/{project_id:int}",
    summary="Change a project's settings, visibility or status",
    description="Managers: organisation owners/admins and the project's leads/admins (others who can read it: "
    "403). Absent fields are left unchanged; `lead_user_id: null` clears the lead, otherwise it must name a member "
    "of the organisation (422). Archive with `status: archived`, unarchive with `active`. The key never changes. "
    "Making a project `open` makes it readable **and writable** by every member on the next request.\n\n"
    + VISIBILITY_RULES,
    sync_to_thread=True,
)
def update_project(
    org_id: int, project_id: int, data: JSONBody[ProjectPatch], caller: NamedDependency[Credential],
    projects: NamedDependency[ProjectUseCases],
) -> ProjectOut:
    lead = administration.UNCHANGED if data.lead_user_id is msgspec.UNSET else data.lead_user_id
    project = projects.update_project(
        caller, org_id, project_id, name=unset_to_none(data.name), description=unset_to_none(data.description),
        lead_user_id=lead, visibility=unset_to_none(data.visibility), status=unset_to_none(data.status),
    )
    return project_out(project)


# --- grants -----------------------------------------------------------------------------------


@get(
    "/organisations/{org_id:int}/projects/{project_id:int}/grants",
    summary="Who is granted what on a project",
    description="Anyone who can read the project (404 otherwise). A user's effective role is the highest of "
    "their direct grant and all their groups' grants; organisation owners/admins act as project admins.",
    sync_to_thread=True,
)
def list_grants(
    org_id: int, project_id: int, caller: NamedDependency[Credential],
    projects: NamedDependency[ProjectUseCases],
) -> list[GrantOut]:
    return [grant_out(g) for g in projects.grants(caller, org_id, project_id)]


@post(
    "/organisations/{org_id:int}/projects/{project_id:int}/grants",
    summary="Grant a role on a project (upsert)",
    description="Managers (organisation owners/admins, the project's leads/admins). Give exactly one of "
    "`user_id` (a member of this organisation, else 422 on `user_id`) and `group_id` (a group of this "
    "organisation, else 404). One grant per user or group: granting again replaces the role. Roles: `viewer` "
    "reads; `member` also writes; `lead` and `admin` also manage grants, visibility and settings. On an open "
    "project everyone already reads and writes, so a grant only matters when it raises someone to lead/admin. "
    "Answers 200 whether the grant was created or replaced.",
    status_code=HTTP_200_OK,
    sync_to_thread=True,
)
def put_grant(
    org_id: int, project_id: int, data: JSONBody[GrantIn], caller: NamedDependency[Credential],
    projects: NamedDependency[ProjectUseCases],
) -> GrantOut:
    grant = projects.put_grant(caller, org_id, project_id, role=data.role, user_id=data.user_id,
                               group_id=data.group_id)
    return grant_out(grant)


@delete(
    "/organisations/{org_id:int}/projects/{project_id:int}/grants/{grant_id:int}",
    summary="Remove a grant",
    description="Managers. 404 for a grant of any other project. The grantee loses what it gave on their very "
    "next request.",
    status_code=HTTP_204_NO_CONTENT,
    sync_to_thread=True,
)
def remove_grant(
    org_id: int, project_id: int, grant_id: int, caller: NamedDependency[Credential],
    projects: NamedDependency[ProjectUseCases],
) -> None:
    projects.remove_grant(caller, org_id, project_id, grant_id)


projects_router = Router(
    path="/api",
    route_handlers=[list_projects, create_project, get_project, update_project, list_grants, put_grant, remove_grant],
    tags=["projects"],
)
