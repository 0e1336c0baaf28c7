"""`tow uploads verify [--repair]`: orphan files, partial files and rows without their file (SPEC §5, §12)."""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from tow_adapters.fs_upload_store import FsUploadStore
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_http.cli import main


def test_verify_reports_orphans_partials_and_missing_files_and_repair_quarantines(
        engine, fresh_database_url, tmp_path, monkeypatch, capsys):
    PgSchemaMigrator(engine).upgrade()
    (tmp_path / "tow.yaml").write_text("uploads:\n  upload_storage_path: ./files\n")
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    store = FsUploadStore(tmp_path / "files")
    kept = store.put([b"kept"], max_bytes=100)
    orphan = store.put([b"orphan"], max_bytes=100)
    missing = store.put([b"gone"], max_bytes=100)
    partial = store.root / kept.storage_name[:2] / kept.storage_name[2:4] / (".tmp-" + "ab" * 16)
    partial.write_bytes(b"half")
    recent = store.put([b"just written"], max_bytes=100)
    an_hour_ago = time.time() - 7200
    for path in (partial, *(store.root / n[:2] / n[2:4] / n for n in (kept.storage_name, orphan.storage_name))):
        os.utime(path, (an_hour_ago, an_hour_ago))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO organisations (id, name) VALUES (1, 'Acme')"))
        conn.execute(sa.text(
            "INSERT INTO uploads (organisation_id, storage_name, original_name, size_bytes, sha256) "
            "VALUES (1, :a, 'a', 4, repeat('0', 64)), (1, :b, 'b', 4, repeat('0', 64))"),
            {"a": kept.storage_name, "b": missing.storage_name})
    store.delete(missing.storage_name)
    config = ["--config", str(tmp_path / "tow.yaml"), "uploads", "verify"]

    assert main(config) == 1
    out = capsys.readouterr().out
    assert f"orphan file: {orphan.storage_name}" in out
    assert "partial file:" in out
    assert f"missing file (row without its file): {missing.storage_name}" in out
    assert recent.storage_name not in out and "1 recent files skipped" in out  # may still be committing
    assert store.exists(orphan.storage_name)  # reporting changes nothing

    assert main([*config, "--repair"]) == 1  # the missing file cannot be repaired
    out = capsys.readouterr().out
    assert "2 quarantined" in out and not store.exists(orphan.storage_name) and not partial.exists()
    quarantined = sorted(p.name for p in (store.root / "quarantine").rglob("*") if p.is_file())
    assert quarantined == sorted([orphan.storage_name, partial.name.removeprefix(".")])
    assert store.exists(kept.storage_name) and store.exists(recent.storage_name)

    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM uploads WHERE storage_name = :b"), {"b": missing.storage_name})
    assert main([*config, "--grace-seconds", "0"]) == 1  # the recent file is an orphan once old enough
    assert main(config) == 0
    assert "0 orphan, 0 partial, 0 missing" in capsys.readouterr().out.splitlines()[-1]
