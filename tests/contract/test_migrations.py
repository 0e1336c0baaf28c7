"""Migrations on a real PostgreSQL: from empty to latest, readiness before and after, pgvector present."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from tow_core.errors import DependencyUnavailable
from tow_http.cli import main
from tow_http.composition import Container
from tow_http.config import load_config

SECRET = "s" * 48


@pytest.fixture
def container(tmp_path, fresh_database_url):
    (tmp_path / "tow.yaml").write_text("")
    config = load_config(tmp_path / "tow.yaml", environ={"APP_SECRET": SECRET})
    container = Container(config=config, database_url=fresh_database_url)
    yield container
    container.engine().dispose()


def test_empty_database_is_not_ready_until_migrated(container):
    migrator = container.schema_migrator()
    assert migrator.schema_state().current_revision is None
    with TestClient(container.app()) as client:
        before = client.get("/api/ready")
        migrator.upgrade()
        after = client.get("/api/ready")
    assert before.status_code == 503
    assert before.json()["error"]["code"] == "schema_out_of_date"
    assert "tow db upgrade" in before.json()["error"]["message"]
    assert before.headers["retry-after"]
    assert after.status_code == 200
    assert after.json()["schema_revision"] == migrator.latest_revision()


def test_upgrade_installs_pgvector_and_is_idempotent(container):
    migrator = container.schema_migrator()
    first = migrator.upgrade()
    second = migrator.upgrade()
    assert first == second and first.up_to_date
    with container.engine().connect() as conn:
        version = conn.execute(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
        distance = conn.execute(sa.text("SELECT '[1,0]'::vector <-> '[0,1]'::vector")).scalar()
    assert version is not None and tuple(int(p) for p in version.split(".")[:2]) >= (0, 8)
    assert distance == pytest.approx(2**0.5)


def test_unreachable_database_is_a_dependency_error_not_a_crash(tmp_path):
    config = load_config(None, environ={"APP_SECRET": SECRET})
    url = f"postgresql+psycopg://nobody@/tow?host={tmp_path}&port=1"
    container = Container(config=config, database_url=url)
    with pytest.raises(DependencyUnavailable):
        container.schema_migrator().schema_state()
    with TestClient(container.app()) as client:
        response = client.get("/api/ready")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dependency_unavailable"
    assert response.headers["retry-after"]


def cli(tmp_path, monkeypatch, url, *args):
    monkeypatch.setenv("APP_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_URL", url)
    config = tmp_path / "tow.yaml"
    config.write_text("")
    return main(["--config", str(config), *args])


def test_cli_db_status_and_upgrade(tmp_path, monkeypatch, capsys, fresh_database_url):
    assert cli(tmp_path, monkeypatch, fresh_database_url, "db", "status") == 1
    assert "run `tow db upgrade`" in capsys.readouterr().out
    assert cli(tmp_path, monkeypatch, fresh_database_url, "db", "upgrade") == 0
    assert "database upgraded from empty to" in capsys.readouterr().out
    assert cli(tmp_path, monkeypatch, fresh_database_url, "db", "status") == 0
    assert "database is up to date" in capsys.readouterr().out


def test_serve_refuses_an_unmigrated_database_naming_the_command(tmp_path, monkeypatch, capsys, fresh_database_url):
    assert cli(tmp_path, monkeypatch, fresh_database_url, "serve") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run `tow db upgrade`" in err


def test_a_deadlocked_transaction_becomes_a_conflict_to_retry(engine):
    """Two transactions locking two rows in opposite order: PostgreSQL aborts one; it must surface as a
    core Conflict (HTTP 409), not a vendor error (500)."""
    import threading

    from tow_adapters.postgres.engine import transaction
    from tow_core.errors import Conflict

    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE pair (id int PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO pair VALUES (1), (2)"))
    barrier = threading.Barrier(2)
    outcomes = []

    def lock(first: int, second: int) -> None:
        try:
            with transaction(engine) as conn:
                conn.execute(sa.text("SELECT 1 FROM pair WHERE id = :i FOR UPDATE"), {"i": first})
                barrier.wait(timeout=10)
                conn.execute(sa.text("SELECT 1 FROM pair WHERE id = :i FOR UPDATE"), {"i": second})
            outcomes.append("committed")
        except Conflict as exc:
            outcomes.append(exc.message)

    threads = [threading.Thread(target=lock, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes)[0] == "committed" and "try again" in sorted(outcomes)[1], outcomes
