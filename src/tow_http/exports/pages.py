"""Exports in the browser (SPEC §5): request one (a background job), watch its status, download it.
The same use cases as ``/api/exports``; the download link is that route's, which lets only the
requester download and records every download in the audit log. An export whose requester's access
shrank since it was made shows why instead of a download link."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from tow_core.unit_of_work import Credential
from tow_core.use_cases.exports import ExportUseCases
from tow_http.pages.web import Form, Shell, page, redirect


@get("/o/{org_id:int}/exports", sync_to_thread=True, include_in_schema=False)
def exports_page(request: Request, org_id: int, caller: NamedDependency[Credential],
                 exports: NamedDependency[ExportUseCases], project: str | None = None) -> Response:
    framed = exports.page(caller, org_id, project)
    return page(request, "exports.html", shell=Shell(framed.frame, "exports"), exports=framed.content.exports,
                working=framed.content.working)


@post("/o/{org_id:int}/exports", sync_to_thread=True, include_in_schema=False)
def request_export(request: Request, org_id: int, form: NamedDependency[Form],
                   caller: NamedDependency[Credential], exports: NamedDependency[ExportUseCases]) -> Response:
    exports.request(caller, org_id, form.get("kind", "member"))
    return redirect(request, f"/o/{org_id}/exports")


EXPORT_PAGES = [exports_page, request_export]
