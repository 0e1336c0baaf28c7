"""Exports in the browser (SPEC §5): request one (a background job), watch its status, download it.
The same use cases as ``/api/exports``; the download link is that route's, which lets only the
requester download and records every download in the audit log. An export whose requester's access
shrank since it was made shows why instead of a download link."""

from __future__ import annotations

from datetime import timedelta

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from tow_core import exports as export_rules
from tow_http.context import Services, SignedIn, in_unit_of_work
from tow_http.pages.web import Form, page, redirect, shell_for


@get("/o/{org_id:int}/exports", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def exports_page(request: Request, org_id: int, signed_in: NamedDependency[SignedIn], project: str | None = None
                 ) -> Response:
    shell = shell_for(signed_in, org_id, project, "exports")
    mine = [e for e in export_rules.list_own_exports(signed_in.directory, signed_in.exports, signed_in.principal)
            if e.request.organisation_id == org_id]
    return page(request, "exports.html", shell=shell, exports=mine,
                working=any(e.request.status.value in ("queued", "running") for e in mine))


@post("/o/{org_id:int}/exports", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def request_export(request: Request, org_id: int, form: NamedDependency[Form], signed_in: NamedDependency[SignedIn],
                   services: NamedDependency[Services]) -> Response:
    export_rules.request_export(
        signed_in.directory, signed_in.exports, signed_in.jobs, signed_in.principal, org_id=org_id,
        kind=export_rules.parse_kind(form.get("kind", "member")), now=signed_in.now,
        retention=timedelta(hours=services.settings.exports.retention_hours))
    return redirect(request, f"/o/{org_id}/exports")


EXPORT_PAGES = [exports_page, request_export]
