"""PgEmailOutbox and PgEmailDelivery: the email outbox in PostgreSQL (migration 0024).

Queueing runs on the caller's connection, so a message commits with the change that causes it. Claiming is
one ``SELECT ... FOR UPDATE SKIP LOCKED`` plus one ``UPDATE`` in a short transaction, so concurrent workers
never claim the same message and never wait on each other's rows; a claim is identified by (id, attempts),
so a worker whose lease expired cannot overwrite a newer attempt's outcome. Times come from the caller.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from tow_adapters.postgres.engine import SqlStore, transaction
from tow_core.jobs import RetryPolicy
from tow_core.mail import OutgoingEmail
from tow_core.outbox import MAX_ERROR_CHARS, EmailStatus, QueuedEmail

_COLUMNS = "id, recipient, subject, text_body, html_body, status, attempts, created_at, last_error, headers"


def _queued(row: sa.Row) -> QueuedEmail:
    id_, to, subject, text, html, status, attempts, created_at, error, headers = row
    return QueuedEmail(id_, OutgoingEmail(to, subject, text, html, dict(headers or {})), EmailStatus(status), attempts,
                       created_at, error)


class PgEmailOutbox(SqlStore):
    def queue(self, message: OutgoingEmail, *, now: datetime) -> int:
        return self._conn.execute(
            sa.text("INSERT INTO email_outbox (recipient, subject, text_body, html_body, headers, next_attempt_at, "
                    "created_at) VALUES (:to, :subject, :text, :html, CAST(:headers AS jsonb), :now, :now) "
                    "RETURNING id"),
            {"to": message.to, "subject": message.subject, "text": message.text, "html": message.html,
             "headers": json.dumps(dict(message.headers)), "now": now},
        ).scalar_one()

    def dead_letters(self, *, limit: int) -> Sequence[QueuedEmail]:
        return [_queued(r) for r in self._rows(
            f"SELECT {_COLUMNS} FROM email_outbox WHERE status = 'dead' ORDER BY finished_at DESC, id DESC LIMIT :n",
            n=limit)]


_NEXT_DUE = sa.text(
    f"SELECT {_COLUMNS} FROM email_outbox "
    "WHERE (status = 'queued' AND next_attempt_at <= :now) OR (status = 'sending' AND lease_expires_at <= :now) "
    "ORDER BY CASE WHEN status = 'queued' THEN next_attempt_at ELSE lease_expires_at END, id "
    "LIMIT 1 FOR UPDATE SKIP LOCKED"
)
_CLAIMED = "id = :id AND status = 'sending' AND attempts = :attempts"


class PgEmailDelivery:
    """What workers do; each call is its own short transaction on the engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def claim(self, *, now: datetime, policy: RetryPolicy) -> QueuedEmail | None:
        with transaction(self._engine) as conn:
            while (row := conn.execute(_NEXT_DUE, {"now": now}).first()) is not None:
                due = _queued(row)
                if due.status is EmailStatus.SENDING and policy.gives_up_after(due.attempts):
                    self._dead(conn, due, now, f"the worker's lease expired {due.attempts} times (crashed or stalled)")
                    continue
                claimed = conn.execute(
                    sa.text("UPDATE email_outbox SET status = 'sending', attempts = attempts + 1, "
                            f"lease_expires_at = :lease WHERE id = :id RETURNING {_COLUMNS}"),
                    {"id": due.id, "lease": now + timedelta(seconds=policy.lease_seconds)}).one()
                return _queued(claimed)
        return None

    @staticmethod
    def _dead(conn: sa.Connection, email: QueuedEmail, now: datetime, error: str) -> bool:
        return conn.execute(
            sa.text("UPDATE email_outbox SET status = 'dead', lease_expires_at = NULL, finished_at = :now, "
                    f"last_error = :error WHERE {_CLAIMED}"),
            {"now": now, "error": error[:MAX_ERROR_CHARS], "id": email.id, "attempts": email.attempts}).rowcount == 1

    def sent(self, email: QueuedEmail, *, now: datetime) -> bool:
        with transaction(self._engine) as conn:
            return conn.execute(
                sa.text("UPDATE email_outbox SET status = 'sent', lease_expires_at = NULL, finished_at = :now, "
                        f"text_body = '', html_body = '', headers = '{{}}'::jsonb, last_error = NULL WHERE {_CLAIMED}"),
                {"now": now, "id": email.id, "attempts": email.attempts}).rowcount == 1

    def failed(self, email: QueuedEmail, error: str, *, now: datetime, policy: RetryPolicy) -> EmailStatus | None:
        with transaction(self._engine) as conn:
            if policy.gives_up_after(email.attempts):
                return EmailStatus.DEAD if self._dead(conn, email, now, error) else None
            retried = conn.execute(
                sa.text("UPDATE email_outbox SET status = 'queued', lease_expires_at = NULL, next_attempt_at = :after, "
                        f"last_error = :error WHERE {_CLAIMED}"),
                {"after": now + policy.retry_delay(email.attempts), "error": error[:MAX_ERROR_CHARS], "id": email.id,
                 "attempts": email.attempts}).rowcount == 1
            return EmailStatus.QUEUED if retried else None

    def purge_finished(self, *, before: datetime) -> int:
        with transaction(self._engine) as conn:
            return conn.execute(sa.text("DELETE FROM email_outbox WHERE status IN ('sent', 'dead') "
                                        "AND finished_at < :before"), {"before": before}).rowcount

    def message(self, email_id: int) -> QueuedEmail | None:
        """One message as stored (tests and `tow email`)."""
        with transaction(self._engine) as conn:
            row = conn.execute(sa.text(f"SELECT {_COLUMNS} FROM email_outbox WHERE id = :id"), {"id": email_id}).first()
        return _queued(row) if row else None
