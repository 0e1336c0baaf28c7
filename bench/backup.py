"""Benchmark: `tow backup` and `tow restore` of a deployment with N records and M upload files.

Builds the organisation of `bench/export.py` (N records, default 100,000, with revisions, comments and
references) by bulk SQL on the embedded PostgreSQL, writes M upload files (default 200 of 256 KiB of
random bytes, so compression cannot flatter the figure), then runs the real commands, each as its own
`tow` process: `tow backup` (gzip) and `tow restore` into an empty database and a fresh directory.
Reports wall time and archive size.

Run: `.venv/bin/python bench/backup.py [--records N] [--files M]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from export import BUILD, mib  # noqa: E402  (bench/ is a directory of scripts, not a package)

from tow_adapters.fs_upload_store import FsUploadStore  # noqa: E402
from tow_adapters.postgres.embedded import EmbeddedPostgres  # noqa: E402
from tow_adapters.postgres.engine import PoolOptions, create_engine  # noqa: E402
from tow_adapters.postgres.migrator import PgSchemaMigrator  # noqa: E402

TOW = str(Path(sys.executable).with_name("tow"))


def timed_tow(config: Path, url: str, *argv: str) -> float:
    env = {**os.environ, "DATABASE_URL": url}
    start = time.perf_counter()
    subprocess.run([TOW, "--config", str(config), *argv], env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tow-bench-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = Path(tmp)
        for side in ("source", "target"):
            (root / side).mkdir()
            (root / side / "tow.yaml").write_text("uploads:\n  upload_storage_path: ./files\n")
        server = EmbeddedPostgres(root / "pg")
        url = server.start("bench")
        engine = create_engine(url, PoolOptions(statement_timeout_ms=600_000))
        try:
            PgSchemaMigrator(engine).upgrade()
            with engine.begin() as conn:
                for statement in BUILD.split(";\n"):
                    if statement.strip():
                        conn.execute(sa.text(statement), {"n": args.records})
            engine.dispose()
            store = FsUploadStore(root / "source" / "files")
            for _ in range(args.files):
                store.put([os.urandom(256 * 1024)], max_bytes=1 << 20)
            archive = root / "backup.tar.gz"
            backup_seconds = timed_tow(root / "source" / "tow.yaml", url, "backup", "--output", str(archive))
            archive_size = archive.stat().st_size
            server.ensure_database("bench_restore")
            restore_seconds = timed_tow(root / "target" / "tow.yaml", server.url("bench_restore"), "restore",
                                        str(archive))
        finally:
            engine.dispose()
            server.stop()
    print(f"tow backup/restore of {args.records:,} records and {args.files} upload files of 256 KiB "
          f"({platform.machine()}, Python {platform.python_version()}, {sys.platform})")
    print(f"  backup:  {backup_seconds:.1f} s, archive {mib(archive_size)}")
    print(f"  restore: {restore_seconds:.1f} s (verify, unpack, pg_restore to SQL + psql, swap, migrate check)")


if __name__ == "__main__":
    main()
