"""A doc's revisions in the browser (issue 18): one version rendered, the line diff between two versions, and
Restore (a CSRF-checked form that saves the old text as the next version). Access is exactly as reading the
doc: for anyone else each page is 404. Rules in ``tow_core.revisions``."""

from __future__ import annotations

from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from tow_core.errors import InvalidInput
from tow_core.records import DisplayId
from tow_core.unit_of_work import Credential
from tow_core.use_cases.revision_pages import RevisionPageUseCases
from tow_http.pages.web import Form, Shell, page, redirect

Caller = NamedDependency[Credential]
Revisions = NamedDependency[RevisionPageUseCases]
RECORD = "/o/{org_id:int}/r/{display_id:str}"


def _back(org_id: int, display_id: str, project: str) -> str:
    return f"/o/{org_id}/r/{display_id}" + (f"?{urlencode({'project': project})}" if project else "")


@get(RECORD + "/revisions/{version:int}", sync_to_thread=True, include_in_schema=False)
def revision_page(request: Request, org_id: int, display_id: str, version: int, caller: Caller,
                  revision_pages: Revisions, project: str | None = None) -> Response:
    """One version of a doc, rendered as the doc page renders it, with Compare and Restore."""
    framed = revision_pages.version(caller, org_id, DisplayId.parse(display_id), version, project)
    view = framed.content
    return page(request, "revision.html", shell=Shell(framed.frame, "docs"), doc=view.doc, text=view.text,
                people=view.people, can_restore=view.can_restore, diff=None)


@get(RECORD + "/compare", sync_to_thread=True, include_in_schema=False)
def compare_page(request: Request, org_id: int, display_id: str, old: int, caller: Caller,
                 revision_pages: Revisions, new: int | None = None, project: str | None = None) -> Response:
    """What changed from version ``old`` to version ``new`` (the current one when left out), line by line."""
    framed = revision_pages.compare(caller, org_id, DisplayId.parse(display_id), old, new, project)
    return page(request, "revision.html", shell=Shell(framed.frame, "docs"), doc=framed.content.doc,
                diff=framed.content.diff, text=None, people={})


@post(RECORD + "/revisions/{version:int}/restore", sync_to_thread=True, include_in_schema=False)
def restore_revision(request: Request, org_id: int, display_id: str, version: int, form: NamedDependency[Form],
                     caller: Caller, revision_pages: Revisions) -> Response:
    """Save this version's title and text as the doc's next version (409 when it changed since the page loaded)."""
    expected = form.integer("version", "version")
    if expected is None:
        raise InvalidInput("the form lost the version it was loaded at: reload the page", field="version")
    revision_pages.restore(caller, org_id, DisplayId.parse(display_id), version, expected_version=expected)
    return redirect(request, _back(org_id, display_id, form.get("project")))


REVISION_PAGES = [revision_page, compare_page, restore_revision]
