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
    from tests.contract.test_records_leak import LEAK_STATS
    from tests.contract.test_semantic_recall import RECALL_STATS
    from tests.contract.test_visibility_differential import SEARCH_STATS, STATS

    _upload_summary(terminalreporter)
    _export_summary(terminalreporter)
    _conformance_summary(terminalreporter)

    if LEAK_STATS["worlds"]:
        terminalreporter.write_line(
            f"records leak test: {LEAK_STATS['worlds']} worlds, {LEAK_STATS['checks']} (user, path, record) checks, "
            f"{LEAK_STATS['leaks']} leaks"
        )

    if STATS["worlds"]:
        terminalreporter.write_line(
            f"visibility differential: {STATS['worlds']} worlds, {STATS['pairs']} (user, record, read|write) "
            f"pairs compared, {STATS['disagreements']} disagreements"
        )

    if SEARCH_STATS["worlds"]:
        terminalreporter.write_line(
            f"search differential: {SEARCH_STATS['worlds']} worlds, {SEARCH_STATS['searches']} semantic/hybrid "
            f"searches, {SEARCH_STATS['leaks']} unreadable results, {SEARCH_STATS['missing']} readable records missed"
        )
    for line in RECALL_STATS:
        terminalreporter.write_line(line)


def _conformance_summary(terminalreporter) -> None:
    from tests.contract.test_openapi_conformance import CONFORMANCE_STATS

    for role, run in CONFORMANCE_STATS.items():
        failures = ", ".join(f"{check} {count}" for check, count in sorted(run["failures"].items())) or "none"
        terminalreporter.write_line(
            f"openapi conformance ({role}): {run['cases']} cases over {run['operations']} operations in "
            f"{run['seconds']:.0f} s, {run['responses_5xx']} responses >= 500, failures: {failures}; "
            f"member 2xx on restricted operations: {run['member_successes']}")


def _export_summary(terminalreporter) -> None:
    from tests.contract.test_export_import import TAMPER_STATS
    from tests.contract.test_member_export_differential import STATS as EXPORT_STATS

    if EXPORT_STATS["worlds"]:
        terminalreporter.write_line(
            f"member export differential: {EXPORT_STATS['worlds']} worlds, {EXPORT_STATS['exports']} member exports, "
            f"{EXPORT_STATS['leaks']} unreadable display IDs named")
    if TAMPER_STATS["tried"]:
        terminalreporter.write_line(
            f"import tampering: {TAMPER_STATS['tried']} mutated exports, {TAMPER_STATS['refused']} refused with the "
            f"offending path, {TAMPER_STATS['changed_database']} left the database changed")


def _upload_summary(terminalreporter) -> None:
    from tests.contract.test_upload_crash import KILL_STATS
    from tests.contract.test_upload_hostile_names import HOSTILE_STATS
    from tests.contract.test_uploads_leak import UPLOAD_LEAK_STATS

    if HOSTILE_STATS["names"]:
        terminalreporter.write_line(f"upload hostile names: {HOSTILE_STATS['names']} tried, "
                                    f"{HOSTILE_STATS['outside_writes']} writes outside the upload root")
    if KILL_STATS["runs"]:
        k = KILL_STATS
        terminalreporter.write_line(
            f"upload crash test: {k['runs']} uploads, {k['kills']} SIGKILLs mid-upload "
            f"({k['between_file_and_row']} aimed between durable file and row commit), {k['completed']} completed "
            f"first; afterwards {k['orphans']} orphan and {k['partials']} partial files quarantined, "
            "0 partial files visible, 0 rows without their file")
    if UPLOAD_LEAK_STATS["worlds"]:
        s = UPLOAD_LEAK_STATS
        terminalreporter.write_line(f"upload leak test: {s['worlds']} worlds, {s['checks']} (user, upload) checks, "
                                    f"{s['leaks']} leaks")


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
