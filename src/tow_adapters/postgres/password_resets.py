"""PgPasswordResets: password reset tokens (their SHA-256 hashes only) and the attempts that throttle resets
(migration 0024), on the caller's transaction. Forgetting old attempts takes at most a batch per write and
skips rows another writer is deleting (as ``PgSignInLog`` does)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from tow_adapters.postgres.engine import SqlStore
from tow_core.password_reset import ResetToken

_FORGET_BATCH = 100
_TOKENS_KEPT = timedelta(days=1)  # after they expired: long enough to tell "expired" from "unknown"


class PgPasswordResets(SqlStore):
    def add_token(self, user_id: int, token_hash: str, *, now: datetime, expires_at: datetime) -> ResetToken:
        self._conn.execute(sa.text(
            "DELETE FROM password_reset_tokens WHERE id IN (SELECT id FROM password_reset_tokens "
            "WHERE expires_at < :before LIMIT :n FOR UPDATE SKIP LOCKED)"), {"before": now - _TOKENS_KEPT,
                                                                            "n": _FORGET_BATCH})
        row = self._row("INSERT INTO password_reset_tokens (user_id, token_hash, created_at, expires_at) "
                        "VALUES (:u, :h, :now, :exp) RETURNING id, user_id, created_at, expires_at, used_at",
                        u=user_id, h=token_hash, now=now, exp=expires_at)
        assert row is not None
        return ResetToken(*row)

    def token_by_hash(self, token_hash: str, *, for_update: bool = False) -> ResetToken | None:
        lock = " FOR UPDATE" if for_update else ""
        row = self._row("SELECT id, user_id, created_at, expires_at, used_at FROM password_reset_tokens "
                        f"WHERE token_hash = :h{lock}", h=token_hash)
        return ResetToken(*row) if row else None

    def use_tokens_of(self, user_id: int, now: datetime) -> int:
        return self._conn.execute(sa.text("UPDATE password_reset_tokens SET used_at = :now "
                                          "WHERE user_id = :u AND used_at IS NULL"),
                                  {"now": now, "u": user_id}).rowcount

    def record_attempt(self, email: str, client_ip: str, now: datetime, *, forget_before: datetime) -> None:
        self._conn.execute(sa.text("INSERT INTO password_reset_attempts (email, client_ip, attempted_at) "
                                   "VALUES (:e, :ip, :now)"), {"e": email, "ip": client_ip, "now": now})
        self._conn.execute(sa.text(
            "DELETE FROM password_reset_attempts WHERE id IN (SELECT id FROM password_reset_attempts "
            "WHERE attempted_at < :before LIMIT :n FOR UPDATE SKIP LOCKED)"), {"before": forget_before,
                                                                              "n": _FORGET_BATCH})

    def recent_attempts(self, since: datetime, *, limit: int, email: str | None = None,
                        client_ip: str | None = None) -> Sequence[datetime]:
        subjects = {name: value for name, value in (("email", email), ("client_ip", client_ip)) if value is not None}
        where = " ".join(f"AND {name} = :{name}" for name in subjects)  # fixed names; each has its index
        rows = self._rows(f"SELECT attempted_at FROM password_reset_attempts WHERE attempted_at > :since {where} "
                          "ORDER BY attempted_at DESC LIMIT :n", since=since, n=limit, **subjects)
        return [r[0] for r in rows]
