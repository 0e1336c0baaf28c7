"""`tow backup` / `tow restore` (SPEC §9): a whole deployment round-trips through one archive, and a damaged
archive or a database in use is refused without changing anything."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from dependency_injector import providers
from litestar.testing import TestClient

from tests.e2e.org_world import FIRST, World
from tests.postgres_fixtures import SECRET
from tow_adapters.argon2_password_hasher import Argon2PasswordHasher
from tow_http.cli import main
from tow_http.composition import Container, build_job_worker
from tow_http.config import load_config

TREES = "uploads:\n  upload_storage_path: ./files\nexports:\n  export_storage_path: ./exports\n"


def write_config(directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / "tow.yaml"
    path.write_text(TREES)
    return path


def container_on(config_path: Path, database_url: str) -> Container:
    container = Container(config=load_config(config_path, environ={"APP_SECRET": SECRET}), database_url=database_url)
    container.password_hasher.override(providers.Object(Argon2PasswordHasher(time_cost=1, memory_cost=8,
                                                                             parallelism=1)))
    return container


def tow(config_path: Path, database_url: str, monkeypatch, *argv: str) -> int:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("APP_SECRET", SECRET)
    return main(["--config", str(config_path), *argv])


def table_count(database_url: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar_one()
    finally:
        engine.dispose()


@pytest.fixture
def source(tmp_path, fresh_database_url):
    """A world with records, an attachment and a completed export, on its own database and directory."""
    config_path = write_config(tmp_path / "source")
    container = container_on(config_path, fresh_database_url)
    container.schema_migrator().upgrade()
    world = World(container)
    spec = world.create(world.ada, type="doc", scope=world.scope("APP"), title="APP spec", body="the design")
    world.create(world.bob, type="doc", scope={"kind": "user", "id": world.bob_id}, title="Bob's notes", body="mine")
    body = os.urandom(50_000)
    upload = world.ada.post(f"{world.base}/uploads", params={"filename": "design.bin"}, content=body,
                            headers={"content-type": "application/octet-stream"}).json()
    assert world.ada.put(f"{world.base}/records/{spec['display_id']}/attachments/{upload['id']}").status_code == 200
    export = world.ada.post(f"{world.base}/exports", json={"kind": "organisation"}).json()
    assert build_job_worker(container.engine(), container.config(), container.export_files(),
                            container.upload_store()).drain() == 1
    yield world, config_path, fresh_database_url, upload, export, hashlib.sha256(body).hexdigest()
    container.engine().dispose()


def fresh_target(embedded_postgres, tmp_path, name: str) -> tuple[Path, str]:
    database = f"restore_{os.getpid()}_{name}"
    embedded_postgres.ensure_database(database)
    return write_config(tmp_path / name), embedded_postgres.url(database)


def signed_in(container: Container, email: str, password: str) -> TestClient:
    client = TestClient(container.app(), base_url="http://127.0.0.1:8000", raise_server_exceptions=False)
    assert client.post("/api/auth/login", json={"email": email, "password": password}).status_code == 200
    return client


def titles(client: TestClient, base: str) -> list[str]:
    return [r["title"] for r in client.get(f"{base}/records").json()["items"]]


def test_a_backup_restored_on_a_fresh_server_shows_the_same_records_attachment_and_export(
        source, embedded_postgres, tmp_path, monkeypatch, capsys):
    world, config_path, database_url, upload, export, upload_sha = source
    ada_titles, bob_titles = titles(world.ada, world.base), titles(world.bob, world.base)
    export_bytes = world.ada.get(f"/api/exports/{export['id']}/download").content
    archive = tmp_path / "backup.tar.gz"

    assert tow(config_path, database_url, monkeypatch, "backup", "--output", str(archive)) == 0
    assert capsys.readouterr().err == ""  # stderr is not a terminal: no progress lines
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # it holds every record and file
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
    assert names[0] == "database.dump" and names[-1] == "manifest.json"
    assert not any(n.endswith((".env", ".yaml")) for n in names)
    assert manifest["schema_revision"] == world.container.schema_migrator().schema_state().latest_revision
    assert {m["sha256"] for m in manifest["members"] if m["name"].startswith("uploads/")} == {upload_sha}
    assert any(m["name"].startswith("exports/") for m in manifest["members"])
    # A backup never overwrites a file.
    assert tow(config_path, database_url, monkeypatch, "backup", "--output", str(archive)) == 1
    assert "already exists" in capsys.readouterr().err

    target_config, target_url = fresh_target(embedded_postgres, tmp_path, "target")
    assert tow(target_config, target_url, monkeypatch, "restore", str(archive)) == 0
    captured = capsys.readouterr()
    assert "1 upload and 1 export files" in captured.out and captured.err == ""

    restored = container_on(target_config, target_url)
    try:
        ada = signed_in(restored, FIRST["email"], FIRST["password"])
        bob = signed_in(restored, "bob@example.com", "another good password")
        assert titles(ada, world.base) == ada_titles and titles(bob, world.base) == bob_titles
        assert "Bob's notes" not in ada_titles  # still private to Bob after the restore
        downloaded = ada.get(f"/api/uploads/{upload['id']}/content")
        assert downloaded.status_code == 200 and hashlib.sha256(downloaded.content).hexdigest() == upload_sha
        assert ada.get(f"/api/exports/{export['id']}/download").content == export_bytes
        assert restored.schema_migrator().schema_state().up_to_date
    finally:
        restored.engine().dispose()


def test_on_a_terminal_backup_and_restore_show_each_stage_on_stderr(source, embedded_postgres, tmp_path, monkeypatch,
                                                                   capsys):
    _, config_path, database_url, *_ = source
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich's switch: treat stderr as an interactive terminal
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    archive = tmp_path / "shown.tar"
    assert tow(config_path, database_url, monkeypatch, "backup", "--output", str(archive)) == 0
    captured = capsys.readouterr()
    assert "dumping the database" in captured.err and "writing shown.tar" in captured.err and "ETA" in captured.err
    assert "backup written to" in captured.out and "dumping" not in captured.out
    target_config, target_url = fresh_target(embedded_postgres, tmp_path, "shown")
    assert tow(target_config, target_url, monkeypatch, "restore", str(archive)) == 0
    shown = capsys.readouterr().err
    for stage in ("verifying shown.tar", "unpacking shown.tar", "restoring the database"):
        assert stage in shown


def test_restore_refuses_a_database_in_use_or_not_empty_and_replaces_it_with_yes(
        source, tmp_path, monkeypatch, capsys):
    world, config_path, database_url, upload, _, upload_sha = source
    archive = tmp_path / "backup.tar"
    assert tow(config_path, database_url, monkeypatch, "backup", "--output", str(archive)) == 0
    later = world.create(world.ada, type="doc", scope={"kind": "organisation"}, title="Written after the backup")
    capsys.readouterr()

    in_use = world.container.engine().connect()  # like a running `tow serve`
    try:
        assert tow(config_path, database_url, monkeypatch, "restore", str(archive), "--yes") == 1
        assert "stop `tow serve`" in capsys.readouterr().err
    finally:
        in_use.close()
    world.container.engine().dispose()
    assert tow(config_path, database_url, monkeypatch, "restore", str(archive)) == 1
    error = capsys.readouterr().err
    assert "not empty" in error and "--yes" in error
    assert titles(world.ada, world.base)[0] == later["title"]  # refused: nothing changed

    world.container.engine().dispose()
    assert tow(config_path, database_url, monkeypatch, "restore", str(archive), "--yes") == 0
    out = capsys.readouterr().out
    assert "previous files are kept in" in out
    world.container.engine().dispose()
    assert later["title"] not in titles(world.ada, world.base)
    assert hashlib.sha256(world.ada.get(f"/api/uploads/{upload['id']}/content").content).hexdigest() == upload_sha
    aside = [p for p in config_path.parent.iterdir() if p.name.startswith("files.replaced-")]
    assert len(aside) == 1 and any(p.is_file() for p in aside[0].rglob("*"))


def _rewrite(archive: Path, target: Path, change) -> None:
    """Copy ``archive`` member by member, letting ``change(name, data)`` alter or drop (None) each one."""
    with tarfile.open(archive) as tar, tarfile.open(target, "w") as out:
        for member in tar.getmembers():
            data = change(member.name, tar.extractfile(member).read())
            if data is not None:
                member.size = len(data)
                out.addfile(member, io.BytesIO(data))


DAMAGES = ("tampered upload", "tampered dump", "truncated", "no manifest", "extra member", "path traversal")


def _damage(archive: Path, damaged: Path, damage: str) -> None:
    if damage == "truncated":
        damaged.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    elif damage == "no manifest":
        _rewrite(archive, damaged, lambda name, data: None if name == "manifest.json" else data)
    elif damage in ("extra member", "path traversal"):
        _rewrite(archive, damaged, lambda name, data: data)
        with tarfile.open(damaged, "a") as tar:
            info = tarfile.TarInfo("uploads/ab/cd/extra" if damage == "extra member" else "uploads/../../evil")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    else:
        prefix = "uploads/" if damage == "tampered upload" else "database.dump"
        _rewrite(archive, damaged, lambda name, data: data[:-1] + b"!" if name.startswith(prefix) else data)


def test_a_damaged_archive_is_refused_before_anything_changes(source, embedded_postgres, tmp_path, monkeypatch,
                                                             capsys):
    _, config_path, database_url, *_ = source
    archive = tmp_path / "backup.tar"
    assert tow(config_path, database_url, monkeypatch, "backup", "--output", str(archive)) == 0
    for damage in DAMAGES:
        damaged = tmp_path / f"{damage.replace(' ', '_')}.tar"
        _damage(archive, damaged, damage)
        target_config, target_url = fresh_target(embedded_postgres, tmp_path, damage.replace(" ", "_"))
        capsys.readouterr()

        assert tow(target_config, target_url, monkeypatch, "restore", str(damaged), "--yes") == 1, damage
        assert "nothing was changed" in capsys.readouterr().err, damage
        assert table_count(target_url) == 0, damage
        assert sorted(p.name for p in target_config.parent.iterdir()) == ["tow.yaml"], damage  # no file touched
        assert not (tmp_path / "evil").exists()


def test_a_backup_from_an_older_schema_is_migrated_and_one_from_a_newer_tow_is_refused(
        embedded_postgres, tmp_path, monkeypatch, capsys):
    from alembic import command
    from alembic.config import Config

    from tow_adapters.postgres.migrator import MIGRATIONS_DIR, PgSchemaMigrator

    old_config, old_url = fresh_target(embedded_postgres, tmp_path, "old")
    engine = sa.create_engine(old_url)
    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        alembic_config.attributes["connection"] = conn
        command.upgrade(alembic_config, "0009")
        conn.execute(sa.text("INSERT INTO organisations (name) VALUES ('Older Acme')"))
    engine.dispose()
    archive = tmp_path / "old.tar.gz"
    assert tow(old_config, old_url, monkeypatch, "backup", "--output", str(archive)) == 0

    future = tmp_path / "future.tar"
    _rewrite(archive, future, lambda name, data: data if name != "manifest.json" else
             json.dumps({**json.loads(data), "schema_revision": "9999"}).encode())
    target_config, target_url = fresh_target(embedded_postgres, tmp_path, "newer")
    capsys.readouterr()
    assert tow(target_config, target_url, monkeypatch, "restore", str(future)) == 1
    assert "newer TOW (schema revision 9999)" in capsys.readouterr().err
    assert table_count(target_url) == 0

    assert tow(target_config, target_url, monkeypatch, "restore", str(archive)) == 0
    engine = sa.create_engine(target_url)
    latest = PgSchemaMigrator(engine).latest_revision()
    assert f"migrated the schema from 0009 to {latest}" in capsys.readouterr().out
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM organisations")).scalars().all() == ["Older Acme"]
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == latest
    finally:
        engine.dispose()


def test_missing_postgres_tools_are_named(monkeypatch):
    from tow_adapters.postgres import backup
    from tow_core.errors import NotConfigured

    monkeypatch.setattr(backup, "_bundled_bin_dir", lambda: None)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(NotConfigured, match="pg_restore was not found.*PATH"):
        backup.find_postgres_tool("pg_restore")


def test_a_restore_that_fails_half_way_leaves_the_replaced_database_as_it_was(
        embedded_postgres, tmp_path, monkeypatch, capsys):
    """--yes drops the old contents in the same transaction as the restore: a failure rolls both back."""
    from tow_adapters.postgres.migrator import PgSchemaMigrator

    def database(name: str, *statements: str) -> tuple[Path, str]:
        config_path, url = fresh_target(embedded_postgres, tmp_path, name)
        engine = sa.create_engine(url)
        PgSchemaMigrator(engine).upgrade()
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
        engine.dispose()
        return config_path, url

    # The backup creates schema "side", which the target already has: the restore fails after the drop.
    source_config, source_url = database("clashing_source", "CREATE SCHEMA side", "CREATE TABLE side.t (x int)")
    archive = tmp_path / "clash.tar"
    assert tow(source_config, source_url, monkeypatch, "backup", "--output", str(archive)) == 0
    target_config, target_url = database("clashing_target", "CREATE SCHEMA side",
                                         "INSERT INTO organisations (name) VALUES ('Still here')")
    capsys.readouterr()

    assert tow(target_config, target_url, monkeypatch, "restore", str(archive), "--yes") == 1
    assert "psql failed" in capsys.readouterr().err
    engine = sa.create_engine(target_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM organisations")).scalars().all() == ["Still here"]
    finally:
        engine.dispose()
    assert sorted(p.name for p in target_config.parent.iterdir()) == ["tow.yaml"]  # staged files removed
