"""Notifications over HTTP (issue 19): list and mark yours read, watch records, find whom to mention, and
choose where each kind of notification goes."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Router, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from tow_core.notifications import NotificationKind, delivery_of, digest_of, kind_of
from tow_core.records import DisplayId
from tow_core.unit_of_work import Credential
from tow_core.use_cases.notifications import MAX_CANDIDATES, MAX_LISTED, NotificationUseCases
from tow_http.notifications.shapes import (
    RULES,
    MarkedOut,
    MentionableOut,
    NotificationsOut,
    PreferencesOut,
    WatchOut,
    mentionable_out,
    notifications_out,
    preferences_out,
)
from tow_http.shapes import MAX_SAFE_INTEGER, Strict

Notes = NamedDependency[NotificationUseCases]
Caller = NamedDependency[Credential]
OrgFilter = Annotated[int | None, QueryParameter(name="org_id", ge=1, le=MAX_SAFE_INTEGER, description=(
    "only this organisation's notifications (you must be a member); absent: all of yours"))]
RECORD = "/organisations/{org_id:int}/records/{display_id:str}"


class WatchIn(Strict):
    watching: bool


DeliveryIn = Literal["in_app", "email", "off"] | None


class PreferencesIn(Strict):
    """Per kind: in_app, email or off; a kind left out (or null) keeps its setting."""

    assigned: DeliveryIn = None
    mentioned: DeliveryIn = None
    commented: DeliveryIn = None
    access: DeliveryIn = None
    review: DeliveryIn = None
    run_finished: DeliveryIn = None
    run_failed: DeliveryIn = None
    digest: Annotated[Literal["off", "immediate", "daily"] | None, msgspec.Meta(description=(
        "how the kinds set to email are emailed: `immediate` (each on its own), `daily` (one digest a day of "
        "the unread ones) or `off` (no notification email at all); left out or null keeps it"))] = None


@get("/notifications", summary="Your notifications, newest first", description=RULES, sync_to_thread=True)
def list_notifications(caller: Caller, notifications: Notes, org_id: OrgFilter = None,
                       unread: Annotated[bool, QueryParameter(description="only unread ones")] = False,
                       before: Annotated[int | None, QueryParameter(ge=1, le=MAX_SAFE_INTEGER, description=(
                           "only ones older than this notification id (the last id of the previous page)"))] = None,
                       limit: Annotated[int, QueryParameter(ge=1, le=MAX_LISTED, description="page size")] = 50,
                       ) -> NotificationsOut:
    return notifications_out(notifications.list(caller, org_id, unread_only=unread, before=before, limit=limit))


@post("/notifications/{notification_id:int}/read", summary="Mark one of your notifications read",
      description="A notification that is not yours, unknown or already read is left alone (`marked`: 0).",
      status_code=200, sync_to_thread=True)
def mark_notification_read(notification_id: int, caller: Caller, notifications: Notes) -> MarkedOut:
    return MarkedOut(notifications.mark_read(caller, [notification_id]))


@post("/notifications/read-all", summary="Mark all your notifications read",
      description="In one organisation you belong to (`org_id`), or everywhere.", status_code=200,
      sync_to_thread=True)
def mark_all_notifications_read(caller: Caller, notifications: Notes, org_id: OrgFilter = None) -> MarkedOut:
    return MarkedOut(notifications.mark_all_read(caller, org_id))


@get(f"{RECORD}/watch", summary="Whether you watch a record",
     description="Watching a record notifies you of its comments. 404 when you cannot read it.", sync_to_thread=True)
def get_watch(org_id: int, display_id: str, caller: Caller, notifications: Notes) -> WatchOut:
    did = DisplayId.parse(display_id)
    return WatchOut(str(did), notifications.watching(caller, org_id, did))


@put(f"{RECORD}/watch", summary="Watch or unwatch a record",
     description="Authors, assignees and commenters watch a record automatically; this changes it for you. 404 "
     "when you cannot read it. A watcher who loses access is no longer notified.", sync_to_thread=True)
def put_watch(org_id: int, display_id: str, data: JSONBody[WatchIn], caller: Caller, notifications: Notes) -> WatchOut:
    did = DisplayId.parse(display_id)
    return WatchOut(str(did), notifications.set_watching(caller, org_id, did, data.watching))


@get(f"{RECORD}/mentionable", summary="Members you can mention in a record",
     description="Members whose name starts with `q` (a name or one of its words) and who can read the record — "
     f"a mention of anyone else would notify nobody. At most {MAX_CANDIDATES}. Insert `markup` in the text. 404 "
     "when you cannot read the record.", sync_to_thread=True)
def mentionable(org_id: int, display_id: str, caller: Caller, notifications: Notes,
                q: Annotated[str, QueryParameter(max_length=100, description="the start of a name")] = ""
                ) -> list[MentionableOut]:
    return mentionable_out(notifications.mentionable(caller, org_id, DisplayId.parse(display_id), q))


@get("/notification-preferences", summary="Where each kind of your notifications goes",
     description="Per kind: `in_app` (the default), `email` (in the app and by email) or `off`; and `digest`, how "
     "the kinds set to email are emailed: `immediate` (the default: each notification on its own), `daily` (one "
     "email a day listing the ones still unread that arrived since the last digest, shown as you may see them "
     "then) or `off` (no notification email at all).", sync_to_thread=True)
def get_notification_preferences(caller: Caller, notifications: Notes) -> PreferencesOut:
    return preferences_out(notifications.preferences(caller))


@put("/notification-preferences", summary="Choose where kinds of your notifications go",
     description="Kinds (and `digest`) left out keep their setting; an unknown kind, delivery or digest is a 422 "
     "naming it. Choosing `daily` starts its day now: the first digest comes a day later.",
     sync_to_thread=True)
def put_notification_preferences(data: JSONBody[PreferencesIn], caller: Caller, notifications: Notes) -> PreferencesOut:
    given = {kind.value: getattr(data, kind.value) for kind in NotificationKind}
    chosen = {kind_of(k): delivery_of(v, k) for k, v in given.items() if v is not None}
    digest = digest_of(data.digest) if data.digest is not None else None
    return preferences_out(notifications.set_preferences(caller, chosen, digest))


notifications_router = Router(path="/api", route_handlers=[
    list_notifications, mark_notification_read, mark_all_notifications_read, get_watch, put_watch, mentionable,
    get_notification_preferences, put_notification_preferences], tags=["notifications"])
