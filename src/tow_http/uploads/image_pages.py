"""Avatars and logos in the browser (SPEC §5): a user sets or clears their profile image on their
profile page; owners/admins the organisation logo (organisation settings); project managers a project
logo (project settings). The same use cases as ``PUT /api/me/avatar`` and the logo routes.

A page form sends the image itself (multipart, CSRF token first). Like the attach form, the file is
streamed to the upload store with no database connection held; then one transaction records the
upload and makes it the image — so a file that is not a PNG/JPEG/GIF/WebP image (judged by content)
is refused with a message and nothing is kept. ``UploadUseCases`` runs both units of work and checks
who may change the image before a byte of it is read.
"""

from __future__ import annotations

from urllib.parse import urlencode

from anyio import to_thread
from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from tow_core.access_tokens import TokenPolicy
from tow_core.notifications import DESCRIPTIONS
from tow_core.unit_of_work import Credential
from tow_core.use_cases.uploads import UploadUseCases
from tow_http.config import Settings
from tow_http.pages.web import Form, Shell, page, redirect
from tow_http.uploads.pages import form_file

PROFILE = "/o/{org_id:int}/profile"
ORG_LOGO = "/o/{org_id:int}/settings/logo"
PROJECT_LOGO = "/o/{org_id:int}/settings/projects/{project_id:int}/logo"


def _with_project(url: str, project_key: str) -> str:
    """Back to ``url`` keeping the picked project (from the form or the form's action URL)."""
    return f"{url}?{urlencode({'project': project_key})}" if project_key else url


# --- your profile image -----------------------------------------------------------------------------


@get(PROFILE, sync_to_thread=True, include_in_schema=False)
def profile_page(request: Request, org_id: int, caller: NamedDependency[Credential],
                 uploads: NamedDependency[UploadUseCases], settings: NamedDependency[Settings],
                 project: str | None = None, saved: str = "") -> Response:
    """``saved``: which of the account forms (``accounts.profile_pages``) was just saved, to say so."""
    framed = uploads.profile(caller, org_id, project)
    profile, policy = framed.content, TokenPolicy.up_to(settings.auth.token_max_days)
    return page(request, "profile.html", shell=Shell(framed.frame, "profile"), uploads_enabled=profile.uploads_enabled,
                tokens=profile.tokens, now=profile.now, max_days=policy.max_days, default_days=policy.default_days,
                token_orgs=[(str(org.id), f"{org.name} only") for org, _ in framed.frame.memberships], saved=saved,
                notification_preferences=[(kind.value, DESCRIPTIONS[kind], delivery.value)
                                          for kind, delivery in profile.notifications.items()],
                notification_digest=profile.digest.value)


@post(f"{PROFILE}/avatar", include_in_schema=False, request_max_body_size=None)
async def set_avatar(request: Request, org_id: int, caller: NamedDependency[Credential],
                     uploads: NamedDependency[UploadUseCases], project: str = "") -> Response:
    await to_thread.run_sync(uploads.receive_avatar, caller, org_id, form_file(request, noun="image"))
    return redirect(request, _with_project(f"/o/{org_id}/profile", project))


@post(f"{PROFILE}/avatar/clear", sync_to_thread=True, include_in_schema=False)
def clear_avatar(request: Request, org_id: int, form: NamedDependency[Form], caller: NamedDependency[Credential],
                 uploads: NamedDependency[UploadUseCases]) -> Response:
    uploads.set_avatar(caller, None)
    return redirect(request, _with_project(f"/o/{org_id}/profile", form.get("project")))


# --- organisation and project logos -----------------------------------------------------------------


@post(ORG_LOGO, include_in_schema=False, request_max_body_size=None)
async def set_org_logo(request: Request, org_id: int, caller: NamedDependency[Credential],
                       uploads: NamedDependency[UploadUseCases], project: str = "") -> Response:
    await to_thread.run_sync(uploads.receive_organisation_logo, caller, org_id, form_file(request, noun="image"))
    return redirect(request, _with_project(f"/o/{org_id}/settings", project) + "#logo")


@post(f"{ORG_LOGO}/clear", sync_to_thread=True, include_in_schema=False)
def clear_org_logo(request: Request, org_id: int, form: NamedDependency[Form],
                   caller: NamedDependency[Credential], uploads: NamedDependency[UploadUseCases]) -> Response:
    uploads.set_organisation_logo(caller, org_id, None)
    return redirect(request, _with_project(f"/o/{org_id}/settings", form.get("project")) + "#logo")


@post(PROJECT_LOGO, include_in_schema=False, request_max_body_size=None)
async def set_project_logo(request: Request, org_id: int, project_id: int, caller: NamedDependency[Credential],
                           uploads: NamedDependency[UploadUseCases], project: str = "") -> Response:
    await to_thread.run_sync(uploads.receive_project_logo, caller, org_id, project_id,
                             form_file(request, noun="image"))
    return redirect(request, _with_project(f"/o/{org_id}/settings", project) + f"#project-{project_id}")


@post(f"{PROJECT_LOGO}/clear", sync_to_thread=True, include_in_schema=False)
def clear_project_logo(request: Request, org_id: int, project_id: int, form: NamedDependency[Form],
                       caller: NamedDependency[Credential], uploads: NamedDependency[UploadUseCases]
                       ) -> Response:
    uploads.set_project_logo(caller, org_id, project_id, None)
    return redirect(request, _with_project(f"/o/{org_id}/settings", form.get("project")) + f"#project-{project_id}")


IMAGE_PAGES = [profile_page, set_avatar, clear_avatar, set_org_logo, clear_org_logo, set_project_logo,
               clear_project_logo]
