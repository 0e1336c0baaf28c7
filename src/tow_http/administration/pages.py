"""Organisation settings (members, groups, invites, projects and grants, access review, audit log) and
server settings for server admins (SPEC §1, §2, §8): the same use cases as the JSON API.
"""

from __future__ import annotations

from datetime import timedelta

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from tow_core import accounts
from tow_core.access import OrgRole, ProjectRole, Visibility
from tow_core.errors import InvalidInput
from tow_core.unit_of_work import Credential
from tow_core.use_cases.administration import AdminPageUseCases, OrganisationUseCases, ProjectUseCases
from tow_http.administration.audit_text import audit_rows
from tow_http.config import Settings
from tow_http.pages.web import Form, Shell, page, redirect

MAX_INVITE_HOURS = accounts.InvitePolicy().max_lifetime // timedelta(hours=1)

SETTINGS = "/o/{org_id:int}/settings"


def _settings_link(org_id: int, anchor: str = "") -> str:
    return f"/o/{org_id}/settings{'#' + anchor if anchor else ''}"


@get(SETTINGS, sync_to_thread=True, include_in_schema=False)
def settings_page(request: Request, org_id: int, caller: NamedDependency[Credential],
                  admin_pages: NamedDependency[AdminPageUseCases], project: str | None = None) -> Response:
    framed = admin_pages.settings(caller, org_id, project)
    settings = framed.content
    return page(request, "settings.html", shell=Shell(framed.frame, "settings"), members=settings.members,
                groups=settings.groups, invites=settings.invites, projects=settings.projects, grants=settings.grants,
                now=settings.now, org_roles=[r.value for r in OrgRole], project_roles=[r.value for r in ProjectRole],
                visibilities=[v.value for v in Visibility],
                names={m.user_id: m.display_name for m in settings.members},
                group_names={g.id: g.name for g in settings.groups}, avatars=settings.avatars,
                managed_projects=settings.managed_project_ids, uploads_enabled=settings.uploads_enabled)


@post(f"{SETTINGS}/memory-review", sync_to_thread=True, include_in_schema=False)
def memory_review_rules(request: Request, org_id: int, form: NamedDependency[Form],
                        caller: NamedDependency[Credential],
                        organisations: NamedDependency[OrganisationUseCases]) -> Response:
    """memory.require_second_reviewer: an unticked box is absent from the form, so absent means off."""
    organisations.update_organisation(caller, org_id, name=None, workflow_mode=None,
                                      require_second_reviewer=form.get("require_second_reviewer") == "on")
    return redirect(request, _settings_link(org_id, "memory-review"))


@post(f"{SETTINGS}/rename", sync_to_thread=True, include_in_schema=False)
def rename_organisation(request: Request, org_id: int, form: NamedDependency[Form],
                        caller: NamedDependency[Credential],
                        organisations: NamedDependency[OrganisationUseCases]) -> Response:
    organisations.update_organisation(caller, org_id, name=form.get("name"), workflow_mode=None,
                                      require_second_reviewer=None)
    return redirect(request, _settings_link(org_id))


@post(f"{SETTINGS}/members/{{user_id:int}}/role", sync_to_thread=True, include_in_schema=False)
def change_role(request: Request, org_id: int, user_id: int, form: NamedDependency[Form],
                caller: NamedDependency[Credential],
                organisations: NamedDependency[OrganisationUseCases]) -> Response:
    organisations.change_member_role(caller, org_id, user_id, form.get("role"))
    return redirect(request, _settings_link(org_id, "members"))


@post(f"{SETTINGS}/members/{{user_id:int}}/remove", sync_to_thread=True, include_in_schema=False)
def remove_member(request: Request, org_id: int, user_id: int, form: NamedDependency[Form],
                  caller: NamedDependency[Credential],
                  organisations: NamedDependency[OrganisationUseCases]) -> Response:
    """Owners/admins remove a member; anyone may remove themselves (leave), and then goes home."""
    organisations.remove_member(caller, org_id, user_id)
    return redirect(request, "/" if form.get("leaving") == "yes" else _settings_link(org_id, "members"))


@post(f"{SETTINGS}/members/{{user_id:int}}/active", sync_to_thread=True, include_in_schema=False)
def set_member_active(request: Request, org_id: int, user_id: int, form: NamedDependency[Form],
                      caller: NamedDependency[Credential],
                      organisations: NamedDependency[OrganisationUseCases]) -> Response:
    """``active=no`` deactivates the account (its sessions end at once), ``active=yes`` reactivates it."""
    value = form.get("active")
    if value not in ("yes", "no"):
        raise InvalidInput("active must be yes or no", field="active")
    organisations.set_member_active(caller, org_id, user_id, value == "yes")
    return redirect(request, _settings_link(org_id, "members"))


@post(f"{SETTINGS}/groups", sync_to_thread=True, include_in_schema=False)
def create_group(request: Request, org_id: int, form: NamedDependency[Form],
                 caller: NamedDependency[Credential],
                 organisations: NamedDependency[OrganisationUseCases]) -> Response:
    organisations.create_group(caller, org_id, form.get("name"))
    return redirect(request, _settings_link(org_id, "groups"))


@post(f"{SETTINGS}/groups/{{group_id:int}}/members", sync_to_thread=True, include_in_schema=False)
def add_group_member(request: Request, org_id: int, group_id: int, form: NamedDependency[Form],
                     caller: NamedDependency[Credential],
                     organisations: NamedDependency[OrganisationUseCases]) -> Response:
    user_id = form.integer("user_id", "member")
    if user_id is None:
        raise InvalidInput("choose a member to add", field="user_id")
    organisations.add_group_member(caller, org_id, group_id, user_id)
    return redirect(request, _settings_link(org_id, "groups"))


@post(f"{SETTINGS}/groups/{{group_id:int}}/members/{{user_id:int}}/remove", sync_to_thread=True,
      include_in_schema=False)
def remove_group_member(request: Request, org_id: int, group_id: int, user_id: int, form: NamedDependency[Form],
                        caller: NamedDependency[Credential],
                        organisations: NamedDependency[OrganisationUseCases]) -> Response:
    organisations.remove_group_member(caller, org_id, group_id, user_id)
    return redirect(request, _settings_link(org_id, f"group-{group_id}"))


@post(f"{SETTINGS}/groups/{{group_id:int}}/rename", sync_to_thread=True, include_in_schema=False)
def rename_group(request: Request, org_id: int, group_id: int, form: NamedDependency[Form],
                 caller: NamedDependency[Credential],
                 organisations: NamedDependency[OrganisationUseCases]) -> Response:
    organisations.rename_group(caller, org_id, group_id, form.get("name"))
    return redirect(request, _settings_link(org_id, f"group-{group_id}"))


@post(f"{SETTINGS}/groups/{{group_id:int}}/delete", sync_to_thread=True, include_in_schema=False)
def delete_group(request: Request, org_id: int, group_id: int, form: NamedDependency[Form],
                 caller: NamedDependency[Credential],
                 organisations: NamedDependency[OrganisationUseCases]) -> Response:
    """Reached through the confirmation the page shows (what the group granted goes with it)."""
    organisations.delete_group(caller, org_id, group_id)
    return redirect(request, _settings_link(org_id, "groups"))


def _org_role(value: str) -> OrgRole:
    try:
        return OrgRole(value)
    except ValueError as exc:
        raise InvalidInput("role must be owner, admin or member", field="role") from exc


@post(f"{SETTINGS}/invites", sync_to_thread=True, include_in_schema=False)
def create_invite(request: Request, org_id: int, form: NamedDependency[Form],
                  caller: NamedDependency[Credential], organisations: NamedDependency[OrganisationUseCases],
                  settings: NamedDependency[Settings]) -> Response:
    """Shows the invite link once, in the page that asked for it: only its hash is stored. "Send by email"
    (``send_email``) also emails the link to the address, which the invite is then bound to."""
    hours = form.integer("expires_in_hours", "expiry in hours", minimum=1, maximum=MAX_INVITE_HOURS) or 7 * 24
    email = form.get("email").strip() or None
    role = _org_role(form.get("role", "member"))
    created = organisations.create_invite(caller, org_id, role=role, email=email, lifetime=timedelta(hours=hours),
                                          send_email=form.get("send_email") == "on")
    base = settings.runtime.public_app_url.rstrip("/")
    return page(request, "_invite_created.html", link=f"{base}/invite/{created.token}", invite=created.invite,
                emailed=created.emailed)


@post(f"{SETTINGS}/invites/{{invite_id:int}}/revoke", sync_to_thread=True, include_in_schema=False)
def revoke_invite(request: Request, org_id: int, invite_id: int, form: NamedDependency[Form],
                  caller: NamedDependency[Credential],
                  organisations: NamedDependency[OrganisationUseCases]) -> Response:
    organisations.revoke_invite(caller, org_id, invite_id)
    return redirect(request, _settings_link(org_id, "invites"))


@post(f"{SETTINGS}/projects", sync_to_thread=True, include_in_schema=False)
def create_project(request: Request, org_id: int, form: NamedDependency[Form],
                   caller: NamedDependency[Credential], projects: NamedDependency[ProjectUseCases]
                   ) -> Response:
    projects.create_project(caller, org_id, key=form.get("key").strip().upper(), name=form.get("name"),
                            visibility=form.get("visibility"), description=form.get("description"))
    return redirect(request, _settings_link(org_id, "projects"))


@post(f"{SETTINGS}/projects/{{project_id:int}}/rename", sync_to_thread=True, include_in_schema=False)
def rename_project(request: Request, org_id: int, project_id: int, form: NamedDependency[Form],
                   caller: NamedDependency[Credential], projects: NamedDependency[ProjectUseCases]) -> Response:
    """The name only: the key is fixed (it prefixes ticket IDs)."""
    projects.update_project(caller, org_id, project_id, name=form.get("name"))
    return redirect(request, _settings_link(org_id, f"project-{project_id}"))


@post(f"{SETTINGS}/projects/{{project_id:int}}/visibility", sync_to_thread=True, include_in_schema=False)
def change_project_visibility(request: Request, org_id: int, project_id: int, form: NamedDependency[Form],
                              caller: NamedDependency[Credential],
                              projects: NamedDependency[ProjectUseCases]) -> Response:
    """Reached through the warning the page shows (who gains or loses access); applies on the next request."""
    projects.update_project(caller, org_id, project_id, visibility=form.required("visibility", "visibility"))
    return redirect(request, _settings_link(org_id, f"project-{project_id}"))


@post(f"{SETTINGS}/projects/{{project_id:int}}/status", sync_to_thread=True, include_in_schema=False)
def change_project_status(request: Request, org_id: int, project_id: int, form: NamedDependency[Form],
                          caller: NamedDependency[Credential],
                          projects: NamedDependency[ProjectUseCases]) -> Response:
    """Archive or unarchive (``status`` archived / active)."""
    projects.update_project(caller, org_id, project_id, status=form.required("status", "status"))
    return redirect(request, _settings_link(org_id, f"project-{project_id}"))


@post(f"{SETTINGS}/projects/{{project_id:int}}/grants", sync_to_thread=True, include_in_schema=False)
def put_grant(request: Request, org_id: int, project_id: int, form: NamedDependency[Form],
              caller: NamedDependency[Credential], projects: NamedDependency[ProjectUseCases]) -> Response:
    holder = form.get("holder")  # "user:5" or "group:2"
    kind, _, ref = holder.partition(":")
    if kind not in ("user", "group") or not ref.isdecimal():
        raise InvalidInput("choose a member or a group to grant", field="holder")
    projects.put_grant(caller, org_id, project_id, role=form.get("role"),
                       user_id=int(ref) if kind == "user" else None, group_id=int(ref) if kind == "group" else None)
    return redirect(request, _settings_link(org_id, f"project-{project_id}"))


@post(f"{SETTINGS}/projects/{{project_id:int}}/grants/{{grant_id:int}}/remove", sync_to_thread=True,
      include_in_schema=False)
def remove_grant(request: Request, org_id: int, project_id: int, grant_id: int, form: NamedDependency[Form],
                 caller: NamedDependency[Credential], projects: NamedDependency[ProjectUseCases]) -> Response:
    projects.remove_grant(caller, org_id, project_id, grant_id)
    return redirect(request, _settings_link(org_id, f"project-{project_id}"))


@get(f"{SETTINGS}/access", sync_to_thread=True, include_in_schema=False)
def access_review(request: Request, org_id: int, caller: NamedDependency[Credential],
                  admin_pages: NamedDependency[AdminPageUseCases], project: str | None = None) -> Response:
    framed = admin_pages.access_review(caller, org_id, project)
    return page(request, "access.html", shell=Shell(framed.frame, "settings"), review=framed.content)


@get(f"{SETTINGS}/audit", sync_to_thread=True, include_in_schema=False)
def audit_log(request: Request, org_id: int, caller: NamedDependency[Credential],
              admin_pages: NamedDependency[AdminPageUseCases], project: str | None = None,
              action: str | None = None, cursor: str | None = None) -> Response:
    framed = admin_pages.audit(caller, org_id, project, action=action, cursor=cursor)
    audit = framed.content
    return page(request, "audit.html", shell=Shell(framed.frame, "settings"), rows=audit_rows(audit),
                next_cursor=audit.next_cursor, action=action or "")


@get("/server", sync_to_thread=True, include_in_schema=False)
def server_settings(request: Request, caller: NamedDependency[Credential],
                    admin_pages: NamedDependency[AdminPageUseCases]) -> Response:
    """Server admins: every configuration value with where it came from, secrets masked."""
    server = admin_pages.server(caller)
    home = f"/o/{server.home_organisation_id}/today" if server.home_organisation_id is not None else "/welcome"
    return page(request, "server.html", configuration=server.configuration, admins=server.admins, home=home,
                ai=server.ai_status, dead_letters=server.dead_letters)


ADMIN_PAGES = [settings_page, rename_organisation, memory_review_rules, change_role, remove_member, set_member_active,
               create_group, add_group_member, remove_group_member, rename_group, delete_group, create_invite,
               revoke_invite, create_project, rename_project, change_project_visibility, change_project_status,
               put_grant, remove_grant, access_review, audit_log, server_settings]
