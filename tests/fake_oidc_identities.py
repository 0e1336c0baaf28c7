"""InMemoryOidcIdentities: the ``OidcIdentities`` port (``tow_core.oidc``) over dicts, beside the fake directory
it reads organisations, memberships and sessions from; same semantics as ``PgOidcIdentities`` (migration 0023):
an identity names one account, a rule's grant goes with its membership, a session's ID token with its session
(tests/contract/test_oidc_identities.py holds both to that)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from tests.fakes import InMemoryDirectory
from tow_core.oidc import MappedRole


class InMemoryOidcIdentities:
    def __init__(self, directory: InMemoryDirectory) -> None:
        self._directory = directory
        self.identities: dict[tuple[str, str], tuple[int, datetime, datetime]] = {}  # -> user, linked, last login
        self.grants: dict[tuple[int, int], MappedRole] = {}  # (user, organisation) -> what a rule granted
        self.id_tokens: dict[str, str] = {}  # session token hash -> ID token

    def linked_user(self, issuer: str, subject: str) -> int | None:
        row = self.identities.get((issuer, subject))
        return row[0] if row and self._directory.user(row[0]) is not None else None

    def link(self, issuer: str, subject: str, user_id: int, now: datetime) -> None:
        if (issuer, subject) in self.identities:
            raise ValueError("duplicate key value violates unique constraint oidc_identities_pkey")
        if self._directory.user(user_id) is None:
            raise ValueError("oidc_identities.user_id names a missing user")
        self.identities[(issuer, subject)] = (user_id, now, now)

    def record_login(self, issuer: str, subject: str, now: datetime) -> None:
        row = self.identities.get((issuer, subject))
        if row is not None:
            self.identities[(issuer, subject)] = (row[0], row[1], now)

    def identities_of(self, user_id: int) -> Sequence[tuple[str, str]]:
        mine = sorted((row[1], key) for key, row in self.identities.items() if row[0] == user_id)
        return [key for _, key in mine]

    def organisations_named(self, names: Sequence[str]) -> Mapping[str, int]:
        found: dict[str, int] = {}
        for org_id in sorted(self._directory._orgs):  # noqa: SLF001 - the fake's own table
            name = self._directory._orgs[org_id].name  # noqa: SLF001
            if name in names:
                found.setdefault(name, org_id)
        return found

    def mapped_roles(self, user_id: int) -> Mapping[int, MappedRole]:
        members = self._directory._memberships  # noqa: SLF001 - ON DELETE CASCADE with the membership
        return {org: grant for (user, org), grant in self.grants.items() if user == user_id and (org, user) in members}

    def put_mapped_role(self, user_id: int, org_id: int, mapped: MappedRole) -> None:
        if (org_id, user_id) not in self._directory._memberships:  # noqa: SLF001 - the foreign key
            raise ValueError("oidc_role_grants names a missing membership")
        self.grants[(user_id, org_id)] = mapped

    def forget_mapped_role(self, user_id: int, org_id: int) -> None:
        self.grants.pop((user_id, org_id), None)

    def remember_id_token(self, session_token_hash: str, id_token: str) -> None:
        if session_token_hash not in self._directory._sessions:  # noqa: SLF001 - the foreign key
            raise ValueError("oidc_sessions names a missing session")
        if session_token_hash in self.id_tokens:
            raise ValueError("duplicate key value violates unique constraint oidc_sessions_pkey")
        self.id_tokens[session_token_hash] = id_token

    def id_token_of(self, session_token_hash: str) -> str | None:
        return self.id_tokens.get(session_token_hash) if session_token_hash in self._directory._sessions else None  # noqa: SLF001
