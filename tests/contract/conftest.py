"""Contract tests run against a real embedded PostgreSQL 18 + pgvector, started once per test session.

Each test that needs a database gets a fresh one (``CREATE DATABASE``), so tests never see each
other's rows and migrations run from empty.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tow_adapters.postgres.embedded import EmbeddedPostgres
from tow_adapters.postgres.engine import PoolOptions, create_engine

_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def embedded_postgres(tmp_path_factory) -> Iterator[EmbeddedPostgres]:
    # Short path: PostgreSQL's Unix socket path must stay under ~100 bytes.
    data_dir = Path(tmp_path_factory.mktemp("pg", numbered=True)) / "data"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = EmbeddedPostgres(data_dir)
        server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_database_url(embedded_postgres) -> str:
    name = f"t{os.getpid()}_{next(_database_numbers)}"
    embedded_postgres.ensure_database(name)
    return embedded_postgres.url(name)


@pytest.fixture
def engine(fresh_database_url) -> Iterator[sa.Engine]:
    engine = create_engine(fresh_database_url, PoolOptions(pool_size=2, max_overflow=2))
    yield engine
    engine.dispose()


def pytest_terminal_summary(terminalreporter):
    from tests.contract.test_visibility_differential import STATS

    if STATS["worlds"]:
        terminalreporter.write_line(
            f"visibility differential: {STATS['worlds']} worlds, {STATS['pairs']} (user, record, read|write) "
            f"pairs compared, {STATS['disagreements']} disagreements"
        )
