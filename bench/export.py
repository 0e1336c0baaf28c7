"""Benchmark: organisation export (and import) of an organisation with 100,000 records.

Builds, by bulk SQL on the embedded PostgreSQL, one organisation with 50 members, 5 groups, 10
projects and N records (default 100,000) spread over memory/doc/ticket/decision/risk types and
organisation, group, project and private scopes, ~300-character bodies, a revision per doc, a comment
per ticket and a reference per record. Then, each in a fresh child process so that its peak RSS is
its own, it runs:
- the organisation export exactly as the job worker does (one REPEATABLE READ snapshot,
  server-side cursor, streamed JSON into an atomically renamed file), and
- the import of that file into an empty database (one transaction).
Reports wall time, file size, tracemalloc peak (Python allocations) and peak RSS of each child.

Run: `.venv/bin/python bench/export.py [--records N]` (about two minutes for 100k on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from tow_adapters.fs_export_files import FsExportFiles
from tow_adapters.postgres.embedded import EmbeddedPostgres
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.export_source import PgExportSource, export_snapshot
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.organisation_import import PgOrganisationImport
from tow_core.exports import ExportKind, ExportRequest, produce_export
from tow_core.jobs import JobStatus

BUILD = """
INSERT INTO organisations (id, name) VALUES (1, 'Bench Org');
INSERT INTO users (id, email, display_name) SELECT i, 'user' || i || '@example.com', 'User ' || i
  FROM generate_series(1, 50) i;
INSERT INTO memberships (organisation_id, user_id, role)
  SELECT 1, i, CASE WHEN i = 1 THEN 'owner' ELSE 'member' END FROM generate_series(1, 50) i;
INSERT INTO groups (id, organisation_id, name) SELECT i, 1, 'Group ' || i FROM generate_series(1, 5) i;
INSERT INTO group_members (group_id, user_id) SELECT 1 + i % 5, i FROM generate_series(1, 50) i;
INSERT INTO projects (id, organisation_id, key, name, visibility)
  SELECT i, 1, 'PR' || i, 'Project ' || i, CASE WHEN i % 2 = 0 THEN 'open' ELSE 'restricted' END
  FROM generate_series(1, 10) i;
INSERT INTO project_grants (project_id, group_id, role) SELECT i, 1 + i % 5, 'member' FROM generate_series(1, 10) i;
INSERT INTO records (id, organisation_id, type, prefix, number, scope_kind, scope_ref, title, body, status,
                     author_id, fields)
  SELECT i, 1,
    (ARRAY['memory', 'doc', 'ticket', 'decision', 'risk'])[1 + i % 5],
    (ARRAY['MEM', 'DOC', 'TKT', 'DEC', 'RSK'])[1 + i % 5],
    i / 5 + 1,
    (ARRAY['organisation', 'group', 'project', 'project', 'organisation', 'project', 'project', 'organisation',
           'group', 'user'])[1 + i % 10],
    CASE (1 + i % 10) WHEN 2 THEN 1 + i % 5 WHEN 9 THEN 1 + i % 5 WHEN 3 THEN 1 + i % 10 WHEN 4 THEN 1 + i % 10
         WHEN 6 THEN 1 + i % 10 WHEN 7 THEN 1 + i % 10 WHEN 10 THEN 1 + i % 50 ELSE 1 END,
    'Record number ' || i, repeat('Lorem ipsum dolor sit amet, consectetur. ', 7), 'active', 1 + i % 50,
    (ARRAY['{"memory_type": "fact", "importance": 3, "confidence": 1.0, "tags": []}',
           '{"parent_id": null, "tags": []}',
           '{"ticket_type": "task", "priority": 3, "assignee_id": 2, "labels": [], "due_date": null,
            "parent_id": null}',
           '{"context": "", "decision": "yes", "consequences": "", "alternatives": ""}',
           '{"severity": 3, "likelihood": 3, "mitigation": "", "owner_id": 3}'])[1 + i % 5]::jsonb
  FROM generate_series(0, :n - 1) i;
UPDATE records SET status = 'backlog' WHERE type = 'ticket';
UPDATE records SET status = 'proposed' WHERE type = 'decision';
INSERT INTO record_sequences (organisation_id, prefix, last_number)
  SELECT 1, prefix, max(number) FROM records GROUP BY prefix;
INSERT INTO doc_revisions (record_id, version, title, body, saved_at, replaced_by)
  SELECT id, 1, title, 'an older body', now(), 1 FROM records WHERE type = 'doc';
INSERT INTO ticket_comments (record_id, author_id, body) SELECT id, 2, 'a comment' FROM records WHERE type = 'ticket';
INSERT INTO record_references (source_id, target_id) SELECT i, i - 1 FROM generate_series(1, :n - 1) i;
ANALYZE
"""


def run_export(url: str, out_dir: str) -> dict:
    engine = create_engine(url, PoolOptions())
    request = ExportRequest(1, 1, 1, ExportKind.ORGANISATION, 1, JobStatus.RUNNING, None, None, None,
                            datetime.now(UTC), None, datetime.now(UTC))
    files = FsExportFiles(Path(out_dir))
    tracemalloc.start()
    start = time.perf_counter()
    with export_snapshot(engine) as conn:
        name, size = produce_export(request, PgExportSource(conn, exported_at=datetime.now(UTC)), files)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    engine.dispose()
    return {"seconds": seconds, "size_bytes": size, "file": str(Path(out_dir) / name), "tracemalloc_peak": peak,
            "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def run_import(url: str, file: str) -> dict:
    engine = create_engine(url, PoolOptions())
    PgSchemaMigrator(engine).upgrade()
    tracemalloc.start()
    start = time.perf_counter()
    with engine.begin() as conn, Path(file).open("rb") as stream:
        report = PgOrganisationImport(conn).restore(stream)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    engine.dispose()
    return {"seconds": seconds, "records": report.counts["records"], "tracemalloc_peak": peak,
            "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def child(*args: str) -> dict:
    # Our own script with arguments we built: nothing untrusted reaches the command line.
    done = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)  # noqa: S603
    return json.loads(done.stdout.strip().splitlines()[-1])


def mib(n: float) -> str:
    return f"{n / 1024 / 1024:,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--child-export", nargs=2, metavar=("URL", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--child-import", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_export:
        print(json.dumps(run_export(*args.child_export)))
        return
    if args.child_import:
        print(json.dumps(run_import(*args.child_import)))
        return
    with tempfile.TemporaryDirectory(prefix="tow-bench-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = EmbeddedPostgres(Path(tmp) / "pg")
        url = server.start("bench")
        engine = create_engine(url, PoolOptions(statement_timeout_ms=600_000))
        try:
            PgSchemaMigrator(engine).upgrade()
            start = time.perf_counter()
            with engine.begin() as conn:
                for statement in BUILD.split(";\n"):
                    if statement.strip():
                        conn.execute(sa.text(statement), {"n": args.records})
            built = time.perf_counter() - start
            exported = child("--child-export", url, str(Path(tmp) / "exports"))
            server.ensure_database("bench_import")
            imported = child("--child-import", server.url("bench_import"), exported["file"])
        finally:
            engine.dispose()
            server.stop()
    print(f"organisation export/import of {args.records:,} records ({platform.machine()}, "
          f"Python {platform.python_version()}, {sys.platform}); built in {built:.1f} s")
    print(f"  export: {exported['seconds']:.1f} s, file {mib(exported['size_bytes'])}, "
          f"tracemalloc peak {mib(exported['tracemalloc_peak'])}, peak RSS {mib(exported['max_rss'])}")
    print(f"  import: {imported['seconds']:.1f} s, {imported['records']:,} records, "
          f"tracemalloc peak {mib(imported['tracemalloc_peak'])}, peak RSS {mib(imported['max_rss'])}")


if __name__ == "__main__":
    main()
