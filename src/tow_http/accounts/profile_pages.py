"""Your profile in the browser (SPEC §1, §3): name, email (confirmed with your current password) and password
(other sessions signed out, this one kept), through the same use case as ``PATCH /api/me`` and
``PUT /api/me/password``. The page itself is ``uploads.image_pages.profile_page`` (it also holds the avatar)."""

from __future__ import annotations

from urllib.parse import urlencode

from litestar import Request, Response, post
from litestar.di import NamedDependency

from tow_core.unit_of_work import Credential
from tow_core.use_cases.accounts import AccountUseCases
from tow_http.context import client_ip
from tow_http.pages.web import Form, redirect

PROFILE = "/o/{org_id:int}/profile"


def _back(org_id: int, form: Form, saved: str) -> str:
    query = {"saved": saved, **({"project": form.get("project")} if form.get("project") else {})}
    return f"/o/{org_id}/profile?{urlencode(query)}#{saved}"


@post(f"{PROFILE}/details", sync_to_thread=True, include_in_schema=False)
def save_profile_details(request: Request, org_id: int, form: NamedDependency[Form],
                         caller: NamedDependency[Credential],
                         accounts: NamedDependency[AccountUseCases]) -> Response:
    """Name and email; an unchanged email needs no password (the use case compares)."""
    accounts.change_profile(caller, display_name=form.get("display_name"), email=form.get("email"),
                            current_password=form.get("current_password"), client_ip=client_ip(request))
    return redirect(request, _back(org_id, form, "details"))


@post(f"{PROFILE}/password", sync_to_thread=True, include_in_schema=False)
def save_profile_password(request: Request, org_id: int, form: NamedDependency[Form],
                          caller: NamedDependency[Credential],
                          accounts: NamedDependency[AccountUseCases]) -> Response:
    accounts.change_password(caller, current_password=form.get("current_password"),
                             new_password=form.get("new_password"), client_ip=client_ip(request))
    return redirect(request, _back(org_id, form, "password"))


PROFILE_PAGES = [save_profile_details, save_profile_password]
