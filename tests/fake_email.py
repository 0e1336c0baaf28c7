"""In-memory fakes of the email outbox (``EmailOutbox`` and the workers' ``EmailDelivery`` over the same
messages), of ``PasswordResets``, and transports that record or refuse what they are handed. The contract
suites in tests/contract/test_email_outbox.py keep them honest against PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from tow_core.errors import DependencyUnavailable
from tow_core.jobs import RetryPolicy
from tow_core.mail import OutgoingEmail
from tow_core.outbox import MAX_ERROR_CHARS, EmailStatus, QueuedEmail
from tow_core.password_reset import ResetToken


@dataclass
class _Row:
    email: QueuedEmail
    next_attempt_at: datetime
    lease_expires_at: datetime | None = None
    finished_at: datetime | None = None


class InMemoryEmailOutbox:
    def __init__(self) -> None:
        self._rows: dict[int, _Row] = {}
        self._lock = threading.Lock()

    # EmailOutbox
    def queue(self, message: OutgoingEmail, *, now: datetime) -> int:
        with self._lock:
            email_id = len(self._rows) + 1
            self._rows[email_id] = _Row(QueuedEmail(email_id, message, EmailStatus.QUEUED, 0, now), now)
            return email_id

    def dead_letters(self, *, limit: int) -> Sequence[QueuedEmail]:
        dead = [r for r in self._rows.values() if r.email.status is EmailStatus.DEAD]
        dead.sort(key=lambda r: (r.finished_at, r.email.id), reverse=True)
        return [r.email for r in dead[:limit]]

    # EmailDelivery
    def claim(self, *, now: datetime, policy: RetryPolicy) -> QueuedEmail | None:
        with self._lock:
            while due := self._due(now):
                row = due[0]
                if row.email.status is EmailStatus.SENDING and policy.gives_up_after(row.email.attempts):
                    self._finish(row, EmailStatus.DEAD, now, f"the worker's lease expired {row.email.attempts} times")
                    continue
                row.email = replace(row.email, status=EmailStatus.SENDING, attempts=row.email.attempts + 1)
                row.lease_expires_at = now + timedelta(seconds=policy.lease_seconds)
                return row.email
        return None

    def _due(self, now: datetime) -> list[_Row]:
        def when(row: _Row) -> datetime:
            return row.next_attempt_at if row.email.status is EmailStatus.QUEUED else row.lease_expires_at
        due = [r for r in self._rows.values()
               if (r.email.status is EmailStatus.QUEUED and r.next_attempt_at <= now)
               or (r.email.status is EmailStatus.SENDING and r.lease_expires_at <= now)]
        return sorted(due, key=lambda r: (when(r), r.email.id))

    def _claimed(self, email: QueuedEmail) -> _Row | None:
        row = self._rows.get(email.id)
        ok = row is not None and row.email.status is EmailStatus.SENDING and row.email.attempts == email.attempts
        return row if ok else None

    @staticmethod
    def _finish(row: _Row, status: EmailStatus, now: datetime, error: str | None) -> None:
        row.email = replace(row.email, status=status, last_error=error and error[:MAX_ERROR_CHARS])
        row.lease_expires_at, row.finished_at = None, now

    def sent(self, email: QueuedEmail, *, now: datetime) -> bool:
        with self._lock:
            if (row := self._claimed(email)) is None:
                return False
            self._finish(row, EmailStatus.SENT, now, None)
            row.email = replace(row.email, message=replace(row.email.message, text="", html=""))
            return True

    def failed(self, email: QueuedEmail, error: str, *, now: datetime, policy: RetryPolicy) -> EmailStatus | None:
        with self._lock:
            if (row := self._claimed(email)) is None:
                return None
            if policy.gives_up_after(email.attempts):
                self._finish(row, EmailStatus.DEAD, now, error)
                return EmailStatus.DEAD
            row.email = replace(row.email, status=EmailStatus.QUEUED, last_error=error[:MAX_ERROR_CHARS])
            row.lease_expires_at, row.next_attempt_at = None, now + policy.retry_delay(email.attempts)
            return EmailStatus.QUEUED

    def purge_finished(self, *, before: datetime) -> int:
        with self._lock:
            gone = [i for i, r in self._rows.items() if r.finished_at is not None and r.finished_at < before]
            for email_id in gone:
                del self._rows[email_id]
            return len(gone)

    def message(self, email_id: int) -> QueuedEmail | None:
        row = self._rows.get(email_id)
        return row.email if row else None

    def all(self) -> list[QueuedEmail]:
        return [r.email for r in self._rows.values()]


class InMemoryPasswordResets:
    def __init__(self) -> None:
        self._tokens: dict[str, ResetToken] = {}
        self._attempts: list[tuple[str, str, datetime]] = []

    def add_token(self, user_id: int, token_hash: str, *, now: datetime, expires_at: datetime) -> ResetToken:
        token = ResetToken(len(self._tokens) + 1, user_id, now, expires_at)
        self._tokens[token_hash] = token
        return token

    def token_by_hash(self, token_hash: str, *, for_update: bool = False) -> ResetToken | None:
        return self._tokens.get(token_hash)

    def use_tokens_of(self, user_id: int, now: datetime) -> int:
        used = [h for h, t in self._tokens.items() if t.user_id == user_id and t.used_at is None]
        for token_hash in used:
            self._tokens[token_hash] = replace(self._tokens[token_hash], used_at=now)
        return len(used)

    def record_attempt(self, email: str, client_ip: str, now: datetime, *, forget_before: datetime) -> None:
        self._attempts = [a for a in self._attempts if a[2] >= forget_before] + [(email, client_ip, now)]

    def recent_attempts(self, since: datetime, *, limit: int, email: str | None = None,
                        client_ip: str | None = None) -> Sequence[datetime]:
        times = [at for e, ip, at in self._attempts if at > since and (email is None or e == email)
                 and (client_ip is None or ip == client_ip)]
        return sorted(times, reverse=True)[:limit]

    def tokens(self) -> list[ResetToken]:
        return list(self._tokens.values())


class RecordingTransport:
    """Keeps every message it is handed; ``refuse`` makes it fail like a mail server that is down."""

    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []
        self.refuse = False

    def send(self, message: OutgoingEmail) -> None:
        if self.refuse:
            raise DependencyUnavailable("SMTP server mail.example:25 did not take the message: refused",
                                        retry_after_seconds=60)
        self.sent.append(message)
