"""Generating a snapshot in the browser (issue 14 item 2): the Snapshots page's "Generate" form, and the
fragment a generating snapshot's page polls (HTMX, every 2 seconds, like the chat page) until the run ends;
then it asks the browser to reload the page (``HX-Refresh``), which shows the draft for review."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from tow_core.records import DisplayId
from tow_core.unit_of_work import Credential
from tow_core.use_cases.snapshots import SnapshotUseCases
from tow_http.pages.web import Form, page, redirect

Snapshots = NamedDependency[SnapshotUseCases]


@post("/o/{org_id:int}/generate-snapshot", sync_to_thread=True, include_in_schema=False)
def generate(request: Request, org_id: int, form: NamedDependency[Form], caller: NamedDependency[Credential],
             snapshots: Snapshots) -> Response:
    """The form's ``scope`` is ``all`` or the picked project's key (``project``). Not under ``/o/{id}/snapshots/``:
    a static segment there would shadow the Snapshots list page's ``/o/{id}/{section}``."""
    project = form.get("project").strip()
    started = snapshots.generate(caller, org_id, snapshot_type=form.get("snapshot_type"),
                                 title=form.get("title"), project_key=project if form.get("scope") != "all" else None)
    suffix = f"?project={project}" if project else ""
    return redirect(request, f"/o/{org_id}/r/{started.snapshot.display_id}{suffix}")


@get("/o/{org_id:int}/r/{display_id:str}/generation", sync_to_thread=True, include_in_schema=False)
def generation(request: Request, org_id: int, display_id: str, caller: NamedDependency[Credential],
               snapshots: Snapshots) -> Response:
    record, found = snapshots.provenance(caller, org_id, DisplayId.parse(display_id))
    response = page(request, "_snapshot_generation.html", record=record, provenance=found, org_id=org_id)
    if record.status != "generating" and request.headers.get("hx-request"):
        response.headers["HX-Refresh"] = "true"
    return response


SNAPSHOT_PAGES = [generate, generation]
