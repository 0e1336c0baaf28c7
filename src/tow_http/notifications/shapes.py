"""Notifications as JSON: what happened, the record only while you read it, and where to go."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from tow_core.notifications import DESCRIPTIONS, LOST, LOST_DIFF, NotificationKind, Shown
from tow_core.use_cases.notifications import Mentionable, NotificationList, Preferences

RULES = (
    "Your notifications: a ticket assigned to you, a mention of you (`@[Name](user:ID)`) in a doc, ticket, "
    "decision or risk body or in a comment, a comment on something you watch, a change of your role or access "
    "(a direct or group grant, a group you joined or left), "
    "a snapshot put up for review or a memory diff proposed in a scope you may write (at most the first 50 writers "
    "by user id; never the diff's author), your own agent run "
    "(chat answer, snapshot generation, memory extraction) finished or failed. Nobody is notified of their own "
    "act, and a notification is created only if you could read its record at that moment. A notification holds "
    "ids only: its record's display ID and title are read through the access rules when you list it, so a record "
    f"you can no longer read shows as \"{LOST}\" (`lost: true`, no `record`, no `actor`), a memory diff as "
    f"\"{LOST_DIFF}\". Newest first."
)


class NotificationRecordOut(msgspec.Struct):
    display_id: str
    type: str
    title: str
    status: str


class NotificationOut(msgspec.Struct):
    id: int
    organisation_id: int
    kind: Annotated[str, msgspec.Meta(description=", ".join(k.value for k in NotificationKind))]
    text: Annotated[str, msgspec.Meta(description="one line saying what happened, as the page shows it")]
    created_at: datetime
    read: bool
    lost: Annotated[bool, msgspec.Meta(description="its record exists no more for you: nothing of it is shown")]
    record: NotificationRecordOut | None
    actor: Annotated[str | None, msgspec.Meta(description="who caused it (their current name)")]
    comment_id: int | None
    link: Annotated[str | None, msgspec.Meta(description="the page of its record or memory diff, while you read it")]
    memory_diff_id: Annotated[int | None, msgspec.Meta(
        description="the memory diff awaiting your review (kind review), while you read it")] = None


class NotificationsOut(msgspec.Struct):
    items: list[NotificationOut]
    unread: Annotated[int, msgspec.Meta(description="all your unread notifications (in the organisation asked for)")]


class MarkedOut(msgspec.Struct):
    marked: Annotated[int, msgspec.Meta(description="how many of your unread notifications were marked read")]


class WatchOut(msgspec.Struct):
    display_id: str
    watching: bool


class MentionableOut(msgspec.Struct):
    user_id: int
    display_name: str
    markup: Annotated[str, msgspec.Meta(description="what to insert in the text: `@[Name](user:ID)`")]


class PreferenceOut(msgspec.Struct):
    kind: str
    description: str
    delivery: Annotated[str, msgspec.Meta(description="in_app, email (in the app and by email) or off")]


class PreferencesOut(msgspec.Struct):
    preferences: list[PreferenceOut]
    digest: Annotated[str, msgspec.Meta(description=(
        "how the kinds set to email are emailed: immediate (each on its own), daily (one digest a day) or off"))]


def notification_out(n: Shown) -> NotificationOut:
    record = None if n.record is None else NotificationRecordOut(str(n.record.display_id), n.record.type.value,
                                                                 n.record.title, n.record.status)
    return NotificationOut(n.id, n.organisation_id, n.kind.value, n.text, n.created_at, n.read_at is not None,
                           n.lost, record, n.actor_name, n.comment_id, n.link, n.memory_diff_id)


def notifications_out(listing: NotificationList) -> NotificationsOut:
    return NotificationsOut([notification_out(n) for n in listing.items], listing.unread)


def mentionable_out(found: list[Mentionable]) -> list[MentionableOut]:
    return [MentionableOut(m.user_id, m.display_name, m.markup) for m in found]


def preferences_out(chosen: Preferences) -> PreferencesOut:
    return PreferencesOut([PreferenceOut(kind.value, DESCRIPTIONS[kind], chosen.kinds[kind].value)
                           for kind in NotificationKind], chosen.digest.value)
