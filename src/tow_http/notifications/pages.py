"""Notifications in the browser (issue 19): the list, opening one (marks it read and goes to its record, while
you read it), marking all read, and watching a record from its page."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from tow_core.notifications import NotificationKind, delivery_of, digest_of
from tow_core.records import DisplayId
from tow_core.unit_of_work import Credential
from tow_core.use_cases.notification_email import NotificationMailer
from tow_core.use_cases.notifications import NotificationUseCases
from tow_http.config import Settings
from tow_http.pages.web import Form, Shell, page, redirect

Caller = NamedDependency[Credential]
Notes = NamedDependency[NotificationUseCases]


def _suffix(form: Form) -> str:
    project = form.get("project").strip()
    return f"?project={project}" if project.isalnum() else ""


@get("/o/{org_id:int}/notifications", sync_to_thread=True, include_in_schema=False)
def notifications_page(request: Request, org_id: int, caller: Caller, notifications: Notes,
                       project: str | None = None, unread: str | None = None) -> Response:
    framed = notifications.page(caller, org_id, project, unread_only=bool(unread))
    return page(request, "notifications.html", shell=Shell(framed.frame, "notifications"), listing=framed.content,
                unread_only=bool(unread))


@post("/o/{org_id:int}/notifications/{notification_id:int}/open", sync_to_thread=True, include_in_schema=False)
def open_notification(request: Request, org_id: int, notification_id: int, form: NamedDependency[Form],
                      caller: Caller, notifications: Notes) -> Response:
    opened = notifications.open(caller, org_id, notification_id)
    path = opened.link if opened is not None and opened.link else f"/o/{org_id}/notifications"
    return redirect(request, f"{path}{_suffix(form)}")


@post("/o/{org_id:int}/notifications/read-all", sync_to_thread=True, include_in_schema=False)
def read_all_notifications(request: Request, org_id: int, form: NamedDependency[Form], caller: Caller,
                           notifications: Notes) -> Response:
    notifications.mark_all_read(caller, org_id)
    return redirect(request, f"/o/{org_id}/notifications{_suffix(form)}")


@post("/o/{org_id:int}/r/{display_id:str}/watch", sync_to_thread=True, include_in_schema=False)
def watch_record(request: Request, org_id: int, display_id: str, form: NamedDependency[Form], caller: Caller,
                 notifications: Notes) -> Response:
    did = DisplayId.parse(display_id)
    notifications.set_watching(caller, org_id, did, form.get("watching") == "1")
    return redirect(request, f"/o/{org_id}/r/{did}{_suffix(form)}")


@post("/o/{org_id:int}/profile/notifications", sync_to_thread=True, include_in_schema=False)
def save_preferences(request: Request, org_id: int, form: NamedDependency[Form], caller: Caller,
                     notifications: Notes) -> Response:
    """The profile page's notification settings: one choice per kind and the digest (one left out keeps its
    setting)."""
    chosen = {kind: delivery_of(form.get(kind.value), kind.value) for kind in NotificationKind
              if form.get(kind.value)}
    notifications.set_preferences(caller, chosen, digest_of(form.get("digest")) if form.get("digest") else None)
    suffix = _suffix(form)
    return redirect(request, f"/o/{org_id}/profile{suffix}{'&' if suffix else '?'}saved=notifications")


NOTIFICATION_PAGES = [notifications_page, open_notification, read_all_notifications, watch_record,
                      save_preferences]


@get("/unsubscribe/{token:str}", sync_to_thread=True, include_in_schema=False)
def unsubscribe_page(request: Request, token: str, settings: NamedDependency[Settings]) -> Response:
    """The link in a notification email: one button, as opening a link (or a mail scanner) changes nothing."""
    return page(request, "unsubscribe.html", token=token, done=None, app_name=settings.runtime.app_name)


@post("/unsubscribe/{token:str}", sync_to_thread=True, include_in_schema=False, status_code=200)
def unsubscribe(request: Request, token: str, notification_email: NamedDependency[NotificationMailer],
                settings: NamedDependency[Settings]) -> Response:
    """The button, and a mail client's RFC 8058 one-click POST (``List-Unsubscribe=One-Click``): no sign-in, the
    link's signature is the proof. That kind's email is turned off."""
    done = notification_email.unsubscribe(token)
    return page(request, "unsubscribe.html", token=token, done=done, app_name=settings.runtime.app_name)


NOTIFICATION_PAGES = [*NOTIFICATION_PAGES, unsubscribe_page, unsubscribe]
