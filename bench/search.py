"""Benchmark: semantic, keyword and hybrid search at several selectivities (issue 6; not in the test suite).

Loads N synthetic records (default 100,000) into one organisation on the embedded PostgreSQL: spread
over 1,000 restricted projects, with 200 colleagues holding random grants, and one chunk vector per
record (default 1,536 dimensions) drawn around 100 cluster centres, all bulk-loaded with COPY (binary
COPY for the vectors). Six users read about 50 %, 10 %, 5 %, 2 %, 1 % and 0.1 % of the records through project
grants. Then:

- builds the production HNSW index (``halfvec`` expression, cosine) and, for comparison, a plain
  ``vector`` HNSW index: build time and size of each;
- per selectivity, for Q queries (a cluster centre plus noise; words of that cluster), in a first pass
  with the order of the searches rotated per query: p50/p95 latency of semantic (``PgSemanticIndex``,
  exact scan below the threshold, iterative index scan above),
  keyword (``PgRecordStore.search_readable``) and hybrid (the ``semantic_search.search`` use case),
  and, in a second pass, recall@10 of semantic and hybrid against exact oracles (full-precision SQL over
  the user's projects, written apart from the code under test), and short pages;
- in the same run, the bare pgvector baseline: an unfiltered HNSW top-10 on the same table and index, and
  the same query joined to the user's granted projects (``= ANY``) with iterative scan; the table gives
  semantic p95 ÷ unfiltered p95, and the unfiltered query's own recall@10 against the exact top-10 of all
  records (what HNSW at pgvector's default ``ef_search`` 40 gives up on this corpus);
- per selectivity, the latency of the exact scan and of the index scan forced, to place the
  exact-scan threshold (``EXACT_SCAN_BELOW`` in ``tow_adapters/postgres/embeddings.py``).

Run: ``.venv/bin/python bench/search.py [--records N] [--dim D] [--queries Q]``; 100k × 1536 takes
several minutes on 2 cores (most of it building the two HNSW indexes).

At 1M records (issue 16 item 4) pass ``--no-vector-index``: the comparison ``vector`` index would double the
build time and need twice the build memory, and is not what production uses. The HNSW build gets
``--build-memory`` (``maintenance_work_mem``; the graph must fit in it, or pgvector warns "hnsw graph no longer
fits into maintenance_work_mem" and the build slows sharply — 3.7 GiB at 1M × 1536 halfvec, measured; a
parallel build holds all of it in shared memory for the whole build) and ``--build-workers``
(``max_parallel_maintenance_workers``; the leader works too, so 1 uses 2 cores). Peak
memory is reported per phase: the bench process's own peak RSS, and, sampled every second, the PostgreSQL
server's summed PSS (shared buffers and the parallel build's shared graph counted once) and the system's used
memory and page cache. Progress lines go to stderr as the phases finish.
"""

from __future__ import annotations

import argparse
import hashlib
import operator
import platform
import random
import resource
import statistics
import struct
import sys
import tempfile
import threading
import time
import warnings
from array import array
from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa

from tow_adapters.postgres import embeddings as pg_embeddings
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.embedded import EmbeddedPostgres
from tow_adapters.postgres.embeddings import PgSemanticIndex, index_name
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.records import PgRecordStore
from tow_core import semantic_search
from tow_core.embeddings import EmbeddingSpace
from tow_core.knowledge import Workspace
from tow_core.records import RecordQuery

PROJECTS = 1_000
COLLEAGUES = 200
CLUSTERS = 100
K = 10
# label -> projects granted (of 1,000); 5 % and 2 % place the exact-scan threshold
SELECTIVITIES = {"50 %": 500, "10 %": 100, "5 %": 50, "2 %": 20, "1 %": 10, "0.1 %": 1}
SYLLABLES = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze", "bo", "da", "fe", "gi", "ho", "ju"]


def word(n: int) -> str:
    out = ""
    for _ in range(3):
        out += SYLLABLES[n % len(SYLLABLES)]
        n //= len(SYLLABLES)
    return out


def cluster_words(cluster: int) -> list[str]:
    return [word(cluster * 40 + j) for j in range(40)]


class QueryVectors:
    """The embedding port for the bench: the query text's precomputed vector."""

    def __init__(self, dim: int) -> None:
        self.dimension, self.model_name, self.vectors = dim, "bench", {}

    def embed(self, texts, context):
        return [self.vectors[t] for t in texts]


def setup(conn: sa.Connection, rng: random.Random) -> None:
    conn.execute(sa.text("INSERT INTO organisations (id, name) VALUES (1, 'Bench')"))
    first_colleague = len(SELECTIVITIES) + 1
    users = [{"id": u, "email": f"u{u}@example.com"} for u in range(1, first_colleague + COLLEAGUES)]
    conn.execute(sa.text("INSERT INTO users (id, email, display_name) VALUES (:id, :email, 'u')"), users)
    conn.execute(sa.text("INSERT INTO memberships (organisation_id, user_id, role) VALUES (1, :id, 'member')"), users)
    conn.execute(sa.text("INSERT INTO projects (id, organisation_id, key, name, visibility) "
                         "SELECT p, 1, 'P' || p, 'project ' || p, 'restricted' FROM generate_series(1, :n) p"),
                 {"n": PROJECTS})
    grants = [{"p": p, "u": u} for u, count in enumerate(SELECTIVITIES.values(), start=1) for p in range(1, count + 1)]
    grants += [{"p": p, "u": u} for u in range(first_colleague, first_colleague + COLLEAGUES)
               for p in rng.sample(range(1, PROJECTS + 1), 20)]
    conn.execute(sa.text("INSERT INTO project_grants (project_id, user_id, role) VALUES (:p, :u, 'viewer')"), grants)


def load(raw, n: int, dim: int, rng: random.Random) -> tuple[list[list[float]], float]:
    centres = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(CLUSTERS)]
    noise_pool = [[rng.gauss(0, 0.6) for _ in range(dim)] for _ in range(64)]
    doubled_noise = [noise + noise for noise in noise_pool]  # a rotation is then one slice
    started = time.perf_counter()
    cur = raw.cursor()
    texts = {}
    with cur.copy("COPY records (id, organisation_id, type, prefix, number, scope_kind, scope_ref, title, body, "
                  "status, fields) FROM STDIN") as copy:
        for i in range(1, n + 1):
            vocabulary = cluster_words(i % CLUSTERS)
            title = " ".join(rng.sample(vocabulary, 4))
            body = " ".join(rng.choices(vocabulary, k=40))
            texts[i] = (title, body)
            copy.write_row((i, 1, "memory", "MEM", i, "project", 1 + i % PROJECTS, title, body, "active",
                            '{"memory_type": "fact"}'))
    cur.execute("TRUNCATE embedding_outbox")  # vectors are loaded directly below
    cur.execute("INSERT INTO embedding_spaces (id, model, dim, state, activated_at) "
                "VALUES (1, 'bench', %s, 'active', now())", (dim,))
    with cur.copy("COPY embedding_chunks (space_id, record_id, chunk, content_hash, embedding) "
                  "FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
        for i in range(1, n + 1):
            centre, noise = centres[i % CLUSTERS], doubled_noise[rng.randrange(64)]
            shift = rng.randrange(dim)  # a rotated noise vector: cheap, and different per record
            # list(map(add)) gives the same floats as the comprehension in half the time (1M records)
            floats = array("f", list(map(operator.add, centre, noise[shift:shift + dim])))
            if sys.byteorder == "little":
                floats.byteswap()
            title, body = texts[i]
            digest = hashlib.md5(  # noqa: S324 - the content hash PostgreSQL's md5() computes, not security
                f"{title}\n{body}".encode()).hexdigest().encode()
            vector = struct.pack(">hh", dim, 0) + floats.tobytes()
            copy.write(struct.pack(">hiiiqiii", 5, 4, 1, 8, i, 4, 0, len(digest)) + digest
                       + struct.pack(">i", len(vector)) + vector)
        copy.write(struct.pack(">h", -1))
    raw.commit()
    return centres, time.perf_counter() - started


def build_index(conn: sa.Connection, kind: str, dim: int) -> tuple[float, int, str]:
    """Build one HNSW index; pgvector's notices (e.g. the graph outgrowing maintenance_work_mem) go to stderr."""
    name = index_name(1) if kind == "halfvec" else "bench_vector_hnsw"
    expression = f"(CAST(embedding AS halfvec({dim}))) halfvec_cosine_ops" if kind == "halfvec" \
        else f"(CAST(embedding AS vector({dim}))) vector_cosine_ops"
    driver = conn.connection.driver_connection

    def notice(diagnostic) -> None:
        print(f"  [{kind} build] {diagnostic.severity}: {diagnostic.message_primary}", file=sys.stderr, flush=True)

    driver.add_notice_handler(notice)
    started = time.perf_counter()
    try:
        conn.execute(sa.text(f"CREATE INDEX {name} ON embedding_chunks USING hnsw ({expression}) WHERE space_id = 1"))
    finally:
        driver.remove_notice_handler(notice)
    elapsed = time.perf_counter() - started
    size = conn.execute(sa.text("SELECT pg_relation_size(CAST(:n AS regclass))"), {"n": name}).scalar()
    return elapsed, size, name


class MemorySampler:
    """Samples memory every second in a background thread and keeps the peak per phase (set by ``phase``).

    PostgreSQL's processes share its buffers (and a parallel HNSW build's graph), so their RSS would count
    those once per process; their PSS sums to what the server really holds. The system's used memory
    (MemTotal − MemAvailable) and page cache show what the run costs the machine beside those."""

    def __init__(self, data_dir: Path, progress=None, progress_every: float = 60.0) -> None:
        self.data_dir, self.progress, self.progress_every = data_dir, progress, progress_every
        self.current, self.peaks = "setup", {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def phase(self, name: str) -> None:
        self.current = name

    def _run(self) -> None:
        last_progress = time.monotonic()
        while not self._stop.wait(1.0):
            sample = self.sample()
            peak = self.peaks.setdefault(self.current, dict.fromkeys(sample, 0))
            for key, value in sample.items():
                peak[key] = max(peak[key], value)
            if self.progress is not None and time.monotonic() - last_progress >= self.progress_every:
                last_progress = time.monotonic()
                try:
                    self.progress(self.current, sample)
                except Exception as exc:  # noqa: BLE001 - progress is a courtesy; the bench goes on
                    print(f"  [progress] {exc}", file=sys.stderr, flush=True)

    def sample(self) -> dict[str, int]:
        meminfo = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, value = line.split(":", 1)
            meminfo[key] = int(value.split()[0]) * 1024
        return {"bench_rss": _status_bytes("self", "VmRSS"), "postgres_pss": self.postgres_pss(),
                "system_used": meminfo["MemTotal"] - meminfo["MemAvailable"],
                "page_cache": meminfo["Cached"] - meminfo["Shmem"], "shmem": meminfo["Shmem"]}

    def postgres_pss(self) -> int:
        """The summed PSS of this bench's server: its postmaster (from postmaster.pid) and its children."""
        try:
            postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0
        total = 0
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if int(proc.name) != postmaster and parent != postmaster:
                    continue
                for line in (proc / "smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
            except (OSError, ValueError, IndexError):
                continue  # the process ended between listing and reading
        return total


def _status_bytes(pid: str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def build_progress(engine: sa.Engine):
    """A progress callback: during the build, pg_stat_progress_create_index's phase and tuples done."""
    def report(phase: str, sample: dict[str, int]) -> None:
        line = f"  [{time.strftime('%H:%M:%S')} {phase}] postgres PSS {gib(sample['postgres_pss'])}, " \
            f"system used {gib(sample['system_used'])}, page cache {gib(sample['page_cache'])}"
        if phase.startswith("build"):
            with engine.connect() as conn:
                row = conn.execute(sa.text("SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total "
                                           "FROM pg_stat_progress_create_index")).first()
            if row is not None:
                line += f"; {row.phase}: tuples {row.tuples_done:,}/{row.tuples_total:,}, " \
                    f"blocks {row.blocks_done:,}/{row.blocks_total:,}"
        print(line, file=sys.stderr, flush=True)
    return report


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def recall(found: list, oracle: list) -> float:
    """Tie-aware recall@k: a hit counts when it is in the oracle or as near as the oracle's k-th."""
    if not oracle:
        return 1.0
    cutoff = min(h.rank for h in oracle) - 1e-6
    oracle_ids = {h.summary.id for h in oracle}
    good = sum(1 for h in found if h.summary.id in oracle_ids or h.rank >= cutoff)
    return min(good, len(oracle)) / len(oracle)


def timed(engine: sa.Engine, fn):
    with engine.begin() as conn:
        started = time.perf_counter()
        result = fn(conn)
        return result, time.perf_counter() - started


def semantic(conn, user, space, vector, text, k=K, below=None, plans=None):
    # below=None: the production rule (the greater of EXACT_SCAN_BELOW and EXACT_SCAN_SHARE of the space)
    index = PgSemanticIndex(conn) if below is None else PgSemanticIndex(conn, exact_scan_below=below)
    hits = index.nearest_readable(user, 1, space, vector, text, RecordQuery(), k)
    if plans is not None:
        plans.add(index.last_plan)
    return hits


def bare(conn, dim, vector, projects=None, k=K):
    """The bare pgvector baseline on the same table and index: the top-k chunks by cosine distance, unfiltered
    or (``projects``) joined to records of those projects with pgvector's iterative scan — no visibility
    predicate, no records store, no snippets."""
    if projects is not None:
        conn.execute(sa.text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    join = "JOIN records r ON r.id = c.record_id AND r.scope_ref = ANY(CAST(:projects AS bigint[])) " \
        if projects is not None else ""
    return conn.execute(sa.text(
        f"SELECT c.record_id FROM embedding_chunks c {join}WHERE c.space_id = 1 "  # noqa: S608 - fixed fragments
        f"ORDER BY CAST(c.embedding AS halfvec({dim})) <=> CAST(CAST(:v AS vector) AS halfvec({dim})) LIMIT :k"),
        {"v": pg_embeddings.vector_literal(vector), "k": k, "projects": projects}).all()


def oracle(conn, projects, vector, k=K) -> list[SimpleNamespace]:
    """An exact answer written apart from the code under test (whose exact plan ranks on the half-precision copy
    first): the full-precision top-k of the records in ``projects``, or of every record (``None``: the bare
    query's oracle)."""
    join = "JOIN records r ON r.id = c.record_id AND r.scope_ref = ANY(CAST(:projects AS bigint[])) " \
        if projects is not None else ""
    rows = conn.execute(sa.text(
        # OFFSET 0: each distance is computed in the scan, so only (record, distance) pairs are grouped
        "SELECT c.record_id, min(c.d) AS d FROM (SELECT c.record_id, c.embedding <=> CAST(:v AS vector) AS d "  # noqa: S608
        f"FROM embedding_chunks c {join}WHERE c.space_id = 1 OFFSET 0) AS c "
        "GROUP BY c.record_id ORDER BY d, c.record_id LIMIT :k"),
        {"v": pg_embeddings.vector_literal(vector), "projects": projects, "k": k}).all()
    # recall() reads .summary.id and .rank, as on a SearchHit
    return [SimpleNamespace(summary=SimpleNamespace(id=record_id), rank=1 - d) for record_id, d in rows]


def keyword(conn, user, text, k=K):
    return PgRecordStore(conn).search_readable(user, 1, text, RecordQuery(), cursor=None, limit=k).items


def hybrid(conn, user, text, embedder):
    ws = Workspace(PgRecordStore(conn), PgDirectory(conn), PgDirectory(conn).principal(user), 1)
    return semantic_search.search(ws, text, RecordQuery(), mode=semantic_search.SearchMode.HYBRID, cursor=None,
                                  limit=K, embedder=embedder, index=PgSemanticIndex(conn)).hits


def measure(engine: sa.Engine, queries: list[tuple[str, list[float]]], dim: int) -> list[dict]:
    space = EmbeddingSpace(1, "bench", dim)
    embedder = QueryVectors(dim)
    exact = 10**9  # an exact-scan threshold no visible set reaches: the exact plan forced
    unfiltered_truth = {}
    rows = []
    for user, label in enumerate(SELECTIVITIES, start=1):
        stats = {k: [] for k in ("semantic", "keyword", "hybrid", "exact", "index", "r_sem", "r_hyb", "r_idx",
                                 "r_bare", "bare", "bare_filtered")}
        short, plans = 0, set()
        with engine.connect() as conn:
            readable = conn.execute(sa.text("SELECT count(*) FROM records r WHERE r.scope_ref IN "
                                            "(SELECT project_id FROM project_grants WHERE user_id = :u)"),
                                    {"u": user}).scalar()
            projects = [row[0] for row in conn.execute(sa.text(
                "SELECT project_id FROM project_grants WHERE user_id = :u"), {"u": user})]
        # Pass 1, the latencies compared: TOW's searches and the bare baseline, in an order rotated per query,
        # so that none of them always runs first (on pages the previous query did not touch) or always
        # right after another one warmed the same HNSW pages for the same vector.
        timed_searches = [
            ("semantic", lambda c, v, q, u=user, p=plans: semantic(c, u, space, v, q, plans=p)),
            ("bare", lambda c, v, q: bare(c, dim, v)),
            ("bare_filtered", lambda c, v, q, p=projects: bare(c, dim, v, p)),
            ("keyword", lambda c, v, q, u=user: keyword(c, u, q)),
            ("hybrid", lambda c, v, q, u=user: hybrid(c, u, q, embedder)),
        ]
        found = {}
        for n, (text, vector) in enumerate(queries):
            embedder.vectors[text] = vector
            for name, search in timed_searches[n % 5:] + timed_searches[:n % 5]:
                found[name, text], t = timed(engine, lambda c, s=search, v=vector, q=text: s(c, v, q))
                stats[name].append(t)
        # Pass 2, the oracles and the plans forced (they read every readable vector: run apart from pass 1,
        # whose caches they would empty).
        for text, vector in queries:
            hits, fused = found["semantic", text], found["hybrid", text]
            truth = timed(engine, lambda c, v=vector, p=projects: oracle(c, p, v))[0]
            _, t = timed(engine, lambda c, v=vector, q=text, u=user: semantic(c, u, space, v, q, below=exact))
            stats["exact"].append(t)
            forced, t = timed(engine, lambda c, v=vector, q=text, u=user: semantic(c, u, space, v, q, below=0))
            stats["index"].append(t)
            stats["r_idx"].append(recall(forced, truth))
            if text not in unfiltered_truth:  # the same for every user: computed once per query
                unfiltered_truth[text] = timed(engine, lambda c, v=vector: oracle(c, None, v))[0]
            bare_ids = {row[0] for row in found["bare", text]}
            stats["r_bare"].append(len(bare_ids & {h.summary.id for h in unfiltered_truth[text]}) / K)
            short += len(hits) < min(K, readable)
            stats["r_sem"].append(recall(hits, truth))
            # The hybrid oracle: the same fusion over the exact semantic ranking.
            kw_depth, _ = timed(engine, lambda c, q=text, u=user: keyword(c, u, q, k=semantic_search.HYBRID_DEPTH))
            sem_depth, _ = timed(engine, lambda c, v=vector, q=text, u=user: semantic(
                c, u, space, v, q, k=semantic_search.HYBRID_DEPTH, below=exact))
            exact_fused = semantic_search.reciprocal_rank_fusion([kw_depth, sem_depth], limit=K)
            fused_ids, oracle_ids = {h.summary.id for h in fused}, {h.summary.id for h in exact_fused}
            stats["r_hyb"].append(len(fused_ids & oracle_ids) / max(1, len(oracle_ids)))
        rows.append({"label": label, "readable": readable, "short": short, "plans": "/".join(sorted(plans)),
                     **stats})
    return rows


def ms(samples: list[float]) -> str:
    return f"{1000 * statistics.median(samples):.1f}/{1000 * percentile(samples, 0.95):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--exact-below", type=int, help="try another exact-scan threshold (readable records)")
    parser.add_argument("--exact-share", type=float, help="try another exact-scan share of the space's chunks")
    parser.add_argument("--ef-search-min", type=int, help="try another minimum hnsw.ef_search")
    parser.add_argument("--no-vector-index", action="store_true",
                        help="skip the comparison plain-vector HNSW index (at 1M it doubles build time and memory)")
    parser.add_argument("--build-memory", default="2GB", help="maintenance_work_mem for the HNSW builds")
    parser.add_argument("--build-workers", type=int, default=2,
                        help="max_parallel_maintenance_workers for the HNSW builds (the leader works as well)")
    args = parser.parse_args()
    if args.exact_below is not None:
        pg_embeddings.EXACT_SCAN_BELOW = args.exact_below
    if args.exact_share is not None:
        pg_embeddings.EXACT_SCAN_SHARE = args.exact_share
    if args.ef_search_min is not None:
        pg_embeddings.EF_SEARCH_MIN = args.ef_search_min
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="tow-bench-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = EmbeddedPostgres(Path(tmp) / "pg")
        url = server.start("bench")
        engine = create_engine(url, PoolOptions(statement_timeout_ms=3_600_000))
        memory = MemorySampler(Path(tmp) / "pg", build_progress(engine)).start()
        try:
            PgSchemaMigrator(engine).upgrade()
            with engine.begin() as conn:
                setup(conn, rng)
            raw = engine.raw_connection()
            memory.phase("load")
            try:
                centres, load_seconds = load(raw.driver_connection, args.records, args.dim, rng)
            finally:
                raw.close()
            print(f"load: {load_seconds:.1f} s", file=sys.stderr, flush=True)
            builds = {}
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                # A 1M build outlasts the pool's hour-long statement timeout; the build settings are explicit.
                conn.execute(sa.text("SET statement_timeout = 0"))
                conn.execute(sa.text("SELECT set_config('maintenance_work_mem', :m, false), "
                                     "set_config('max_parallel_maintenance_workers', :w, false)"),
                             {"m": args.build_memory, "w": str(args.build_workers)})
                build_settings = conn.execute(sa.text(
                    "SELECT current_setting('maintenance_work_mem'), "
                    "current_setting('max_parallel_maintenance_workers')")).one()
                # As autovacuum would after a bulk load: the visibility map lets the capped readable count
                # read the scope index alone (without it, every counted chunk is a heap fetch).
                conn.execute(sa.text("VACUUM ANALYZE"))
                table_before = conn.execute(sa.text("SELECT pg_total_relation_size('embedding_chunks')")).scalar()
                chunks = conn.execute(sa.text("SELECT count(*) FROM embedding_chunks")).scalar()
                print(f"embedding_chunks: {chunks:,} rows, {table_before / 2**20:,.0f} MiB; building with "
                      f"maintenance_work_mem {build_settings[0]}, {build_settings[1]} parallel workers",
                      file=sys.stderr, flush=True)
                for kind in ("halfvec",) if args.no_vector_index else ("vector", "halfvec"):
                    memory.phase(f"build {kind}")
                    seconds, size, name = build_index(conn, kind, args.dim)
                    builds[kind] = (seconds, size)
                    print(f"HNSW {kind}: build {seconds:.1f} s, {size / 2**20:,.0f} MiB", file=sys.stderr, flush=True)
                    if kind == "vector":
                        conn.execute(sa.text(f"DROP INDEX {name}"))
                memory.phase("queries")
                table = conn.execute(sa.text("SELECT pg_total_relation_size('embedding_chunks')")).scalar()
            queries = []
            for _ in range(args.queries):
                cluster = rng.randrange(CLUSTERS)
                noise = [rng.gauss(0, 0.6) for _ in range(args.dim)]
                queries.append((" ".join(rng.sample(cluster_words(cluster), 2)),
                                [c + e for c, e in zip(centres[cluster], noise, strict=True)]))
            rows = measure(engine, queries, args.dim)
        finally:
            memory.stop()
            engine.dispose()
            server.stop()
    bench_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    users = COLLEAGUES + len(SELECTIVITIES)
    print(f"search bench: {args.records:,} records × {args.dim} dims, {PROJECTS} projects, {users} users, "
          f"{args.queries} queries per selectivity, k={K} ({platform.machine()}, Python {platform.python_version()})")
    print(f"load (COPY records + binary COPY vectors): {load_seconds:.1f} s; "
          f"embedding_chunks total {table / 2**20:.0f} MiB ({chunks:,} chunks; pg_total_relation_size: TOAST "
          f"and all indexes, {table_before / 2**20:.0f} MiB before the HNSW build)")
    print(f"HNSW builds: maintenance_work_mem {build_settings[0]}, "
          f"max_parallel_maintenance_workers {build_settings[1]}")
    for kind, (seconds, size) in builds.items():
        print(f"HNSW index on {kind:7}: build {seconds:6.1f} s, size {size / 2**20:7.1f} MiB")
    print(f"peak memory: bench process RSS {gib(bench_peak)} (getrusage); per phase, sampled every second:")
    for phase, peak in memory.peaks.items():
        print(f"  {phase:14}: postgres PSS {gib(peak['postgres_pss'])}, bench RSS {gib(peak['bench_rss'])}, "
              f"system used {gib(peak['system_used'])} (shared memory {gib(peak['shmem'])}), "
              f"page cache {gib(peak['page_cache'])}")
    print(f"exact-scan threshold: below the greater of {pg_embeddings.EXACT_SCAN_BELOW} readable chunks and "
          f"{pg_embeddings.EXACT_SCAN_SHARE:.0%} of the space's; "
          f"hnsw.ef_search ≥ {pg_embeddings.EF_SEARCH_MIN}; iterative scan max {pg_embeddings.MAX_SCAN_TUPLES} tuples")
    print("selectivity | readable | plan | semantic p50/p95 ms | bare unfiltered p50/p95 | bare same-projects "
          "filter p50/p95 | semantic p95 ÷ bare p95 | keyword p50/p95 | hybrid p50/p95 | exact p50/p95 | "
          "index p50/p95 | recall@10 sem / hyb / index forced | short pages | recall@10 of bare unfiltered")
    for r in rows:
        ratio = percentile(r["semantic"], 0.95) / percentile(r["bare"], 0.95)
        print(f"{r['label']:>6} | {r['readable']:>7} | {r['plans']} | {ms(r['semantic'])} | {ms(r['bare'])} | "
              f"{ms(r['bare_filtered'])} | {ratio:.1f}× | {ms(r['keyword'])} | "
              f"{ms(r['hybrid'])} | {ms(r['exact'])} | {ms(r['index'])} | "
              f"{statistics.mean(r['r_sem']):.3f} / {statistics.mean(r['r_hyb']):.3f} / "
              f"{statistics.mean(r['r_idx']):.3f} | {r['short']} | {statistics.mean(r['r_bare']):.3f}")


if __name__ == "__main__":
    main()
