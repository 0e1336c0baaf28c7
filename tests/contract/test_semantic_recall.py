"""The semantic search contract at several selectivities: the top-k of what the caller may read.

A corpus of 4,000 records (bag-of-words vectors, 64 dimensions, one chunk each) over 1,000 restricted
projects; four users read about 50 %, 10 %, 1 % and 0.1 % of it through project grants. For 12 queries
per user, ``PgSemanticIndex`` is compared with the exact oracle (the exact scan over everything the
user can read): recall@10 must be ≥ 0.95, no page may be short, and nothing unreadable may appear.
It runs twice: with the production exact-scan threshold, and with the index forced (threshold 0) so
the iterative HNSW scan is exercised at every selectivity. Figures go to the terminal summary.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from tests.semantic_vectors import bag_of_words_vector
from tow_adapters.postgres import embeddings
from tow_adapters.postgres.embeddings import (
    EXACT_SCAN_BELOW,
    PgEmbeddingSpaces,
    PgSemanticIndex,
    index_name,
    vector_literal,
)
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_core.records import RecordQuery

RECORDS, PROJECTS, DIM, K, QUERIES = 4_000, 1_000, 64, 10, 12
SELECTIVITIES = {"50 %": 500, "10 %": 100, "1 %": 10, "0.1 %": 1}  # label -> projects granted
VOCABULARY = [f"w{i}" for i in range(400)]
RECALL_STATS: list[str] = []


@pytest.fixture(scope="module")
def corpus(embedded_postgres):
    from tow_adapters.postgres.engine import PoolOptions, create_engine

    embedded_postgres.ensure_database("semantic_recall")
    engine = create_engine(embedded_postgres.url("semantic_recall"), PoolOptions(pool_size=2))
    PgSchemaMigrator(engine).upgrade()
    rng = random.Random(6)
    texts = {i: " ".join(rng.choices(VOCABULARY, k=rng.randint(5, 12))) for i in range(1, RECORDS + 1)}
    with engine.begin() as conn:
        if conn.execute(sa.text("SELECT count(*) FROM records")).scalar() == 0:
            conn.execute(sa.text("INSERT INTO organisations (id, name) VALUES (1, 'Recall')"))
            conn.execute(sa.text("INSERT INTO users (id, email, display_name) SELECT u, 'u' || u || '@example.com', "
                                 "'u' FROM generate_series(1, 4) u"))
            conn.execute(sa.text("INSERT INTO memberships (organisation_id, user_id, role) "
                                 "SELECT 1, u, 'member' FROM generate_series(1, 4) u"))
            conn.execute(sa.text("INSERT INTO projects (id, organisation_id, key, name, visibility) "
                                 "SELECT p, 1, 'P' || p, 'p', 'restricted' FROM generate_series(1, :n) p"),
                         {"n": PROJECTS})
            conn.execute(sa.text("INSERT INTO project_grants (project_id, user_id, role) VALUES (:p, :u, 'viewer')"),
                         [{"p": p, "u": u} for u, n in enumerate(SELECTIVITIES.values(), 1) for p in range(1, n + 1)])
            conn.execute(sa.text(
                "INSERT INTO records (id, organisation_id, type, prefix, number, scope_kind, scope_ref, title, status) "
                "SELECT t.id, 1, 'decision', 'DEC', t.id, 'project', 1 + t.id % :projects, t.title, 'active' "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:titles AS text[])) AS t(id, title)"
            ), {"ids": list(texts), "titles": list(texts.values()), "projects": PROJECTS})
    space = PgEmbeddingSpaces(engine).record_first("bag-of-words", DIM)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO embedding_chunks (space_id, record_id, chunk, content_hash, embedding) "
            "SELECT :space, r.id, 0, md5(r.title || chr(10) || r.body), CAST(t.v AS vector) FROM records r "
            "JOIN unnest(CAST(:ids AS bigint[]), CAST(:vectors AS text[])) AS t(id, v) ON t.id = r.id "
            "ON CONFLICT DO NOTHING"
        ), {"space": space.id, "ids": list(texts),
            "vectors": [vector_literal(bag_of_words_vector(t, DIM)) for t in texts.values()]})
        conn.execute(sa.text("ANALYZE"))
    queries = [" ".join(rng.sample(VOCABULARY, 3)) for _ in range(QUERIES)]
    yield engine, space, queries
    engine.dispose()


def readable_ids(conn, user: int) -> set[int]:
    return set(conn.execute(sa.text(
        "SELECT r.id FROM records r JOIN project_grants g ON g.project_id = r.scope_ref WHERE g.user_id = :u"
    ), {"u": user}).scalars())


def exact_oracle(conn, space, user: int, vector) -> list[SimpleNamespace]:
    """The k nearest readable records on the full-precision vectors, written out apart from the code under
    test (whose exact plan ranks on the half-precision copy first)."""
    rows = conn.execute(sa.text(
        "SELECT c.record_id, min(c.embedding <=> CAST(:v AS vector)) AS d FROM embedding_chunks c "
        "JOIN records r ON r.id = c.record_id JOIN project_grants g ON g.project_id = r.scope_ref AND g.user_id = :u "
        "WHERE c.space_id = :space GROUP BY c.record_id ORDER BY d, c.record_id LIMIT :k"
    ), {"v": vector_literal(vector), "u": user, "space": space.id, "k": K}).all()
    return [SimpleNamespace(summary=SimpleNamespace(id=record_id), rank=1 - d) for record_id, d in rows]


def tie_aware_recall(found, oracle) -> float:
    """A hit counts when it is in the oracle or exactly as near as the oracle's k-th (ties are common
    with bag-of-words vectors, and either tied record is a correct answer)."""
    cutoff = min(h.rank for h in oracle) - 1e-6
    oracle_ids = {h.summary.id for h in oracle}
    return min(len(oracle), sum(h.summary.id in oracle_ids or h.rank >= cutoff for h in found)) / len(oracle)


@pytest.mark.parametrize("threshold", [EXACT_SCAN_BELOW, 0], ids=["production-threshold", "index-forced"])
def test_top_k_of_what_the_caller_can_read_at_every_selectivity(corpus, threshold):
    engine, space, queries = corpus
    for user, label in enumerate(SELECTIVITIES, start=1):
        recalls, short, plans = [], 0, {}
        for text in queries:
            vector = bag_of_words_vector(text, DIM)
            with engine.begin() as conn:
                allowed = readable_ids(conn, user)
                index = PgSemanticIndex(conn, exact_scan_below=threshold)
                found = index.nearest_readable(user, 1, space, vector, text, RecordQuery(), K)
                plans[index.last_plan] = plans.get(index.last_plan, 0) + 1
            with engine.begin() as conn:
                oracle = exact_oracle(conn, space, user, vector)
            assert {h.summary.id for h in found} <= allowed, "an unreadable record was returned"
            short += len(found) < min(K, len(allowed))
            recalls.append(tie_aware_recall(found, oracle))
        mean = sum(recalls) / len(recalls)
        RECALL_STATS.append(
            f"semantic recall@{K} ({'threshold ' + str(threshold) if threshold else 'index forced'}), "
            f"{label} readable ({len(allowed)} of {RECORDS}): {mean:.3f} over {QUERIES} queries, "
            f"{short} short pages, plans {plans}")
        assert short == 0
        assert mean >= 0.95, RECALL_STATS[-1]


def test_the_index_path_streams_from_the_hnsw_index_with_the_scope_check_per_candidate(corpus):
    """The statement's shape must let PostgreSQL use the HNSW index with the visibility test inside the scan
    (iterative scan), not sort the readable set: EXPLAIN names the index, whose filter tests the chunk's own
    scope against the readable arrays (InitPlans) — no sub-plan per candidate, no join to records."""
    engine, space, queries = corpus
    with engine.begin() as conn:
        sql = PgSemanticIndex._search_sql(space, "", K * 4)
        plan = list(conn.execute(sa.text("EXPLAIN " + sql), {
            "org": 1, "vec": vector_literal(bag_of_words_vector(queries[0], DIM)), "text": queries[0], "k": K,
            "headline": "", "principal_id": 1, "exact_below": 0, "exact_share": 0.0,
            "hnsw": index_name(space.id)}).scalars())
    at = next(i for i, line in enumerate(plan) if f"Index Scan using {index_name(space.id)}" in line)
    scan_filter = plan[at + 2] if "Order By" in plan[at + 1] else plan[at + 1]
    assert "Filter:" in scan_filter and "CASE scope_kind" in scan_filter, "\n".join(plan)
    assert "SubPlan" not in scan_filter and "records" not in scan_filter, "\n".join(plan)


@pytest.mark.parametrize("threshold", [EXACT_SCAN_BELOW, 0], ids=["exact-plan", "index-plan"])
def test_a_search_leaves_the_planner_settings_of_the_rest_of_its_transaction_as_they_were(corpus, threshold):
    """The search turns hash joins off (exact plan) or sets hnsw.* (index plan) for its own statement only:
    what the request runs after it — and a value set earlier in the transaction — is untouched."""
    engine, space, queries = corpus
    names = ("enable_hashjoin", "enable_mergejoin", "hnsw.iterative_scan", "hnsw.ef_search", "hnsw.max_scan_tuples")

    def settings(conn):
        return [conn.execute(sa.text("SELECT current_setting(:n, true)"), {"n": n}).scalar() for n in names]

    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL hnsw.ef_search = 77"))
        before = settings(conn)
        index = PgSemanticIndex(conn, exact_scan_below=threshold)
        found = index.nearest_readable(4, 1, space, bag_of_words_vector(queries[0], DIM), queries[0], RecordQuery(), K)
        assert found and index.last_plan.startswith("exact" if threshold else "index")
        assert settings(conn) == before and before[3] == "77"


def test_the_exact_scan_threshold_grows_with_the_space(corpus, monkeypatch):
    """The plan follows the readable share of the space, not only a count: with the threshold at half the
    space (its HNSW index's reltuples, kept by ANALYZE), the user reading 10 % gets the exact scan and the
    one reading 50 % the index; the same readable counts in a space twice as large would both scan exactly."""
    engine, space, queries = corpus
    monkeypatch.setattr(embeddings, "EXACT_SCAN_BELOW", 0)
    monkeypatch.setattr(embeddings, "EXACT_SCAN_SHARE", 0.5)
    vector = bag_of_words_vector(queries[0], DIM)
    plans = {}
    for user, share in ((1, "50 %"), (2, "10 %")):
        with engine.begin() as conn:
            index = PgSemanticIndex(conn)
            index.nearest_readable(user, 1, space, vector, queries[0], RecordQuery(), K)
            plans[share] = index.last_plan
    assert plans == {"50 %": "index", "10 %": "exact"}
    monkeypatch.setattr(embeddings, "EXACT_SCAN_SHARE", 1.0)
    with engine.begin() as conn:
        index = PgSemanticIndex(conn)
        index.nearest_readable(1, 1, space, vector, queries[0], RecordQuery(), K)
        assert index.last_plan == "exact"
