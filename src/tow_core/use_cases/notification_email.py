"""Notification emails (issue 19 item 4): the ``notification_email`` job that ``Notifications.deliver`` queues
for a kind set to email, and the signed one-click unsubscribe link every such email carries.

Rules:
- The job renders the email when it runs, from the notification *as its recipient may see it then*
  (``NotificationStore.shown``, through the visibility predicate): a record they no longer read, a recipient
  who was deactivated or who no longer wants this kind by email — nothing is sent.
- The email is queued in the outbox (``tow_core.outbox``) in the job's transaction; the outbox worker sends it.
- The unsubscribe link is ``/unsubscribe/<signed user id and kind>``, signed with APP_SECRET for its purpose,
  so it needs no sign-in: following it (or a mail client's RFC 8058 one-click POST) sets that kind to in-app
  only. A link that was not signed by this server changes nothing (InvalidInput).
- The digest setting (``tow_core.notifications.Digest``): ``off`` and ``daily`` people get no email from this
  job. ``send_digests`` (the job worker's periodic housekeeping) claims each ``daily`` person whose last digest
  is a day old (``NotificationStore.claim_digests``: one statement, so several workers never send twice) and
  queues one email listing their notifications that arrived since, are still unread and whose kind is set to
  email, each shown as they may see it now: a record they lost is left out; nothing left, no email. Its
  unsubscribe link turns the digest off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from tow_core.errors import InvalidInput
from tow_core.jobs import Job
from tow_core.mail import MailComposer
from tow_core.notifications import (
    DEFAULT_DELIVERY,
    DESCRIPTIONS,
    MAX_LISTED,
    Delivery,
    Digest,
    NotificationKind,
    NotificationStore,
    Shown,
)
from tow_core.unit_of_work import Transactions

UNSUBSCRIBE_PURPOSE = "notification-unsubscribe"
DIGEST = "digest"  # what an unsubscribe link of a digest names instead of a kind
DIGEST_EVERY = timedelta(days=1)
DIGEST_ABOUT = "Daily digest of your notification emails"


class ValueSigner(Protocol):
    """Signs a value for one purpose with APP_SECRET and verifies it (``SessionCookieSigner``)."""

    def sign_value(self, purpose: str, value: str) -> str: ...

    def verify_value(self, purpose: str, signed: str) -> str | None: ...


def unsubscribe_path(signer: ValueSigner, user_id: int, kind: NotificationKind) -> str:
    return f"/unsubscribe/{signer.sign_value(UNSUBSCRIBE_PURPOSE, f'{user_id}-{kind.value}')}"


def digest_unsubscribe_path(signer: ValueSigner, user_id: int) -> str:
    return f"/unsubscribe/{signer.sign_value(UNSUBSCRIBE_PURPOSE, f'{user_id}-{DIGEST}')}"


def _unsubscribing(signer: ValueSigner, token: str) -> tuple[int, NotificationKind | None]:
    """The person and kind a link turns off (None: their digest)."""
    value = signer.verify_value(UNSUBSCRIBE_PURPOSE, token)
    user, _, kind = (value or "").partition("-")
    if not user.isdigit() or (kind != DIGEST and kind not in NotificationKind._value2member_map_):
        raise InvalidInput("this unsubscribe link is not valid", field="token")
    return int(user), None if kind == DIGEST else NotificationKind(kind)


def emailed(store: NotificationStore, user_id: int, shown: Shown) -> bool:
    """Whether ``shown`` may be emailed to ``user_id`` now: a record they still read, a kind set to email."""
    return not shown.lost and store.preferences(user_id).get(shown.kind, DEFAULT_DELIVERY) is Delivery.EMAIL


def link_of(shown: Shown) -> str:
    return shown.link or f"/o/{shown.organisation_id}/notifications"


@dataclass(frozen=True)
class NotificationMailer:
    transactions: Transactions
    signer: ValueSigner
    mail: MailComposer

    def send(self, job: Job) -> None:
        """The ``notification_email`` job (see the module rules)."""
        notification_id = int(job.payload.get("notification_id", 0))
        with self.transactions.unattended() as unattended:
            stores = unattended.stores
            found = stores.notifications.recipient(notification_id)
            user = stores.directory.user(found[0]) if found else None
            if found is None or user is None or not user.is_active:
                return
            org_id = found[1]
            shown = next((n for n in stores.notifications.shown(user.id, org_id, unread_only=False,
                                                                before_id=notification_id + 1, limit=1)
                          if n.id == notification_id), None)
            if shown is None or not emailed(stores.notifications, user.id, shown):
                return
            if stores.notifications.digest(user.id) is not Digest.IMMEDIATE:
                return  # daily: in the next digest; off: no email at all
            about = DESCRIPTIONS[shown.kind]
            subject = f"{about}: {shown.record.display_id}" if shown.record else about
            message = self.mail.notification(to=user.email, display_name=user.display_name, subject=subject,
                                             text=shown.text, link=link_of(shown),
                                             unsubscribe=unsubscribe_path(self.signer, user.id, shown.kind),
                                             about=about)
            stores.email_outbox.queue(message, now=unattended.now)

    def send_digests(self, now: datetime) -> int:
        """The daily digests due at ``now`` (see the module rules); how many emails were queued."""
        queued = 0
        with self.transactions.unattended() as unattended:
            stores = unattended.stores
            for user_id, since in stores.notifications.claim_digests(now - DIGEST_EVERY, now=now):
                user = stores.directory.user(user_id)
                if user is None or not user.is_active:
                    continue
                unread = stores.notifications.shown(user_id, None, unread_only=True, before_id=None,
                                                    limit=MAX_LISTED)
                items = [(n.text, link_of(n)) for n in reversed(unread)
                         if since < n.created_at <= now and emailed(stores.notifications, user_id, n)]
                if items:
                    stores.email_outbox.queue(
                        self.mail.digest(to=user.email, display_name=user.display_name, items=items,
                                         unsubscribe=digest_unsubscribe_path(self.signer, user_id)),
                        now=now)
                    queued += 1
        return queued

    def unsubscribe(self, token: str) -> str:
        """Turns the link's kind of email (or digest) off for its person (in-app only); what was turned off."""
        user_id, kind = _unsubscribing(self.signer, token)
        with self.transactions.unattended() as unattended:
            store = unattended.stores.notifications
            if unattended.stores.directory.user(user_id) is None:
                raise InvalidInput("this unsubscribe link is not valid", field="token")
            if kind is None:
                store.set_digest(user_id, Digest.OFF, now=unattended.now)
                return DIGEST_ABOUT
            if store.preferences(user_id).get(kind, DEFAULT_DELIVERY) is Delivery.EMAIL:
                store.set_preference(user_id, kind, Delivery.IN_APP)
        return DESCRIPTIONS[kind]
