"""The ``AccessTokens`` port's behaviour, against its in-memory fake (``InMemoryAccessTokens``) and
``PgAccessTokens`` on a real PostgreSQL: a token is found by its hash only, listed newest first while
unrevoked (by the organisations it reaches), revoked one by one or all of a user's at once, and its last use
never moves backwards. On PostgreSQL each test runs in one transaction that is rolled back."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.fake_tokens import InMemoryAccessTokens
from tests.fakes import InMemoryDirectory
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.tokens import PgAccessTokens
from tow_core.access_tokens import NewToken, TokenAccess
from tow_core.errors import Conflict
from tow_core.identity import WorkflowMode

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def tokens_engine(embedded_postgres):
    embedded_postgres.ensure_database("tokens_contract")
    engine = create_engine(embedded_postgres.url("tokens_contract"), PoolOptions(pool_size=2, max_overflow=1))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()


class People:
    def __init__(self, directory, tokens) -> None:
        self.tokens = tokens
        self.ada, self.bob = (directory.add_user(f"{n}-{time.monotonic_ns()}@example.com", n, None,
                                                 server_admin=False).id for n in ("ada", "bob"))
        self.acme, self.other = (directory.add_organisation(n, WorkflowMode.ORGANIZATION).id for n in ("acme", "other"))

    def add(self, user: int, secret: str, *, org: int | None = None, at: datetime = T):
        return self.tokens.add_token(user, hashlib.sha256(secret.encode()).hexdigest(),
                                     NewToken(f"{secret} script", 30, TokenAccess.READ, org), prefix=secret[:8],
                                     now=at, expires_at=at + timedelta(days=30))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@pytest.fixture(params=["fake", "postgres"])
def people(request) -> People:
    if request.param == "fake":
        return People(InMemoryDirectory(), InMemoryAccessTokens())
    conn = request.getfixturevalue("tokens_engine").connect()
    transaction = conn.begin()
    request.addfinalizer(conn.close)
    request.addfinalizer(transaction.rollback)
    return People(PgDirectory(conn), PgAccessTokens(conn))


def test_a_token_is_stored_whole_and_found_by_its_hash_only(people):
    token = people.add(people.ada, "tow_pat_one", org=people.acme)
    assert (token.user_id, token.name, token.prefix, token.access, token.organisation_id, token.created_at,
            token.expires_at, token.last_used_at, token.revoked_at) == (
        people.ada, "tow_pat_one script", "tow_pat_", TokenAccess.READ, people.acme, T, T + timedelta(days=30),
        None, None)
    assert people.tokens.token_by_hash(digest("tow_pat_one")) == token == people.tokens.token(token.id)
    assert people.tokens.token_by_hash(digest("tow_pat_two")) is None
    with pytest.raises(Conflict):
        people.add(people.bob, "tow_pat_one")


def test_listing_is_newest_first_unrevoked_and_by_the_organisation_reached(people):
    everywhere = people.add(people.ada, "a1", at=T)
    acme = people.add(people.ada, "a2", org=people.acme, at=T + timedelta(seconds=1))
    other = people.add(people.ada, "a3", org=people.other, at=T + timedelta(seconds=2))
    bobs = people.add(people.bob, "b1", at=T + timedelta(seconds=3))
    assert [t.id for t in people.tokens.tokens_of([people.ada])] == [other.id, acme.id, everywhere.id]
    assert [t.id for t in people.tokens.tokens_of([people.ada, people.bob], organisation_id=people.acme)] == [
        bobs.id, acme.id, everywhere.id]
    people.tokens.revoke_token(acme.id, T + timedelta(hours=1))
    assert people.tokens.token(acme.id).revoked_at == T + timedelta(hours=1)
    assert [t.id for t in people.tokens.tokens_of([people.ada])] == [other.id, everywhere.id]


def test_revoking_all_of_a_users_tokens_leaves_everyone_elses(people):
    people.add(people.ada, "a1")
    people.add(people.ada, "a2")
    bobs = people.add(people.bob, "b1")
    assert people.tokens.revoke_user_tokens(people.ada, T) == 2
    assert people.tokens.revoke_user_tokens(people.ada, T) == 0
    assert list(people.tokens.tokens_of([people.ada])) == []
    assert people.tokens.token(bobs.id).revoked_at is None


def test_last_use_is_recorded_and_never_moves_backwards(people):
    token = people.add(people.ada, "a1")
    people.tokens.touch_token(token.id, T + timedelta(minutes=5))
    assert people.tokens.token(token.id).last_used_at == T + timedelta(minutes=5)
    people.tokens.touch_token(token.id, T + timedelta(minutes=4))  # a slower request finishing after a faster one
    assert people.tokens.token(token.id).last_used_at == T + timedelta(minutes=5)
