"""Benchmark: the SQL visibility filter's cost must follow what the principal can see, not invisible rows.

Builds one organisation the principal belongs to (1,000 readable records spread over organisation,
group, project and private scopes) and another organisation it does not belong to holding N
invisible records, for N = 10k, 100k and 1M, then times the readable-records query for each N on the
embedded PostgreSQL. Reports the median of repeated runs and the ratio to the smallest N (1.0 means
"unaffected by invisible rows"). Run: `.venv/bin/python bench/visibility_filter.py` (about a minute).
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import sqlalchemy as sa

from tow_adapters.postgres.embedded import EmbeddedPostgres
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.visibility import visible_predicate

VISIBLE = 1_000
INVISIBLE_SIZES = (10_000, 100_000, 1_000_000)
REPEATS = 30

SETUP = """
INSERT INTO organisations (id, name) VALUES (1, 'mine'), (2, 'theirs');
INSERT INTO users (id, email, display_name) VALUES (1, 'me@example.com', 'me'), (2, 'them@example.com', 'them');
INSERT INTO memberships VALUES (1, 1, 'member'), (2, 2, 'owner');
INSERT INTO groups (id, organisation_id, name) VALUES (1, 1, 'g1'), (2, 2, 'g2');
INSERT INTO group_members VALUES (1, 1), (2, 2);
INSERT INTO projects (id, organisation_id, key, name, visibility) VALUES
  (1, 1, 'OPEN', 'open', 'open'), (2, 1, 'SECRET', 'restricted', 'restricted'),
  (3, 2, 'THEIRS', 'theirs', 'restricted');
INSERT INTO project_grants (project_id, group_id, role) VALUES (2, 1, 'viewer');
CREATE TABLE probe_records (id bigserial PRIMARY KEY, organisation_id bigint NOT NULL, scope_kind text NOT NULL,
                            scope_ref bigint NOT NULL, title text NOT NULL);
CREATE INDEX probe_records_scope_idx ON probe_records (organisation_id, scope_kind, scope_ref);
INSERT INTO probe_records (organisation_id, scope_kind, scope_ref, title)
  SELECT 1, (ARRAY['organisation','group','project','project','user'])[1 + i % 5],
         (ARRAY[1, 1, 1, 2, 1])[1 + i % 5], 'visible ' || i FROM generate_series(1, :visible) i;
"""
# Invisible rows as a real deployment has them: spread over many scopes — other organisations'
# projects and members' private records, and in the principal's own organisation restricted projects
# it has no grant on and colleagues' private records.
ADD_INVISIBLE = """
INSERT INTO probe_records (organisation_id, scope_kind, scope_ref, title)
  SELECT CASE WHEN i % 2 = 0 THEN 2 ELSE 1 END,
         (ARRAY['project', 'user'])[1 + (i / 2) % 2],
         100 + i % 5000,
         'invisible ' || i FROM generate_series(1, :n) i;
ANALYZE probe_records;
"""
QUERY = sa.text(f"SELECT count(*) FROM probe_records r WHERE {visible_predicate('r')}")  # noqa: S608 (constant SQL)


def time_query(conn: sa.Connection) -> tuple[float, int]:
    samples, count = [], 0
    for _ in range(REPEATS):
        start = time.perf_counter()
        count = conn.execute(QUERY, {"principal_id": 1}).scalar()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), count


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tow-bench-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = EmbeddedPostgres(Path(tmp) / "pg")
        url = server.start("bench")
        engine = create_engine(url, PoolOptions())
        try:
            PgSchemaMigrator(engine).upgrade()
            results = []
            with engine.begin() as conn:
                for statement in SETUP.split(";\n"):
                    if statement.strip():
                        conn.execute(sa.text(statement), {"visible": VISIBLE})
            invisible = 0
            for size in INVISIBLE_SIZES:
                with engine.begin() as conn:
                    for statement in ADD_INVISIBLE.split(";\n"):
                        if statement.strip():
                            conn.execute(sa.text(statement), {"n": size - invisible})
                invisible = size
                with engine.connect() as conn:
                    median, count = time_query(conn)
                assert count == VISIBLE, count
                results.append((size, median))
        finally:
            engine.dispose()
            server.stop()
    base = results[0][1]
    print(f"visibility filter: {VISIBLE} readable records, median of {REPEATS} runs "
          f"({platform.machine()}, {platform.python_version()}, {sys.platform})")
    for size, median in results:
        print(f"  invisible rows {size:>9,}: {median * 1000:7.2f} ms  ratio {median / base:4.2f}")


if __name__ == "__main__":
    main()
