"""Notifications, watching, mention candidates and notification preferences (rules in
``tow_core.notifications``). Reading shows each notification through the access policy for the reader, at
read time; everything here acts on the caller's own notifications, watches and preferences only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tow_core import knowledge
from tow_core.errors import InvalidInput
from tow_core.notifications import (
    DEFAULT_DELIVERY,
    MAX_LISTED,
    Delivery,
    Digest,
    NotificationKind,
    Shown,
    first_among,
    mention_markup,
)
from tow_core.records import DisplayId
from tow_core.unit_of_work import Acting, Credential, Transactions
from tow_core.use_cases.frame import Framed, frame_of

MAX_CANDIDATES = 10
MAX_ID = 2**53 - 1


@dataclass(frozen=True)
class NotificationList:
    items: tuple[Shown, ...]
    unread: int  # all unread of the caller (in the organisation, when one is given)
    unread_only: bool = False


@dataclass(frozen=True)
class Preferences:
    """Where each kind of a person's notifications goes (every kind, defaults filled in) and their digest."""

    kinds: dict[NotificationKind, Delivery]
    digest: Digest


@dataclass(frozen=True)
class Mentionable:
    """A member who reads the record being edited, and what the editor inserts to mention them."""

    user_id: int
    display_name: str
    markup: str


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LISTED:
        raise InvalidInput(f"limit must be from 1 to {MAX_LISTED}", field="limit")
    return limit


def notification_preferences(acting: Acting) -> dict[NotificationKind, Delivery]:
    """Where each kind of the acting person's notifications goes, defaults filled in."""
    chosen = acting.stores.notifications.preferences(acting.principal.user_id)
    return {kind: chosen.get(kind, DEFAULT_DELIVERY) for kind in NotificationKind}


def _listing(acting: Acting, org_id: int | None, *, unread_only: bool, before: int | None,
             limit: int) -> NotificationList:
    if org_id is not None:
        acting.workspace(org_id)  # NotFound unless a member
    store, me = acting.stores.notifications, acting.principal.user_id
    items = store.shown(me, org_id, unread_only=unread_only, before_id=before, limit=_limit(limit))
    return NotificationList(tuple(items), store.count_unread(me, org_id), unread_only)


@dataclass(frozen=True)
class NotificationUseCases:
    transactions: Transactions

    def list(self, credential: Credential, org_id: int | None = None, *, unread_only: bool = False,
             before: int | None = None, limit: int = 50) -> NotificationList:
        """The caller's newest notifications (in one organisation they belong to, or all), shown as they may
        see them now."""
        with self.transactions.acting_as(credential) as acting:
            return _listing(acting, org_id, unread_only=unread_only, before=before, limit=limit)

    def page(self, credential: Credential, org_id: int, project_key: str | None, *,
             unread_only: bool = False) -> Framed[NotificationList]:
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            return Framed(frame, _listing(acting, org_id, unread_only=unread_only, before=None, limit=MAX_LISTED))

    def mark_read(self, credential: Credential, ids: Sequence[int]) -> int:
        """Marks the caller's notifications among ``ids`` read (anyone else's are untouched); how many."""
        if len(ids) > MAX_LISTED:
            raise InvalidInput(f"at most {MAX_LISTED} ids at a time", field="ids")
        with self.transactions.acting_as(credential) as acting:
            known = [i for i in ids if 1 <= i <= MAX_ID]  # no notification has any other id
            return acting.stores.notifications.mark_read(acting.principal.user_id, known, None, now=acting.now)

    def mark_all_read(self, credential: Credential, org_id: int | None = None) -> int:
        with self.transactions.acting_as(credential) as acting:
            if org_id is not None:
                acting.workspace(org_id)
            return acting.stores.notifications.mark_read(acting.principal.user_id, None, org_id, now=acting.now)

    def open(self, credential: Credential, org_id: int, notification_id: int) -> Shown | None:
        """Marks one of the caller's notifications read; it as shown now (its ``link``: where to go, while they
        still read what it is about), None when it is not theirs."""
        with self.transactions.acting_as(credential) as acting:
            acting.workspace(org_id)
            store, me = acting.stores.notifications, acting.principal.user_id
            store.mark_read(me, [notification_id], org_id, now=acting.now)
            found = next((n for n in store.shown(me, org_id, unread_only=False, before_id=notification_id + 1,
                                                 limit=1) if n.id == notification_id), None)
            return found

    def watching(self, credential: Credential, org_id: int, display_id: DisplayId) -> bool:
        with self.transactions.acting_as(credential) as acting:
            record = knowledge.get_record(acting.workspace(org_id), display_id)
            return acting.stores.notifications.is_watching(record.id, acting.principal.user_id)

    def set_watching(self, credential: Credential, org_id: int, display_id: DisplayId, watching: bool) -> bool:
        """Watch or unwatch a record the caller reads (else NotFound); returns the new state."""
        with self.transactions.acting_as(credential) as acting:
            record = knowledge.get_record(acting.workspace(org_id), display_id)
            store = acting.stores.notifications
            (store.watch if watching else store.unwatch)(record.id, acting.principal.user_id)
            return watching

    def mentionable(self, credential: Credential, org_id: int, display_id: DisplayId, text: str = "",
                    *, limit: int = MAX_CANDIDATES) -> list[Mentionable]:
        """Members whose name starts a word with ``text`` and who read ``display_id`` (which the caller reads):
        the editor's mention autocomplete offers no one a mention could not notify."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            record = knowledge.get_record(ws, display_id)
            wanted = knowledge.clean_text(text, "q", max_length=100).strip().lower()
            named = [m for m in sorted(ws.directory.members(org_id), key=lambda m: (m.display_name.lower(), m.user_id))
                     if m.is_active and (not wanted or m.display_name.lower().startswith(wanted)
                                         or any(w.startswith(wanted) for w in m.display_name.lower().split()))]
            readers = set(first_among([m.user_id for m in named],
                                      lambda users: ws.records.readers_among(org_id, record.id, users),
                                      min(max(limit, 1), MAX_CANDIDATES)))
            return [Mentionable(m.user_id, m.display_name, mention_markup(m.user_id, m.display_name))
                    for m in named if m.user_id in readers]

    def preferences(self, credential: Credential) -> Preferences:
        """Where each kind of the caller's notifications goes (every kind, defaults filled in), and their digest."""
        with self.transactions.acting_as(credential) as acting:
            return Preferences(notification_preferences(acting),
                               acting.stores.notifications.digest(acting.principal.user_id))

    def set_preferences(self, credential: Credential, chosen: dict[NotificationKind, Delivery],
                        digest: Digest | None = None) -> Preferences:
        """Sets the kinds in ``chosen`` (the others keep theirs) and, unless None, the digest."""
        with self.transactions.acting_as(credential) as acting:
            store, me = acting.stores.notifications, acting.principal.user_id
            for kind, delivery in chosen.items():
                store.set_preference(me, kind, delivery)
            if digest is not None:
                store.set_digest(me, digest, now=acting.now)
            return Preferences(notification_preferences(acting), store.digest(me))
