"""PgAccessTokens: personal access tokens in PostgreSQL (migration 0022), on the caller's connection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from tow_adapters.postgres.engine import SqlStore
from tow_core.access_tokens import AccessToken, NewToken, TokenAccess
from tow_core.errors import Conflict

_COLUMNS = ("id, user_id, name, prefix, access, organisation_id, created_at, expires_at, last_used_at, "
            "revoked_at")


def _token(row) -> AccessToken:
    return AccessToken(row[0], row[1], row[2], row[3], TokenAccess(row[4]), *row[5:])


class PgAccessTokens(SqlStore):
    def add_token(self, user_id: int, token_hash: str, new: NewToken, *, prefix: str, now: datetime,
                  expires_at: datetime) -> AccessToken:
        try:
            with self._conn.begin_nested():
                row = self._row(
                    "INSERT INTO personal_access_tokens (user_id, token_hash, name, prefix, access, organisation_id, "
                    f"created_at, expires_at) VALUES (:u, :h, :n, :p, :a, :o, :now, :x) RETURNING {_COLUMNS}",
                    u=user_id, h=token_hash, n=new.name, p=prefix, a=new.access.value, o=new.organisation_id,
                    now=now, x=expires_at)
        except sa.exc.IntegrityError as exc:
            raise Conflict("token hash already exists") from exc
        assert row is not None
        return _token(row)

    def token_by_hash(self, token_hash: str) -> AccessToken | None:
        row = self._row(f"SELECT {_COLUMNS} FROM personal_access_tokens WHERE token_hash = :h", h=token_hash)
        return _token(row) if row else None

    def token(self, token_id: int) -> AccessToken | None:
        row = self._row(f"SELECT {_COLUMNS} FROM personal_access_tokens WHERE id = :i", i=token_id)
        return _token(row) if row else None

    def tokens_of(self, user_ids: Sequence[int], *, organisation_id: int | None = None) -> Sequence[AccessToken]:
        reach = "" if organisation_id is None else "AND (organisation_id IS NULL OR organisation_id = :o)"
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM personal_access_tokens WHERE user_id = ANY(:users) AND revoked_at IS NULL "
            f"{reach} ORDER BY created_at DESC, id DESC", users=list(user_ids), o=organisation_id)
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: int, now: datetime) -> None:
        self._rows_affected("UPDATE personal_access_tokens SET revoked_at = :now WHERE id = :i AND revoked_at IS NULL",
                            now=now, i=token_id)

    def revoke_user_tokens(self, user_id: int, now: datetime) -> int:
        return self._rows_affected(
            "UPDATE personal_access_tokens SET revoked_at = :now WHERE user_id = :u AND revoked_at IS NULL",
            now=now, u=user_id)

    def touch_token(self, token_id: int, now: datetime) -> None:
        # GREATEST: two requests racing never move "last used" backwards
        self._rows_affected("UPDATE personal_access_tokens SET last_used_at = GREATEST(last_used_at, :now) "
                            "WHERE id = :i", now=now, i=token_id)

    def _rows_affected(self, sql: str, **params) -> int:
        return self._conn.execute(sa.text(sql), params).rowcount
