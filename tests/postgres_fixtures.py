"""The embedded PostgreSQL 18 + pgvector that contract and end-to-end tests share, started once per test session,
and the real app built on it through the composition root.

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


SECRET = "contract-test-secret-" + "x" * 30


@pytest.fixture
def make_container(fresh_database_url, tmp_path):
    """Build the real app through the composition root on a fresh, migrated database."""
    from dependency_injector import providers

    from tow_adapters.argon2_password_hasher import Argon2PasswordHasher
    from tow_http.composition import Container
    from tow_http.config import load_config

    built = []

    def build(yaml_text: str = "", **environ: str):
        config_path = tmp_path / f"tow{len(built)}.yaml"
        config_path.write_text(yaml_text)
        config = load_config(config_path, environ={"APP_SECRET": SECRET, **environ})
        container = Container(config=config, database_url=fresh_database_url)
        # Cheap argon2 parameters: the hasher's real parameters are pinned by its own unit tests.
        container.password_hasher.override(providers.Object(Argon2PasswordHasher(time_cost=1, memory_cost=8,
                                                                                 parallelism=1)))
        container.schema_migrator().upgrade()
        built.append(container)
        return container

    yield build
    for container in built:
        container.live_hub().close()  # the listening connection, if a live stream opened it
        container.engine().dispose()


@pytest.fixture
def app_client(make_container):
    from litestar.testing import TestClient

    default = []

    def client(container=None):
        """A separate browser (its own cookie jar) on ``container``'s app (default: one shared container).

        Not entered as a context manager: several clients share one app, and the app has no lifespan
        work, so each request runs on its own short-lived portal."""
        if container is None:
            default[:] = default or [make_container()]
            container = default[0]
        return TestClient(container.app(), base_url="http://127.0.0.1:8000", raise_server_exceptions=False)

    return client
