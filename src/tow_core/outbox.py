"""The email outbox (issue 19): messages queued with the change that causes them, sent by workers.

Rules:
- ``EmailOutbox.queue`` writes on the caller's transaction: a rolled-back change sends nothing, and a
  committed one is never lost, whatever the mail server is doing (the request does not wait for it).
- A worker claims one due message at a time under a lease (``RetryPolicy.lease_seconds``); several workers
  never claim the same message (PostgreSQL: ``FOR UPDATE SKIP LOCKED``). A worker that dies mid-send leaves
  a lease that expires, and the message is claimed again: delivery is at least once.
- A failed attempt is retried after ``RetryPolicy.retry_delay(attempts)`` (exponential backoff) until
  ``email.max_attempts`` attempts were made; then the message is dead-lettered with its last error, for
  server admins to see (the server page, ``tow email dead-letters``).
- A sent message keeps only its recipient and subject (its body, which may hold a live link, is cleared);
  sent and dead-lettered messages are deleted ``FINISHED_KEPT`` after they finished.
- A transport refusal is a ``DependencyUnavailable`` naming the reason, never the message's body.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from tow_core.errors import TowError
from tow_core.jobs import RetryPolicy
from tow_core.mail import OutgoingEmail

FINISHED_KEPT = timedelta(days=30)
MAX_ERROR_CHARS = 2000


class EmailStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class QueuedEmail:
    id: int
    message: OutgoingEmail
    status: EmailStatus
    attempts: int
    created_at: datetime
    last_error: str | None = None


class EmailOutbox(Protocol):
    """On the caller's transaction: queueing commits with the change that caused the message."""

    def queue(self, message: OutgoingEmail, *, now: datetime) -> int: ...

    def dead_letters(self, *, limit: int) -> Sequence[QueuedEmail]:
        """Dead-lettered messages, newest first."""
        ...


class EmailDelivery(Protocol):
    """What workers do, each call in its own short transaction."""

    def claim(self, *, now: datetime, policy: RetryPolicy) -> QueuedEmail | None:
        """The next due message (queued and due, or sending with an expired lease), leased to the caller; one
        whose lease expired after its last allowed attempt is dead-lettered instead."""
        ...

    def sent(self, email: QueuedEmail, *, now: datetime) -> bool:
        """Marks the claim sent and clears the body; False when the claim was lost."""
        ...

    def failed(self, email: QueuedEmail, error: str, *, now: datetime, policy: RetryPolicy) -> EmailStatus | None:
        """Queue a retry (QUEUED) or dead-letter it (DEAD); None when the claim was lost."""
        ...

    def purge_finished(self, *, before: datetime) -> int:
        """Deletes sent and dead-lettered messages that finished before ``before``; how many."""
        ...


class MailTransport(Protocol):
    """Hands one message to the mail system (console, files, SMTP); raises ``DependencyUnavailable``."""

    def send(self, message: OutgoingEmail) -> None: ...


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one delivery attempt did: the message, and its status after it (None: the claim was lost)."""

    email: QueuedEmail
    status: EmailStatus | None
    error: str | None = None


def send_next(delivery: EmailDelivery, transport: MailTransport, *, clock: Callable[[], datetime],
              policy: RetryPolicy) -> Attempt | None:
    """Claims one due message and sends it; None when nothing was due."""
    email = delivery.claim(now=clock(), policy=policy)
    if email is None:
        return None
    try:
        transport.send(email.message)
    except Exception as exc:  # any transport failure is retried, then dead-lettered: a message is never lost
        error = (exc.message if isinstance(exc, TowError) else f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
        return Attempt(email, delivery.failed(email, error, now=clock(), policy=policy), error)
    return Attempt(email, EmailStatus.SENT if delivery.sent(email, now=clock()) else None)
