"""The inbox and the Today page in the browser (issue 14 item 3). Each inbox item is acted on right there, by
the use case that owns it — so a stale diff shows the review's own Conflict message — and the page comes back."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException

from tow_core.errors import InvalidInput
from tow_core.records import DisplayId
from tow_core.unit_of_work import Credential
from tow_core.use_cases.chat import ChatUseCases
from tow_core.use_cases.inbox import InboxUseCases
from tow_core.use_cases.memory import MemoryReviewUseCases
from tow_core.use_cases.records import RecordUseCases
from tow_http.config import Settings
from tow_http.inbox.shapes import items_out
from tow_http.pages.web import Form, Shell, page, redirect, with_cookies

Caller = NamedDependency[Credential]
Inbox = NamedDependency[InboxUseCases]


def _back(org_id: int, form: Form, path: str = "/inbox") -> str:
    project = form.get("project").strip()
    return f"/o/{org_id}{path}" + (f"?project={project}" if project.isalnum() else "")


@get("/o/{org_id:int}", sync_to_thread=True, include_in_schema=False)
def org_home(request: Request, org_id: int, project: str | None = None) -> Response:
    """An organisation's home is its Today page."""
    suffix = f"?project={project}" if project and project.isalnum() else ""
    return redirect(request, f"/o/{org_id}/today{suffix}")


# Set (for this organisation's pages only) once the person hides the first-run checklist in this browser.
FIRST_STEPS_HIDDEN = "tow_first_steps_hidden"


@get("/o/{org_id:int}/today", sync_to_thread=True, include_in_schema=False)
def today(request: Request, org_id: int, caller: Caller, inbox: Inbox, project: str | None = None) -> Response:
    framed = inbox.today_page(caller, org_id, project, first_steps=request.cookies.get(FIRST_STEPS_HIDDEN) != "1")
    return page(request, "today.html", shell=Shell(framed.frame, "today"), today=framed.content)


@post("/o/{org_id:int}/today/hide-first-steps", sync_to_thread=True, include_in_schema=False)
def hide_first_steps(request: Request, org_id: int, form: NamedDependency[Form],
                     settings: NamedDependency[Settings]) -> Response:
    """The checklist's "Hide": remembered by this browser (a cookie for this organisation's pages)."""
    hidden = Cookie(key=FIRST_STEPS_HIDDEN, value="1", path=f"/o/{org_id}", max_age=400 * 24 * 3600, httponly=True,
                    secure=settings.security.session_cookie_secure, samesite="lax")
    return with_cookies(redirect(request, _back(org_id, form, "/today")), [hidden])


@get("/o/{org_id:int}/inbox", sync_to_thread=True, include_in_schema=False)
def inbox_page(request: Request, org_id: int, caller: Caller, inbox: Inbox, project: str | None = None) -> Response:
    framed = inbox.inbox_page(caller, org_id, project)
    return page(request, "inbox.html", shell=Shell(framed.frame, "inbox"), counts=framed.content.counts,
                items=items_out(org_id, framed.content))


@post("/o/{org_id:int}/inbox/diffs/{diff_id:int}/{decision:str}", sync_to_thread=True, include_in_schema=False)
def decide_diff(request: Request, org_id: int, diff_id: int, decision: str, form: NamedDependency[Form],
                caller: Caller, memory: NamedDependency[MemoryReviewUseCases]) -> Response:
    if decision not in ("approve", "reject"):
        raise NotFoundException(f"no decision {decision}")
    decide_as = memory.approve if decision == "approve" else memory.reject
    decide_as(caller, org_id, diff_id, note=form.get("note"))
    return redirect(request, _back(org_id, form))


@post("/o/{org_id:int}/inbox/snapshots/{display_id:str}/activate", sync_to_thread=True, include_in_schema=False)
def activate_snapshot(request: Request, org_id: int, display_id: str, form: NamedDependency[Form], caller: Caller,
                      records: NamedDependency[RecordUseCases]) -> Response:
    version = form.integer("version", "version")
    if version is None:
        raise InvalidInput("the form lost the version it was loaded at: reload the page", field="version")
    records.update(caller, org_id, DisplayId.parse(display_id), version=version, status="active")
    return redirect(request, _back(org_id, form))


@post("/o/{org_id:int}/inbox/actions/{conversation_id:int}/{action_id:str}/apply", sync_to_thread=True,
      include_in_schema=False)
def apply_action(request: Request, org_id: int, conversation_id: int, action_id: str, form: NamedDependency[Form],
                 caller: Caller, chat: NamedDependency[ChatUseCases]) -> Response:
    chat.apply_action(caller, org_id, conversation_id, action_id)
    return redirect(request, _back(org_id, form))


@post("/o/{org_id:int}/inbox/runs/{run_id:int}/dismiss", sync_to_thread=True, include_in_schema=False)
def dismiss_run(request: Request, org_id: int, run_id: int, form: NamedDependency[Form], caller: Caller,
                inbox: Inbox) -> Response:
    inbox.dismiss_run(caller, org_id, run_id)
    return redirect(request, _back(org_id, form))


INBOX_PAGES = [org_home, today, hide_first_steps, inbox_page, decide_diff, activate_snapshot, apply_action, dismiss_run]
