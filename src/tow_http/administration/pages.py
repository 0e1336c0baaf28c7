"""Organisation settings (members, groups, invites, projects and grants, access review, audit log) and
server settings for server admins (SPEC §1, §2, §8): the same use cases as the JSON API.
"""

from __future__ import annotations

from datetime import timedelta

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException

from tow_core import accounts, administration
from tow_core.access import OrgRole, ProjectRole, Visibility
from tow_core.audit import AuditQuery, audit_actions
from tow_core.errors import InvalidInput
from tow_http.context import Services, SignedIn, in_unit_of_work
from tow_http.pages.images import managed_project_ids, member_avatars
from tow_http.pages.web import Form, member_names, page, redirect, shell_for

MAX_INVITE_HOURS = accounts.InvitePolicy().max_lifetime // timedelta(hours=1)

SETTINGS = "/o/{org_id:int}/settings"


def _settings_link(org_id: int, anchor: str = "") -> str:
    return f"/o/{org_id}/settings{'#' + anchor if anchor else ''}"


@get(SETTINGS, sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def settings_page(request: Request, org_id: int, signed_in: NamedDependency[SignedIn],
                  services: NamedDependency[Services], project: str | None = None) -> Response:
    shell = shell_for(signed_in, org_id, project, "settings")
    d, p = signed_in.directory, signed_in.principal
    members = administration.list_members(d, p, org_id=org_id)
    groups = administration.list_groups(d, p, org_id=org_id)
    manages = shell.manages_org
    invites = accounts.list_invites(d, p, org_id=org_id) if manages else []
    projects = administration.list_projects(d, p, org_id=org_id)
    grants = {pr.id: administration.list_grants(d, p, org_id=org_id, project_id=pr.id) for pr in projects}
    return page(request, "settings.html", shell=shell, members=members, groups=groups, invites=invites,
                projects=projects, grants=grants, now=signed_in.now, org_roles=[r.value for r in OrgRole],
                project_roles=[r.value for r in ProjectRole], visibilities=[v.value for v in Visibility],
                names={m.user_id: m.display_name for m in members}, group_names={g.id: g.name for g in groups},
                avatars=member_avatars(signed_in, [m.user_id for m in members]),
                managed_projects=managed_project_ids(signed_in, projects),
                uploads_enabled=services.upload_store is not None)


@post(f"{SETTINGS}/members/{{user_id:int}}/role", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def change_role(request: Request, org_id: int, user_id: int, form: NamedDependency[Form],
                signed_in: NamedDependency[SignedIn]) -> Response:
    administration.change_member_role(signed_in.directory, signed_in.principal, org_id=org_id, user_id=user_id,
                                      role=form.get("role"))
    return redirect(request, _settings_link(org_id, "members"))


@post(f"{SETTINGS}/groups", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def create_group(request: Request, org_id: int, form: NamedDependency[Form], signed_in: NamedDependency[SignedIn]
                 ) -> Response:
    administration.create_group(signed_in.directory, signed_in.principal, org_id=org_id, name=form.get("name"))
    return redirect(request, _settings_link(org_id, "groups"))


@post(f"{SETTINGS}/groups/{{group_id:int}}/members", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def add_group_member(request: Request, org_id: int, group_id: int, form: NamedDependency[Form],
                     signed_in: NamedDependency[SignedIn]) -> Response:
    user_id = form.integer("user_id", "member")
    if user_id is None:
        raise InvalidInput("choose a member to add", field="user_id")
    administration.add_group_member(signed_in.directory, signed_in.principal, org_id=org_id, group_id=group_id,
                                    user_id=user_id)
    return redirect(request, _settings_link(org_id, "groups"))


def _org_role(value: str) -> OrgRole:
    try:
        return OrgRole(value)
    except ValueError as exc:
        raise InvalidInput("role must be owner, admin or member", field="role") from exc


@post(f"{SETTINGS}/invites", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def create_invite(request: Request, org_id: int, form: NamedDependency[Form], signed_in: NamedDependency[SignedIn],
                  services: NamedDependency[Services]) -> Response:
    """Shows the invite link once, in the page that asked for it: only its hash is stored."""
    token = services.cookie_signer.new_token()
    hours = form.integer("expires_in_hours", "expiry in hours", minimum=1, maximum=MAX_INVITE_HOURS) or 7 * 24
    email = form.get("email").strip() or None
    role = _org_role(form.get("role", "member"))
    invite = accounts.create_invite(
        signed_in.directory, signed_in.principal, org_id=org_id, token_hash=services.cookie_signer.token_hash(token),
        role=role, email=email, now=signed_in.now, lifetime=timedelta(hours=hours))
    base = services.settings.runtime.public_app_url.rstrip("/")
    return page(request, "_invite_created.html", link=f"{base}/invite/{token}", invite=invite)


@post(f"{SETTINGS}/invites/{{invite_id:int}}/revoke", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def revoke_invite(request: Request, org_id: int, invite_id: int, form: NamedDependency[Form],
                  signed_in: NamedDependency[SignedIn]) -> Response:
    accounts.revoke_invite(signed_in.directory, signed_in.principal, org_id=org_id, invite_id=invite_id,
                           now=signed_in.now)
    return redirect(request, _settings_link(org_id, "invites"))


@post(f"{SETTINGS}/projects", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def create_project(request: Request, org_id: int, form: NamedDependency[Form], signed_in: NamedDependency[SignedIn]
                   ) -> Response:
    administration.create_project(
        signed_in.directory, signed_in.principal, org_id=org_id, key=form.get("key").strip().upper(),
        name=form.get("name"), visibility=form.get("visibility"), description=form.get("description"))
    return redirect(request, _settings_link(org_id, "projects"))


@post(f"{SETTINGS}/projects/{{project_id:int}}/grants", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def put_grant(request: Request, org_id: int, project_id: int, form: NamedDependency[Form],
              signed_in: NamedDependency[SignedIn]) -> Response:
    holder = form.get("holder")  # "user:5" or "group:2"
    kind, _, ref = holder.partition(":")
    if kind not in ("user", "group") or not ref.isdecimal():
        raise InvalidInput("choose a member or a group to grant", field="holder")
    administration.put_grant(signed_in.directory, signed_in.principal, org_id=org_id, project_id=project_id,
                             role=form.get("role"), user_id=int(ref) if kind == "user" else None,
                             group_id=int(ref) if kind == "group" else None)
    return redirect(request, _settings_link(org_id, f"project-{project_id}"))


@post(f"{SETTINGS}/projects/{{project_id:int}}/grants/{{grant_id:int}}/remove", sync_to_thread=True,
      include_in_schema=False)
@in_unit_of_work
def remove_grant(request: Request, org_id: int, project_id: int, grant_id: int, form: NamedDependency[Form],
                 signed_in: NamedDependency[SignedIn]) -> Response:
    administration.remove_grant(signed_in.directory, signed_in.principal, org_id=org_id, project_id=project_id,
                                grant_id=grant_id)
    return redirect(request, _settings_link(org_id, f"project-{project_id}"))


@get(f"{SETTINGS}/access", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def access_review(request: Request, org_id: int, signed_in: NamedDependency[SignedIn], project: str | None = None
                  ) -> Response:
    shell = shell_for(signed_in, org_id, project, "settings")
    review = administration.access_review(signed_in.directory, signed_in.principal, org_id=org_id)
    return page(request, "access.html", shell=shell, review=review)


@get(f"{SETTINGS}/audit", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def audit_log(request: Request, org_id: int, signed_in: NamedDependency[SignedIn], project: str | None = None,
              action: str | None = None, cursor: str | None = None) -> Response:
    shell = shell_for(signed_in, org_id, project, "settings")
    query = AuditQuery(actions=audit_actions([action] if action else None))
    entries, next_cursor = administration.list_audit(signed_in.directory, signed_in.principal, org_id=org_id,
                                                     query=query, cursor=cursor, limit=100)
    names = member_names(signed_in, org_id)
    return page(request, "audit.html", shell=shell, entries=entries, next_cursor=next_cursor, action=action or "",
                names=names)


@get("/server", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def server_settings(request: Request, signed_in: NamedDependency[SignedIn], services: NamedDependency[Services]
                    ) -> Response:
    """Server admins: every configuration value with where it came from, secrets masked."""
    if not signed_in.principal.is_server_admin:
        raise NotFoundException("no such page")  # like every invisible thing: it does not exist for you
    admins = administration.list_server_admins(signed_in.directory, signed_in.principal)
    orgs = accounts.own_organisations(signed_in.directory, signed_in.principal)
    home = f"/o/{orgs[0][0].id}/memory" if orgs else "/welcome"
    return page(request, "server.html", configuration=services.configuration, admins=admins, home=home,
                ai=services.ai.status if services.ai else None)


ADMIN_PAGES = [settings_page, change_role, create_group, add_group_member, create_invite, revoke_invite,
               create_project, put_grant, remove_grant, access_review, audit_log, server_settings]
