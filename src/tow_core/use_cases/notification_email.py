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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tow_core.errors import InvalidInput
from tow_core.jobs import Job
from tow_core.mail import MailComposer
from tow_core.notifications import DEFAULT_DELIVERY, DESCRIPTIONS, Delivery, NotificationKind
from tow_core.unit_of_work import Transactions

UNSUBSCRIBE_PURPOSE = "notification-unsubscribe"


class ValueSigner(Protocol):
    """Signs a value for one purpose with APP_SECRET and verifies it (``SessionCookieSigner``)."""

    def sign_value(self, purpose: str, value: str) -> str: ...

    def verify_value(self, purpose: str, signed: str) -> str | None: ...


def unsubscribe_path(signer: ValueSigner, user_id: int, kind: NotificationKind) -> str:
    return f"/unsubscribe/{signer.sign_value(UNSUBSCRIBE_PURPOSE, f'{user_id}-{kind.value}')}"


def _unsubscribing(signer: ValueSigner, token: str) -> tuple[int, NotificationKind]:
    value = signer.verify_value(UNSUBSCRIBE_PURPOSE, token)
    user, _, kind = (value or "").partition("-")
    if not user.isdigit() or kind not in NotificationKind._value2member_map_:
        raise InvalidInput("this unsubscribe link is not valid", field="token")
    return int(user), NotificationKind(kind)


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
            if shown is None or shown.lost:
                return
            if stores.notifications.preferences(user.id).get(shown.kind, DEFAULT_DELIVERY) is not Delivery.EMAIL:
                return
            about = DESCRIPTIONS[shown.kind]
            subject = f"{about}: {shown.record.display_id}" if shown.record else about
            link = f"/o/{org_id}/r/{shown.record.display_id}" if shown.record else f"/o/{org_id}/notifications"
            message = self.mail.notification(to=user.email, display_name=user.display_name, subject=subject,
                                             text=shown.text, link=link,
                                             unsubscribe=unsubscribe_path(self.signer, user.id, shown.kind),
                                             about=about)
            stores.email_outbox.queue(message, now=unattended.now)

    def unsubscribe(self, token: str) -> str:
        """Turns the link's kind of email off for its person (in-app only); what was turned off."""
        user_id, kind = _unsubscribing(self.signer, token)
        with self.transactions.unattended() as unattended:
            store = unattended.stores.notifications
            if unattended.stores.directory.user(user_id) is None:
                raise InvalidInput("this unsubscribe link is not valid", field="token")
            if store.preferences(user_id).get(kind, DEFAULT_DELIVERY) is Delivery.EMAIL:
                store.set_preference(user_id, kind, Delivery.IN_APP)
        return DESCRIPTIONS[kind]
