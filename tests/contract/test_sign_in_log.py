"""The ``SignInLog`` port's behaviour, against its in-memory fake and ``PgSignInLog`` on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.fakes import InMemorySignInLog
from tow_adapters.postgres.directory import PgDirectory, PgSignInLog

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LONG_AGO = T0 - timedelta(days=365)


@pytest.fixture(params=["fake", "postgres"])
def world(request):
    """(log, two user ids)."""
    if request.param == "fake":
        return InMemorySignInLog(), (1, 2)
    engine = request.getfixturevalue("make_container")().engine()
    with engine.begin() as conn:
        users = tuple(PgDirectory(conn).add_user(f"{name}@example.com", name, None, server_admin=False).id
                      for name in ("ada", "bob"))
    return PgSignInLog(engine), users


def fail(log, email, ip, minutes, forget_before=LONG_AGO):
    log.record_failure(email, ip, T0 + timedelta(minutes=minutes), forget_before=forget_before)


def test_recent_failures_by_email_by_address_and_by_pair_newest_first(world):
    log, _ = world
    fail(log, "ada@example.com", "203.0.113.9", 1)
    fail(log, "ada@example.com", "198.51.100.7", 2)
    fail(log, "nobody@example.com", "203.0.113.9", 3)
    fail(log, "ada@example.com", "203.0.113.9", 4)
    at = [T0 + timedelta(minutes=m) for m in range(5)]
    assert log.recent_failures(T0, limit=10, email="ada@example.com") == [at[4], at[2], at[1]]
    assert log.recent_failures(T0, limit=10, client_ip="203.0.113.9") == [at[4], at[3], at[1]]
    assert log.recent_failures(T0, limit=10, email="ada@example.com", client_ip="203.0.113.9") == [at[4], at[1]]
    assert log.recent_failures(T0, limit=2, email="ada@example.com") == [at[4], at[2]]
    assert log.recent_failures(at[2], limit=10, email="ada@example.com") == [at[4]]  # strictly after `since`


def test_clearing_forgets_one_pair_only(world):
    log, _ = world
    fail(log, "ada@example.com", "203.0.113.9", 1)
    fail(log, "ada@example.com", "198.51.100.7", 2)
    fail(log, "bob@example.com", "203.0.113.9", 3)
    log.clear_failures("ada@example.com", "203.0.113.9")
    assert log.recent_failures(T0, limit=10, email="ada@example.com") == [T0 + timedelta(minutes=2)]
    assert log.recent_failures(T0, limit=10, client_ip="203.0.113.9") == [T0 + timedelta(minutes=3)]


def test_writing_a_failure_forgets_failures_that_no_longer_count(world):
    log, _ = world
    fail(log, "ada@example.com", "203.0.113.9", 0)
    fail(log, "bob@example.com", "198.51.100.7", 10)
    fail(log, "eve@example.com", "192.0.2.1", 30, forget_before=T0 + timedelta(minutes=10))
    assert log.recent_failures(LONG_AGO, limit=10, email="ada@example.com") == []
    assert log.recent_failures(LONG_AGO, limit=10, email="bob@example.com") == [T0 + timedelta(minutes=10)]


def test_successes_are_remembered_per_user_and_address(world):
    log, (ada, bob) = world
    log.record_success(ada, "203.0.113.9", T0, forget_before=LONG_AGO)
    assert log.signed_in_from(ada, "203.0.113.9", T0 - timedelta(seconds=1))
    assert not log.signed_in_from(ada, "203.0.113.9", T0)  # strictly after `since`
    assert not log.signed_in_from(ada, "198.51.100.7", LONG_AGO)
    assert not log.signed_in_from(bob, "203.0.113.9", LONG_AGO)
    later = T0 + timedelta(days=20)
    log.record_success(ada, "203.0.113.9", later, forget_before=LONG_AGO)
    log.record_success(ada, "203.0.113.9", T0, forget_before=LONG_AGO)  # an older success never moves it back
    assert log.signed_in_from(ada, "203.0.113.9", later - timedelta(seconds=1))


def test_writing_a_success_forgets_successes_that_no_longer_count(world):
    log, (ada, bob) = world
    log.record_success(ada, "203.0.113.9", T0, forget_before=LONG_AGO)
    log.record_success(bob, "198.51.100.7", T0 + timedelta(days=40), forget_before=T0 + timedelta(days=10))
    assert not log.signed_in_from(ada, "203.0.113.9", LONG_AGO)
    assert log.signed_in_from(bob, "198.51.100.7", LONG_AGO)


def test_postgres_forgets_a_deleted_users_addresses(make_container):
    engine = make_container().engine()
    with engine.begin() as conn:
        user = PgDirectory(conn).add_user("ada@example.com", "Ada", None, server_admin=False)
    PgSignInLog(engine).record_success(user.id, "203.0.113.9", T0, forget_before=LONG_AGO)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM users WHERE id = :id"), {"id": user.id})
        assert conn.execute(sa.text("SELECT count(*) FROM login_successes")).scalar_one() == 0
