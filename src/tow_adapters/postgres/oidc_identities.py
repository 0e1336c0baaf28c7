"""PgOidcIdentities: linked provider identities, the roles organisation rules granted and single sign-on
sessions' ID tokens in PostgreSQL (migration 0023), on the caller's connection (``tow_core.oidc``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa

from tow_adapters.postgres.engine import SqlStore
from tow_core.access import OrgRole
from tow_core.oidc import MappedRole


class PgOidcIdentities(SqlStore):

    def _exec(self, sql: str, **params) -> None:
        self._conn.execute(sa.text(sql), params)

    def linked_user(self, issuer: str, subject: str) -> int | None:
        row = self._row("SELECT user_id FROM oidc_identities WHERE issuer = :i AND subject = :s", i=issuer, s=subject)
        return row[0] if row else None

    def link(self, issuer: str, subject: str, user_id: int, now: datetime) -> None:
        self._exec("INSERT INTO oidc_identities (issuer, subject, user_id, linked_at, last_login_at) "
                  "VALUES (:i, :s, :u, :now, :now)", i=issuer, s=subject, u=user_id, now=now)

    def record_login(self, issuer: str, subject: str, now: datetime) -> None:
        self._exec("UPDATE oidc_identities SET last_login_at = :now WHERE issuer = :i AND subject = :s",
                  i=issuer, s=subject, now=now)

    def identities_of(self, user_id: int) -> Sequence[tuple[str, str]]:
        rows = self._rows("SELECT issuer, subject FROM oidc_identities WHERE user_id = :u ORDER BY linked_at, "
                          "issuer, subject", u=user_id)
        return [(row[0], row[1]) for row in rows]

    def organisations_named(self, names: Sequence[str]) -> Mapping[str, int]:
        if not names:
            return {}
        rows = self._rows("SELECT DISTINCT ON (name) name, id FROM organisations WHERE name = ANY(:names) "
                          "ORDER BY name, id", names=list(names))
        return {row[0]: row[1] for row in rows}

    def mapped_roles(self, user_id: int) -> Mapping[int, MappedRole]:
        rows = self._rows("SELECT organisation_id, role, previous_role FROM oidc_role_grants WHERE user_id = :u",
                          u=user_id)
        return {row[0]: MappedRole(OrgRole(row[1]), OrgRole(row[2]) if row[2] else None) for row in rows}

    def put_mapped_role(self, user_id: int, org_id: int, mapped: MappedRole) -> None:
        self._exec(
            "INSERT INTO oidc_role_grants (user_id, organisation_id, role, previous_role) VALUES (:u, :o, :r, :p) "
            "ON CONFLICT (user_id, organisation_id) DO UPDATE SET role = EXCLUDED.role, "
            "previous_role = EXCLUDED.previous_role",
            u=user_id, o=org_id, r=mapped.role.value,
            p=mapped.previous_role.value if mapped.previous_role else None)

    def forget_mapped_role(self, user_id: int, org_id: int) -> None:
        self._exec("DELETE FROM oidc_role_grants WHERE user_id = :u AND organisation_id = :o", u=user_id, o=org_id)

    def remember_id_token(self, session_token_hash: str, id_token: str) -> None:
        self._exec("INSERT INTO oidc_sessions (session_token_hash, id_token) VALUES (:h, :t)",
                  h=session_token_hash, t=id_token)

    def id_token_of(self, session_token_hash: str) -> str | None:
        row = self._row("SELECT id_token FROM oidc_sessions WHERE session_token_hash = :h", h=session_token_hash)
        return row[0] if row else None
