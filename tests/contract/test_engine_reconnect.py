"""The engine's pooled connections after the server dropped them (a PostgreSQL restart, a failover, an idle
timeout): a connection idle for a moment is pinged and replaced before use, so the request never sees it;
one that went back to the pool just before the drop fails its statement with DependencyUnavailable (503) —
never a 500 — and the pool reconnects for the next one (tow_adapters.postgres.engine)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from tow_adapters.postgres.engine import PING_AFTER_IDLE_SECONDS, PoolOptions, create_engine, transaction
from tow_core.errors import DependencyUnavailable


@pytest.fixture
def engine(fresh_database_url):
    engine = create_engine(fresh_database_url, PoolOptions(pool_size=2, max_overflow=0))
    yield engine
    engine.dispose()


def backend_pid(engine) -> int:
    with transaction(engine) as conn:
        return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()


def drop_connections(engine, fresh_database_url) -> None:
    """From outside the pool: the server ends every other session on this database."""
    other = create_engine(fresh_database_url, PoolOptions(pool_size=1, max_overflow=0))
    with transaction(other) as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    other.dispose()


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(engine, fresh_database_url):
    before = backend_pid(engine)
    drop_connections(engine, fresh_database_url)
    time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)
    assert backend_pid(engine) != before  # pinged, found dead, replaced: the request never saw it


def test_a_connection_dropped_right_after_use_fails_once_with_503_and_the_pool_recovers(engine, fresh_database_url):
    before = backend_pid(engine)
    drop_connections(engine, fresh_database_url)  # within the second: no ping
    with pytest.raises(DependencyUnavailable), transaction(engine) as conn:
        conn.execute(sa.text("SELECT 1"))
    assert backend_pid(engine) not in (before, None)  # the next request reconnects
