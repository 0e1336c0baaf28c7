"""Embeddings in PostgreSQL + pgvector: the outbox queue, the vector spaces and the semantic index.

- ``PgEmbeddingQueue`` claims outbox rows with ``FOR UPDATE SKIP LOCKED`` and a lease, each call in
  its own short transaction, so any number of workers (threads, processes, machines) share the queue.
- ``PgEmbeddingSpaces`` records spaces, stores chunk vectors for a record's current text only, and
  runs the migration bookkeeping. Each space has a partial HNSW index over ``embedding::halfvec(N)``:
  half the memory of a ``vector`` index and up to 4,000 dimensions instead of 2,000; the final order
  is always computed on the full-precision vectors (BENCHMARKS.md: "Semantic search").
- ``PgSemanticIndex`` answers "the k nearest records this principal can read" in one statement: the
  principal's readable scopes, computed in that statement from the one rule table (SPEC §2 "One
  predicate"; §7), are matched against the scope the database keeps on each chunk (migration 0029).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from tow_adapters.postgres.engine import transaction
from tow_adapters.postgres.records import _HEADLINE_OPTIONS, _SUMMARY_COLUMNS, _query_filters, _summary
from tow_adapters.postgres.visibility import (
    PRINCIPAL_PARAM,
    in_scope_arrays,
    readable_scope_arrays_sql,
    scope_array_branches,
)
from tow_core.embeddings import EmbeddingJob, EmbeddingSpace, EmbeddingStatus, RecordText
from tow_core.errors import InvalidInput
from tow_core.records import RecordQuery, RecordType, SearchHit

_CONTENT_HASH = "md5(r.title || chr(10) || r.body)"
# "the record has vectors of its current text in space :space" (chunk 0 exists for every record)
_CURRENT = (
    "EXISTS (SELECT 1 FROM embedding_chunks c WHERE c.space_id = {space} AND c.record_id = r.id AND c.chunk = 0 "
    f"AND c.content_hash = {_CONTENT_HASH})"
)
_SPACES_LOCK = "SELECT pg_advisory_xact_lock(hashtext('tow.embedding_spaces'))"

# Below this many readable chunks (counted, capped, in the search statement itself) the exact scan answers:
# exact, and its cost follows the readable chunks (about 3 µs each at 1,536 dims: it ranks on the half-precision
# copy kept in the row, migration 0030), so it is bounded. Above, the filtered HNSW scan. The bound is the
# greater of EXACT_SCAN_BELOW and EXACT_SCAN_SHARE of the space's chunks (the HNSW index's ``reltuples``, which
# VACUUM and ANALYZE keep current), because the filtered index scan degrades with the share, not the count: it
# walks past unreadable neighbours in proportion to how few are readable. Measured with bench/search.py
# (BENCHMARKS.md, "Filtered semantic search beside bare pgvector" and "at 1M records"): at 100k × 1536 the
# index scan's p95 at 5 % readable was 2-5× the exact scan's, at 10 % it was the faster; at 1M the index scan
# at 1-5 % readable reaches pgvector's max_scan_tuples before it has its candidates (p95 0.3-0.7 s, recall
# 0.54-0.66) while the exact scan is exact and faster up to about 5 %.
EXACT_SCAN_BELOW = 6_000
EXACT_SCAN_SHARE = 0.06
# Chunks fetched from the index per wanted record: docs have several chunks, and the fetched chunks
# must still cover k distinct records (if not, the exact scan answers instead). At least
# MIN_CANDIDATES: the iterative scan returns readable chunks roughly (relaxed_order) nearest first, and
# re-ordering a deeper candidate list exactly raises recall (BENCHMARKS.md: 40 → 100 candidates took
# recall@10 at 2-5 % selectivity of 100k records from 0.92-0.94 to ≥ 0.95; with 40, recall@10 at 50 %
# readable also fell to 0.90 in one run, so 40 is not enough anywhere).
CHUNKS_PER_RECORD = 4
MIN_CANDIDATES = 100
# The HNSW candidate list (hnsw.ef_search) at least this long: with a filter, a longer list keeps recall
# up when the readable records are a small share of the index (BENCHMARKS.md).
EF_SEARCH_MIN = 100
# pgvector 0.8 iterative scans stop after this many tuples; a filter so selective that they do not
# find k readable records is answered by the exact scan (a short page is never returned).
MAX_SCAN_TUPLES = 40_000


def vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(v)) for v in vector) + "]"


def index_name(space_id: int) -> str:
    return f"embedding_chunks_hnsw_{int(space_id)}"


def _space(row: sa.Row | None) -> EmbeddingSpace | None:
    return EmbeddingSpace(row[0], row[1], row[2]) if row else None


def _create_index(conn: sa.Connection, space: EmbeddingSpace) -> None:
    # Ids and dimensions are integers from our own table: safe to format into DDL.
    conn.execute(sa.text(
        f"CREATE INDEX IF NOT EXISTS {index_name(space.id)} ON embedding_chunks USING hnsw "
        f"((CAST(embedding AS halfvec({int(space.dim)}))) halfvec_cosine_ops) WHERE space_id = {int(space.id)}"
    ))


def _drop_space(conn: sa.Connection, space_id: int) -> None:
    conn.execute(sa.text(f"DROP INDEX IF EXISTS {index_name(space_id)}"))
    conn.execute(sa.text("DELETE FROM embedding_spaces WHERE id = :id"), {"id": space_id})  # chunks cascade


class PgEmbeddingQueue:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def claim(self, limit: int, lease_seconds: int, max_attempts: int) -> list[EmbeddingJob]:
        with transaction(self._engine) as conn:
            rows = conn.execute(sa.text(
                "UPDATE embedding_outbox AS o SET leased_until = clock_timestamp() + make_interval(secs => :lease), "
                "attempts = o.attempts + 1 WHERE o.record_id IN ("
                "  SELECT record_id FROM embedding_outbox WHERE available_at <= clock_timestamp() "
                "  AND (leased_until IS NULL OR leased_until < clock_timestamp()) AND attempts < :max_attempts "
                "  ORDER BY available_at, record_id LIMIT :limit FOR UPDATE SKIP LOCKED) "
                "RETURNING o.record_id, o.generation, o.attempts, o.acting_user_id"
            ), {"lease": lease_seconds, "max_attempts": max_attempts, "limit": limit}).all()
        return [EmbeddingJob(*row) for row in rows]

    def finish(self, job: EmbeddingJob) -> None:
        with transaction(self._engine) as conn:
            done = conn.execute(sa.text("DELETE FROM embedding_outbox WHERE record_id = :id AND generation = :gen"),
                                {"id": job.record_id, "gen": job.generation}).rowcount
            if not done:  # changed while we worked: due again, for whoever claims it next
                conn.execute(sa.text("UPDATE embedding_outbox SET leased_until = NULL WHERE record_id = :id"),
                             {"id": job.record_id})

    def fail(self, job: EmbeddingJob, error: str, retry_in_seconds: int) -> None:
        with transaction(self._engine) as conn:
            conn.execute(sa.text(
                "UPDATE embedding_outbox SET leased_until = NULL, last_error = left(:error, 1000), "
                "available_at = CASE WHEN generation = :gen "
                "THEN clock_timestamp() + make_interval(secs => :delay) ELSE available_at END WHERE record_id = :id"
            ), {"id": job.record_id, "gen": job.generation, "error": error, "delay": retry_in_seconds})


class PgEmbeddingSpaces:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def _one(self, sql: str, **params: Any) -> sa.Row | None:
        with transaction(self._engine) as conn:
            return conn.execute(sa.text(sql), params).first()

    def active(self) -> EmbeddingSpace | None:
        return _space(self._one("SELECT id, model, dim FROM embedding_spaces WHERE state = 'active'"))

    def migrating(self) -> EmbeddingSpace | None:
        return _space(self._one("SELECT id, model, dim FROM embedding_spaces WHERE state = 'migrating'"))

    def record_first(self, model: str, dim: int) -> EmbeddingSpace:
        with transaction(self._engine) as conn:
            conn.execute(sa.text(_SPACES_LOCK))
            row = conn.execute(sa.text("SELECT id, model, dim FROM embedding_spaces WHERE state = 'active'")).first()
            if row is not None:
                return _space(row)
            space = _space(conn.execute(sa.text(
                "INSERT INTO embedding_spaces (model, dim, state, activated_at) VALUES (:model, :dim, 'active', now()) "
                "RETURNING id, model, dim"), {"model": model, "dim": dim}).first())
            _create_index(conn, space)
            return space

    def texts(self, record_ids: Sequence[int]) -> list[RecordText]:
        with transaction(self._engine) as conn:
            rows = conn.execute(sa.text(
                "SELECT r.id, r.organisation_id, r.prefix || '-' || r.number, r.type, r.title, r.body, "
                f"{_CONTENT_HASH} FROM records r WHERE r.id = ANY(CAST(:ids AS bigint[])) ORDER BY r.id"
            ), {"ids": list(record_ids)}).all()
        return [RecordText(r[0], r[1], r[2], RecordType(r[3]), r[4], r[5], r[6]) for r in rows]

    def store(self, space: EmbeddingSpace, record: RecordText, vectors: Sequence[Sequence[float]]) -> bool:
        with transaction(self._engine) as conn:
            # The row lock orders this with a concurrent edit of the record and with another worker
            # storing the same record: vectors are only ever written for the text the record has now.
            current = conn.execute(sa.text(f"SELECT {_CONTENT_HASH} FROM records r WHERE r.id = :id FOR NO KEY UPDATE"),
                                   {"id": record.record_id}).first()
            if current is None or current[0] != record.content_hash:
                return False
            conn.execute(sa.text("DELETE FROM embedding_chunks WHERE space_id = :space AND record_id = :id"),
                         {"space": space.id, "id": record.record_id})
            conn.execute(sa.text(
                "INSERT INTO embedding_chunks (space_id, record_id, chunk, content_hash, embedding) "
                "SELECT :space, :id, t.ord - 1, :hash, CAST(t.v AS vector) "
                "FROM unnest(CAST(:vectors AS text[])) WITH ORDINALITY AS t(v, ord)"
            ), {"space": space.id, "id": record.record_id, "hash": record.content_hash,
                "vectors": [vector_literal(v) for v in vectors]})
            return True

    def start_migration(self, model: str, dim: int) -> EmbeddingSpace:
        with transaction(self._engine) as conn:
            conn.execute(sa.text(_SPACES_LOCK))
            existing = _space(conn.execute(
                sa.text("SELECT id, model, dim FROM embedding_spaces WHERE state = 'migrating'")).first())
            if existing is not None and (existing.model, existing.dim) == (model, dim):
                return existing
            if existing is not None:  # a migration to something else was left unfinished: replaced
                _drop_space(conn, existing.id)
            space = _space(conn.execute(sa.text(
                "INSERT INTO embedding_spaces (model, dim, state) VALUES (:model, :dim, 'migrating') "
                "RETURNING id, model, dim"), {"model": model, "dim": dim}).first())
            _create_index(conn, space)
            return space

    def not_current(self, space: EmbeddingSpace, limit: int) -> list[int]:
        with transaction(self._engine) as conn:
            rows = conn.execute(sa.text(
                f"SELECT r.id FROM records r WHERE NOT {_CURRENT.format(space=':space')} ORDER BY r.id LIMIT :limit"
            ), {"space": space.id, "limit": limit}).all()
        return [r[0] for r in rows]

    def switch_to(self, space: EmbeddingSpace) -> None:
        with transaction(self._engine) as conn:
            conn.execute(sa.text(_SPACES_LOCK))
            old = conn.execute(sa.text(
                "UPDATE embedding_spaces SET state = 'retired' WHERE state = 'active' RETURNING id")).scalar()
            switched = conn.execute(sa.text(
                "UPDATE embedding_spaces SET state = 'active', activated_at = now() "
                "WHERE id = :id AND state = 'migrating'"), {"id": space.id}).rowcount
            if not switched:
                raise InvalidInput(f"embedding space {space.id} is not being migrated to", field="space")
            # Edits that raced the last batch: the trigger queued them for the old space's workers;
            # queue them again so the workers (now on the new space) re-embed them.
            conn.execute(sa.text(
                f"INSERT INTO embedding_outbox AS o (record_id) SELECT r.id FROM records r WHERE NOT "
                f"{_CURRENT.format(space=':space')} ON CONFLICT (record_id) DO UPDATE SET "
                "generation = o.generation + 1, available_at = clock_timestamp(), attempts = 0, last_error = NULL"
            ), {"space": space.id})
        if old is not None:
            # After the switch committed: searches that still hold the old space (read FOR KEY SHARE by
            # PgSemanticIndex) finish first, later ones use the new space.
            with transaction(self._engine) as conn:
                _drop_space(conn, old)

    def status(self, max_attempts: int) -> EmbeddingStatus:
        active, migrating = self.active(), self.migrating()
        row = self._one(
            "SELECT (SELECT count(*) FROM records), "
            f"(SELECT count(*) FROM records r WHERE {_CURRENT.format(space=':a')}), "
            "(SELECT count(*) FROM embedding_chunks WHERE space_id = :a), "
            "count(*) FILTER (WHERE attempts < :max AND available_at <= now() "
            "  AND (leased_until IS NULL OR leased_until < now())), "
            "count(*) FILTER (WHERE leased_until >= now()), "
            "count(*) FILTER (WHERE attempts < :max AND available_at > now() "
            "  AND (leased_until IS NULL OR leased_until < now())), "
            "count(*) FILTER (WHERE attempts >= :max AND (leased_until IS NULL OR leased_until < now())), "
            f"(SELECT count(*) FROM records r WHERE {_CURRENT.format(space=':m')}) "
            "FROM embedding_outbox",
            a=active.id if active else -1, m=migrating.id if migrating else -1, max=max_attempts,
        )
        return EmbeddingStatus(active, migrating, *row)


class PgSemanticIndex:
    """Runs on the request's connection (one transaction per request)."""

    def __init__(self, connection: sa.Connection, *, exact_scan_below: int | None = None) -> None:
        """``exact_scan_below``: a fixed threshold instead of the default rule (tests and the bench force a
        plan with 0 or a number no readable set reaches)."""
        self._conn = connection
        self._exact_scan_below = EXACT_SCAN_BELOW if exact_scan_below is None else exact_scan_below
        self._exact_scan_share = EXACT_SCAN_SHARE if exact_scan_below is None else 0.0
        self.last_plan = ""  # "exact" or "index" (+ "→exact" after a short index scan); for tests and bench

    def active_space(self) -> EmbeddingSpace | None:
        # KEY SHARE: a migration's switch does not wait for searches, but dropping the retired space
        # waits until searches that chose it have finished.
        return _space(self._conn.execute(sa.text(
            "SELECT id, model, dim FROM embedding_spaces WHERE state = 'active' FOR KEY SHARE")).first())

    def nearest_readable(self, principal_id: int, org_id: int, space: EmbeddingSpace, vector: Sequence[float],
                         text: str, query: RecordQuery, k: int) -> list[SearchHit]:
        if len(vector) != space.dim:
            raise InvalidInput(f"the query vector has {len(vector)} dimensions, the index {space.dim}")
        filters, params = _query_filters(query)
        params.update({"org": org_id, "vec": vector_literal(vector), "text": text, "k": k,
                       "headline": _HEADLINE_OPTIONS, PRINCIPAL_PARAM: principal_id,
                       "exact_below": self._exact_scan_below, "exact_share": self._exact_scan_share,
                       "hnsw": index_name(space.id)})
        fetch = min(1000, max(MIN_CANDIDATES, k * CHUNKS_PER_RECORD))
        ef_search = min(1000, max(EF_SEARCH_MIN, 2 * fetch))
        # PostgreSQL cannot know how few chunks the scope arrays admit (their contents are computed in the
        # statement). Bitmap scans off: a bitmap reads every readable chunk before the capped count's LIMIT
        # (12 ms of 50,000 at a 50 % share); plain scope-index scans stop at the cap. Hash and merge joins
        # off: with record filters the readable chunks are joined to their records, and PostgreSQL would
        # hash whole tables.
        with self._settings("hnsw.iterative_scan = relaxed_order", f"hnsw.ef_search = {ef_search}",
                            f"hnsw.max_scan_tuples = {MAX_SCAN_TUPLES}", "enable_bitmapscan = off",
                            "enable_hashjoin = off", "enable_mergejoin = off"):
            self.last_plan, hits = self._run(self._search_sql(space, filters, fetch), params)
            if self.last_plan == "index" and len(hits) < k:
                # The iterative scan gave up before k readable records: the exact scan answers.
                self.last_plan, hits = "index→exact", self._run(
                    self._search_sql(space, filters, fetch), {**params, "exact_below": 10**12, "exact_share": 0.0})[1]
        return hits

    @contextmanager
    def _settings(self, *settings: str) -> Iterator[None]:
        """The settings for the statements inside only, in two round trips whatever their number: one
        statement sets them all transaction-locally (``set_config(..., true)``) and reads what they were,
        one puts those back after. (A savepoint with one ``SET LOCAL`` each took n + 2.) A statement that
        fails inside aborts the request's transaction anyway, so nothing is put back then."""
        pairs = [tuple(part.strip() for part in setting.split("=", 1)) for setting in settings]
        names = {f"n{i}": name for i, (name, _) in enumerate(pairs)}
        values = {f"v{i}": value for i, (_, value) in enumerate(pairs)}
        reads = ", ".join(f"current_setting(:n{i}, true) AS p{i}" for i in range(len(pairs)))
        sets = ", ".join(f"set_config(:n{i}, :v{i}, true)" for i in range(len(pairs)))
        kept = ", ".join(f"before.p{i}" for i in range(len(pairs)))
        # The materialized CTE's row (the old values) is produced before the outer list's set_config calls run.
        previous = self._conn.execute(
            sa.text(f"WITH before AS MATERIALIZED (SELECT {reads}) SELECT {kept}, {sets} FROM before"),
            {**names, **values}).one()[:len(pairs)]
        yield
        # A setting that did not exist before (pgvector's, before its library is loaded by the statement
        # inside) reads NULL, and a NULL value resets it to its default: '' is no valid hnsw.iterative_scan.
        restore = ", ".join(f"set_config(:n{i}, CAST(:p{i} AS text), true)" for i in range(len(pairs)))
        self._conn.execute(sa.text(f"SELECT {restore}"),
                           {**names, **{f"p{i}": value for i, value in enumerate(previous)}})

    def _run(self, sql: str, params: dict[str, Any]) -> tuple[str, list[SearchHit]]:
        """The plan the statement chose, and its hits (a plan-only row when there are none)."""
        rows = self._conn.execute(sa.text(sql), params).all()
        return rows[0][11], [SearchHit(_summary(row), row[10], row[9]) for row in rows if row[0] is not None]

    @staticmethod
    def _search_sql(space: EmbeddingSpace, filters: str, fetch: int) -> str:
        """One statement: the caller's readable scopes (once), a count of readable chunks capped at
        the threshold (``bound``: the fixed minimum or a share of the space) that picks the plan, the chosen plan's
        ranking, and the hydrated hits.

        The scopes come from the one rule table (``readable_scope_arrays_sql``) and are matched against the
        scope the database keeps on each chunk (migration 0029), so neither plan reads a record row before
        it has won a place in the top k — except with record filters (type, status, project, …), which
        need the record: the count and the exact plan join each readable chunk to it, the index plan probes
        it per candidate by primary key once the scope test has passed. Only the chosen plan runs: each is
        gated by a condition on the count, which PostgreSQL evaluates once, before starting the branch."""
        sid = int(space.id)
        join = " JOIN records r ON r.id = e.record_id" if filters else ""

        def readable_chunks(columns: str) -> str:
            return " UNION ALL ".join(
                f"SELECT {columns} FROM embedding_chunks e{join} WHERE e.space_id = {sid} AND {branch}{filters}"
                for branch in scope_array_branches("e", "readable_scopes", "org"))
        # The exact plan's distance is computed in the scan itself, so what is grouped per record is narrow (the
        # rows carrying the 3 KB vectors into the aggregate made it spill to disk: 35 of 56 ms at 10,000 chunks).
        half_distance = "e.embedding_half <=> CAST(CAST(:vec AS vector) AS halfvec)"
        exact = PgSemanticIndex._exact_sql(space, readable_chunks(f"e.record_id, {half_distance} AS distance"), fetch)
        counted = readable_chunks("1")
        record_check = (f" AND EXISTS (SELECT 1 FROM records r WHERE r.id = e.record_id{filters} OFFSET 0)"
                        if filters else "")
        return (
            f"WITH readable_scopes AS MATERIALIZED ({readable_scope_arrays_sql('org')}), "
            # greatest() of a bigint and a float8 is a float8: cast back for LIMIT and the comparison.
            "bound AS MATERIALIZED (SELECT CAST(greatest(:exact_below, :exact_share * coalesce("
            "  (SELECT reltuples FROM pg_class WHERE oid = to_regclass(CAST(:hnsw AS text))), 0)) AS bigint) AS n), "
            "plan AS MATERIALIZED (SELECT CASE WHEN count(*) < (SELECT n FROM bound) THEN 'exact' ELSE 'index' END "
            f"  AS name FROM (SELECT 1 FROM ({counted}) AS readable LIMIT (SELECT n FROM bound)) AS counted), "
            "ranked AS ("
            f"  SELECT * FROM ({exact}) AS exact "
            "  WHERE (SELECT name FROM plan) = 'exact' "
            "  UNION ALL "
            f"  SELECT * FROM ({PgSemanticIndex._index_sql(space, record_check, fetch)}) AS by_index "
            "  WHERE (SELECT name FROM plan) = 'index') "
            f"SELECT {_SUMMARY_COLUMNS}, CAST(1 - ranked.distance AS float8), "
            "ts_headline('english', r.title || ' — ' || r.body, websearch_to_tsquery('english', :text), :headline), "
            "plan.name "
            "FROM plan LEFT JOIN (ranked JOIN records r ON r.id = ranked.record_id) ON true "
            "ORDER BY ranked.distance, r.id"
        )

    @staticmethod
    def _exact_sql(space: EmbeddingSpace, readable_chunks: str, fetch: int) -> str:
        # Every readable chunk, read once from the scope index and its row: the records ranked by their nearest
        # chunk on the half-precision copy in the row (no TOAST read), then the ``fetch`` nearest re-ranked on
        # their full-precision vectors (their chunks by primary key), so the final order is exact. The chunks
        # re-read carry their record's scope, which the first step tested (migration 0029 keeps them equal).
        return (
            "SELECT e.record_id, min(e.embedding <=> CAST(:vec AS vector)) AS distance FROM ("
            "  SELECT c.record_id FROM (" + readable_chunks + ") AS c GROUP BY c.record_id "
            "  ORDER BY min(c.distance), c.record_id "
            f"  LIMIT {fetch}) AS nearest "
            f"JOIN embedding_chunks e ON e.space_id = {int(space.id)} AND e.record_id = nearest.record_id "
            "GROUP BY e.record_id ORDER BY distance, e.record_id LIMIT :k"
        )

    @staticmethod
    def _index_sql(space: EmbeddingSpace, record_check: str, fetch: int) -> str:
        dim = int(space.dim)
        # The scope test is a filter inside the HNSW scan (the arrays are InitPlans, not a join): the scan
        # streams candidates in distance order, each tested as it comes, and the iterative scan continues
        # until ``fetch`` readable chunks are found (pgvector 0.8 "iterative index scans"). relaxed_order
        # returns candidates slightly out of order: they are re-ordered exactly, on the full-precision
        # vectors, per record (its nearest chunk).
        return (
            "SELECT c.record_id, min(c.distance) AS distance FROM ("
            "  SELECT e.record_id, e.embedding <=> CAST(:vec AS vector) AS distance FROM embedding_chunks e "
            f"  WHERE e.space_id = {int(space.id)} AND {in_scope_arrays('e', 'readable_scopes', 'org')}{record_check} "
            f"  ORDER BY CAST(e.embedding AS halfvec({dim})) <=> CAST(CAST(:vec AS vector) AS halfvec({dim})) "
            f"  LIMIT {fetch}) AS c "
            "GROUP BY c.record_id ORDER BY distance, c.record_id LIMIT :k"
        )
