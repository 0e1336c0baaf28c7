"""`tow backup` / `tow restore` with ``uploads.backend: s3`` (SPEC §9, §11), over a real SeaweedFS: the bucket's objects
go into the same one archive, in the file store's layout, and come back into the configured bucket — or into a
file store, so an archive moves a deployment between backends. Objects the backup does not hold are set aside,
never deleted; a member that does not match the manifest is never published."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest
from dependency_injector import providers

from tests.e2e.org_world import FIRST, World
from tests.e2e.test_backup_restore import _rewrite, signed_in, table_count, titles
from tests.postgres_fixtures import SECRET
from tests.seaweedfs import ACCESS_KEY_ID, SECRET_ACCESS_KEY, objects
from tow_adapters.argon2_password_hasher import Argon2PasswordHasher
from tow_core.errors import InvalidInput
from tow_http.cli import main
from tow_http.composition import Container, build_job_worker
from tow_http.config import load_config

S3_ENVIRONMENT = {"APP_SECRET": SECRET, "TOW_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
                  "TOW_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}


def s3_config(directory: Path, seaweedfs, bucket: str, prefix: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / "tow.yaml"
    path.write_text(f"uploads:\n  backend: s3\n  s3:\n    endpoint_url: {seaweedfs.endpoint_url}\n"
                    f"    bucket: {bucket}\n    key_prefix: {prefix}\nexports:\n  export_storage_path: ./exports\n")
    return path


def fs_config(directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / "tow.yaml"
    path.write_text("uploads:\n  upload_storage_path: ./files\nexports:\n  export_storage_path: ./exports\n")
    return path


def container_on(config_path: Path, database_url: str) -> Container:
    container = Container(config=load_config(config_path, environ=S3_ENVIRONMENT), database_url=database_url)
    container.password_hasher.override(providers.Object(Argon2PasswordHasher(time_cost=1, memory_cost=8,
                                                                             parallelism=1)))
    return container


def tow(config_path: Path, database_url: str, monkeypatch, *argv: str) -> int:
    monkeypatch.setenv("DATABASE_URL", database_url)
    for name, value in S3_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return main(["--config", str(config_path), *argv])


def fresh_database(embedded_postgres, name: str) -> str:
    database = f"restore_s3_{os.getpid()}_{name}"
    embedded_postgres.ensure_database(database)
    return embedded_postgres.url(database)


@pytest.fixture
def s3_source(tmp_path, fresh_database_url, seaweedfs, s3_bucket, s3_prefix):
    """A world on S3 uploads: records, an attachment and a completed export."""
    config_path = s3_config(tmp_path / "source", seaweedfs, s3_bucket, f"{s3_prefix}source/")
    container = container_on(config_path, fresh_database_url)
    container.schema_migrator().upgrade()
    world = World(container)
    spec = world.create(world.ada, type="doc", scope=world.scope("APP"), title="APP spec", body="the design")
    body = os.urandom(70_000)
    upload = world.ada.post(f"{world.base}/uploads", params={"filename": "design.bin"}, content=body,
                            headers={"content-type": "application/octet-stream"}).json()
    assert world.ada.put(f"{world.base}/records/{spec['display_id']}/attachments/{upload['id']}").status_code == 200
    world.ada.post(f"{world.base}/exports", json={"kind": "organisation"})
    assert build_job_worker(container.engine(), container.config(), container.export_files(),
                            container.upload_store()).drain() == 1
    yield world, config_path, fresh_database_url, upload, hashlib.sha256(body).hexdigest()
    container.engine().dispose()


def downloaded_sha(config_path: Path, database_url: str, upload_id: int) -> str:
    restored = container_on(config_path, database_url)
    try:
        ada = signed_in(restored, FIRST["email"], FIRST["password"])
        response = ada.get(f"/api/uploads/{upload_id}/content")
        assert response.status_code == 200
        return hashlib.sha256(response.content).hexdigest()
    finally:
        restored.engine().dispose()


def test_a_backup_holds_the_buckets_objects_and_restores_them_into_another_bucket_prefix_or_a_file_store(
        s3_source, seaweedfs, s3_bucket, s3_prefix, embedded_postgres, tmp_path, monkeypatch, capsys):
    world, config_path, database_url, upload, upload_sha = s3_source
    archive = tmp_path / "backup.tar.gz"
    assert tow(config_path, database_url, monkeypatch, "backup", "--output", str(archive)) == 0
    with tarfile.open(archive) as tar:
        uploads = [m for m in tar.getmembers() if m.name.startswith("uploads/")]
        [member] = uploads
        assert hashlib.sha256(tar.extractfile(member).read()).hexdigest() == upload_sha
    name = member.name.rsplit("/", 1)[-1]
    assert member.name == f"uploads/{name[:2]}/{name[2:4]}/{name}"  # the file store's layout

    # Into another prefix of the bucket, which already holds a stray object: it is set aside, not deleted.
    client, target_prefix = seaweedfs.client(), f"{s3_prefix}target/uploads/"
    client.put_object(Bucket=s3_bucket, Key=f"{target_prefix}{'e' * 32}", Body=b"stray")
    target_config = s3_config(tmp_path / "target", seaweedfs, s3_bucket, target_prefix)
    target_url = fresh_database(embedded_postgres, "s3_target")
    capsys.readouterr()
    assert tow(target_config, target_url, monkeypatch, "restore", str(archive)) == 0
    out = capsys.readouterr().out
    assert "1 upload and 1 export files" in out
    assert f"s3://{s3_bucket}/{target_prefix}replaced-" in out
    listed = objects(client, s3_bucket, target_prefix)
    assert name in listed and [k for k in listed if k.endswith("e" * 32)][0].startswith("replaced-")
    assert downloaded_sha(target_config, target_url, upload["id"]) == upload_sha
    assert tow(target_config, target_url, monkeypatch, "uploads", "verify") == 0

    # Into a file store: the same archive, unchanged.
    file_config, file_url = fs_config(tmp_path / "files"), fresh_database(embedded_postgres, "fs_target")
    assert tow(file_config, file_url, monkeypatch, "restore", str(archive)) == 0
    assert (file_config.parent / "files" / name[:2] / name[2:4] / name).is_file()
    assert downloaded_sha(file_config, file_url, upload["id"]) == upload_sha


def test_a_file_store_backup_restores_into_a_bucket(tmp_path, fresh_database_url, seaweedfs, s3_bucket, s3_prefix,
                                                    embedded_postgres, monkeypatch, capsys):
    config_path = fs_config(tmp_path / "source")
    container = container_on(config_path, fresh_database_url)
    container.schema_migrator().upgrade()
    world = World(container)
    body = os.urandom(6 * 1024 * 1024)  # more than one part: a multipart upload into the bucket
    upload = world.ada.post(f"{world.base}/uploads", params={"filename": "big.bin"}, content=body,
                            headers={"content-type": "application/octet-stream"}).json()
    archive = tmp_path / "fs.tar"
    assert tow(config_path, fresh_database_url, monkeypatch, "backup", "--output", str(archive)) == 0
    container.engine().dispose()

    target_config = s3_config(tmp_path / "target", seaweedfs, s3_bucket, f"{s3_prefix}uploads/")
    target_url = fresh_database(embedded_postgres, "from_fs")
    assert tow(target_config, target_url, monkeypatch, "restore", str(archive)) == 0
    assert "replaced-" not in capsys.readouterr().out  # an empty prefix: nothing set aside
    assert downloaded_sha(target_config, target_url, upload["id"]) == hashlib.sha256(body).hexdigest()
    restored = container_on(target_config, target_url)
    try:
        ada = signed_in(restored, FIRST["email"], FIRST["password"])
        assert titles(ada, world.base) == titles(world.ada, world.base)
        assert ada.get(f"/api/uploads/{upload['id']}/content", headers={"Range": "bytes=5242870-5242889"}
                       ).content == body[5242870:5242890]  # across the first part boundary
    finally:
        restored.engine().dispose()


def test_a_tampered_object_is_refused_and_never_published(s3_source, seaweedfs, s3_bucket, s3_prefix,
                                                          embedded_postgres, tmp_path, monkeypatch, capsys):
    _, config_path, database_url, *_ = s3_source
    archive, damaged = tmp_path / "backup.tar", tmp_path / "damaged.tar"
    assert tow(config_path, database_url, monkeypatch, "backup", "--output", str(archive)) == 0
    _rewrite(archive, damaged, lambda name, data: data[:-1] + b"!" if name.startswith("uploads/") else data)
    target_prefix = f"{s3_prefix}tampered/"
    target_config = s3_config(tmp_path / "target", seaweedfs, s3_bucket, target_prefix)
    target_url = fresh_database(embedded_postgres, "tampered")
    capsys.readouterr()
    assert tow(target_config, target_url, monkeypatch, "restore", str(damaged)) == 1
    assert "nothing was changed" in capsys.readouterr().err
    assert table_count(target_url) == 0 and objects(seaweedfs.client(), s3_bucket, target_prefix) == []


def test_restoring_an_object_checks_its_path_and_sha256_before_publishing(s3_store, seaweedfs, s3_prefix):
    name = "ab" * 16
    for path, sha in ((f"ab/ab/{name}", "0" * 64), (f"xx/yy/{name}", hashlib.sha256(b"x").hexdigest()),
                      ("../x", hashlib.sha256(b"x").hexdigest())):
        with pytest.raises(InvalidInput):
            s3_store.restore_object(path, [b"x"], sha256=sha)
    assert objects(seaweedfs.client(), s3_store.bucket, s3_prefix) == []
    assert s3_store.restore_object(f"ab/ab/{name}", [b"x"], sha256=hashlib.sha256(b"x").hexdigest()) == name
    assert s3_store.exists(name)


def test_an_organisation_export_carries_attachment_contents_from_one_bucket_prefix_into_another(
        tmp_path, seaweedfs, s3_bucket, s3_prefix, embedded_postgres):
    """The export job reads attachments through the store, and `tow import` writes them through it."""
    from tests.e2e.test_export_import import ROOT, organisation_export

    source = container_on(s3_config(tmp_path / "exp", seaweedfs, s3_bucket, f"{s3_prefix}exp/"),
                          fresh_database(embedded_postgres, "exp"))
    target = container_on(s3_config(tmp_path / "imp", seaweedfs, s3_bucket, f"{s3_prefix}imp/"),
                          fresh_database(embedded_postgres, "imp"))
    try:
        source.schema_migrator().upgrade()
        world = World(source)
        doc = world.create(world.ada, type="doc", scope={"kind": "organisation"}, title="Handbook", body="")
        body = os.urandom(40_000)
        upload = world.ada.post(f"{world.base}/uploads", params={"filename": "handbook.pdf"}, content=body,
                                headers={"content-type": "application/octet-stream"}).json()
        world.ada.put(f"{world.base}/records/{doc['display_id']}/attachments/{upload['id']}")
        exported = organisation_export(world, world.ada)

        target.schema_migrator().upgrade()
        root = World.client(type("W", (), {"container": target})())
        assert root.post("/api/auth/register-first", json=ROOT).status_code == 201
        report = root.post("/api/server/imports", content=exported).json()
        assert (report["counts"]["attachments"], report["counts"]["attachments_without_content"]) == (1, 0)
        [name] = objects(seaweedfs.client(), s3_bucket, f"{s3_prefix}imp/")
        assert seaweedfs.client().get_object(Bucket=s3_bucket, Key=f"{s3_prefix}imp/{name}")["Body"].read() == body
    finally:
        source.engine().dispose()
        target.engine().dispose()
