"""InMemoryAccessTokens: the ``AccessTokens`` port in memory (tests/contract/test_access_tokens.py keeps it
honest against PgAccessTokens)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from tow_core.access_tokens import AccessToken, NewToken
from tow_core.errors import Conflict


class InMemoryAccessTokens:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._tokens: dict[int, AccessToken] = {}
        self._hashes: dict[str, int] = {}

    def add_token(self, user_id: int, token_hash: str, new: NewToken, *, prefix: str, now: datetime,
                  expires_at: datetime) -> AccessToken:
        if token_hash in self._hashes:
            raise Conflict("token hash already exists")
        token = AccessToken(next(self._ids), user_id, new.name, prefix, new.access, new.organisation_id, now,
                            expires_at)
        self._tokens[token.id] = token
        self._hashes[token_hash] = token.id
        return token

    def token_by_hash(self, token_hash: str) -> AccessToken | None:
        token_id = self._hashes.get(token_hash)
        return self._tokens[token_id] if token_id is not None else None

    def token(self, token_id: int) -> AccessToken | None:
        return self._tokens.get(token_id)

    def tokens_of(self, user_ids: Sequence[int], *, organisation_id: int | None = None) -> Sequence[AccessToken]:
        found = [t for t in self._tokens.values() if t.user_id in user_ids and t.revoked_at is None
                 and (organisation_id is None or t.reaches(organisation_id))]
        return sorted(found, key=lambda t: (t.created_at, t.id), reverse=True)

    def revoke_token(self, token_id: int, now: datetime) -> None:
        token = self._tokens[token_id]
        if token.revoked_at is None:
            self._tokens[token_id] = replace(token, revoked_at=now)

    def revoke_user_tokens(self, user_id: int, now: datetime) -> int:
        live = [t.id for t in self._tokens.values() if t.user_id == user_id and t.revoked_at is None]
        for token_id in live:
            self.revoke_token(token_id, now)
        return len(live)

    def touch_token(self, token_id: int, now: datetime) -> None:
        token = self._tokens[token_id]
        latest = now if token.last_used_at is None else max(token.last_used_at, now)  # as PostgreSQL's GREATEST
        self._tokens[token_id] = replace(token, last_used_at=latest)
