"""Avatars and logos in the browser (SPEC §5): a user sets or clears their profile image on their
profile page; owners/admins the organisation logo (organisation settings); project managers a project
logo (project settings). The same use cases as ``PUT /api/me/avatar`` and the logo routes.

A page form sends the image itself (multipart, CSRF token first). Like the attach form, the file is
streamed to the upload store with no database connection held; then one transaction records the
upload and makes it the image — so a file that is not a PNG/JPEG/GIF/WebP image (judged by content)
is refused with a message and nothing is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from tow_core import attachments
from tow_core.access import Principal
from tow_core.attachments import UploadDesk
from tow_core.errors import InvalidInput
from tow_core.identity import Directory
from tow_core.uploads import RasterImageInspector
from tow_http.context import Services, SignedIn, Stores, in_unit_of_work, upload_desk, upload_services
from tow_http.multipart import FILE_FIELD
from tow_http.pages.web import Form, page, redirect, shell_for
from tow_http.uploads.pages import store_form_file

# Sets (an upload id) or clears (None) one image, in the transaction that recorded the upload.
ApplyImage = Callable[[UploadDesk, RasterImageInspector, int | None], object]
# Refuses (AccessDenied/NotFound) before a byte of the image is read; the use case checks again after.
MayChange = Callable[[Directory, Principal], None]

PROFILE = "/o/{org_id:int}/profile"
ORG_LOGO = "/o/{org_id:int}/settings/logo"
PROJECT_LOGO = "/o/{org_id:int}/settings/projects/{project_id:int}/logo"


def _avatar(d: UploadDesk, images: RasterImageInspector, upload_id: int | None) -> object:
    return attachments.set_avatar(d, images, upload_id)


def _org_logo(org_id: int) -> ApplyImage:
    return lambda d, images, upload_id: attachments.set_organisation_logo(d, images, org_id, upload_id)


def _project_logo(org_id: int, project_id: int) -> ApplyImage:
    return lambda d, images, upload_id: attachments.set_project_logo(d, images, org_id, project_id, upload_id)


def _anyone(directory: Directory, principal: Principal) -> None:
    """Everyone may change their own profile image."""


async def _receive_image(request: Request, services: Services, org_id: int, apply: ApplyImage,
                         may_change: MayChange = _anyone) -> None:
    """Stream the form's image into the store, then record it and apply it in one transaction."""
    images = upload_services(services)[1]

    def check(stores: Stores, principal: Principal) -> None:
        may_change(stores.directory, principal)

    def keep(upload_desk: UploadDesk, name: str, received: attachments.ReceivedFile) -> None:
        if received.image_format is None:  # say so before keeping a row for it
            raise InvalidInput("that file is not a PNG, JPEG, GIF or WebP image (judged by its content, "
                               "not its name); choose an image", field=FILE_FIELD)
        upload = attachments.record_upload(upload_desk, org_id=org_id, received=received, original_name=name)
        apply(upload_desk, images, upload.id)

    await store_form_file(request, services, org_id, noun="image", check=check, keep=keep)


def _clear(signed_in: SignedIn, services: Services, apply: ApplyImage) -> None:
    apply(upload_desk(signed_in, services), upload_services(services)[1], None)


def _with_project(url: str, project_key: str) -> str:
    """Back to ``url`` keeping the picked project (from the form or the form's action URL)."""
    return f"{url}?{urlencode({'project': project_key})}" if project_key else url


# --- your profile image -----------------------------------------------------------------------------


@get(PROFILE, sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def profile_page(request: Request, org_id: int, signed_in: NamedDependency[SignedIn],
                 services: NamedDependency[Services], project: str | None = None) -> Response:
    shell = shell_for(signed_in, org_id, project, "profile")
    return page(request, "profile.html", shell=shell, uploads_enabled=services.upload_store is not None)


@post(f"{PROFILE}/avatar", include_in_schema=False, request_max_body_size=None)
async def set_avatar(request: Request, org_id: int, services: NamedDependency[Services], project: str = ""
                     ) -> Response:
    await _receive_image(request, services, org_id, _avatar)
    return redirect(request, _with_project(f"/o/{org_id}/profile", project))


@post(f"{PROFILE}/avatar/clear", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def clear_avatar(request: Request, org_id: int, form: NamedDependency[Form], signed_in: NamedDependency[SignedIn],
                 services: NamedDependency[Services]) -> Response:
    _clear(signed_in, services, _avatar)
    return redirect(request, _with_project(f"/o/{org_id}/profile", form.get("project")))


# --- organisation and project logos -----------------------------------------------------------------


@post(ORG_LOGO, include_in_schema=False, request_max_body_size=None)
async def set_org_logo(request: Request, org_id: int, services: NamedDependency[Services], project: str = ""
                       ) -> Response:
    await _receive_image(request, services, org_id, _org_logo(org_id),
                         lambda _, principal: attachments.require_organisation_logo_rights(principal, org_id))
    return redirect(request, _with_project(f"/o/{org_id}/settings", project) + "#logo")


@post(f"{ORG_LOGO}/clear", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def clear_org_logo(request: Request, org_id: int, form: NamedDependency[Form], signed_in: NamedDependency[SignedIn],
                   services: NamedDependency[Services]) -> Response:
    _clear(signed_in, services, _org_logo(org_id))
    return redirect(request, _with_project(f"/o/{org_id}/settings", form.get("project")) + "#logo")


@post(PROJECT_LOGO, include_in_schema=False, request_max_body_size=None)
async def set_project_logo(request: Request, org_id: int, project_id: int, services: NamedDependency[Services],
                           project: str = "") -> Response:
    await _receive_image(request, services, org_id, _project_logo(org_id, project_id),
                         lambda directory, principal: attachments.require_project_logo_rights(
                             directory, principal, org_id, project_id))
    return redirect(request, _with_project(f"/o/{org_id}/settings", project) + f"#project-{project_id}")


@post(f"{PROJECT_LOGO}/clear", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def clear_project_logo(request: Request, org_id: int, project_id: int, form: NamedDependency[Form],
                       signed_in: NamedDependency[SignedIn], services: NamedDependency[Services]) -> Response:
    _clear(signed_in, services, _project_logo(org_id, project_id))
    return redirect(request, _with_project(f"/o/{org_id}/settings", form.get("project")) + f"#project-{project_id}")


IMAGE_PAGES = [profile_page, set_avatar, clear_avatar, set_org_logo, clear_org_logo, set_project_logo,
               clear_project_logo]
