"""Benchmark: what the data-egress ledger and the embedding batcher cost.

1. Per-call overhead of the ledger: median latency of a one-text embedding call through the real
   OpenAI adapter against the local fake server, with the ledger in memory vs in PostgreSQL (two
   short transactions per call: the in_flight row, then its outcome).
2. Token counting and batching (tiktoken cl100k_base, offline): texts and tokens per second.
3. Listing the ledger with 100k rows: newest page, filtered by user, and by record display ID.

Run: `.venv/bin/python bench/egress.py` (about a minute) on the embedded PostgreSQL.
"""

from __future__ import annotations

import platform
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fake server lives in tests/

import sqlalchemy as sa  # noqa: E402
from tests.fake_egress import InMemoryEgressLedger  # noqa: E402
from tests.fake_openai import FakeOpenAIServer  # noqa: E402

from tow_adapters.openai_client import OpenAIGateway, OpenAIOptions  # noqa: E402
from tow_adapters.openai_embeddings import OpenAIEmbeddingModel, request_batches  # noqa: E402
from tow_adapters.postgres.egress import PgEgressLedger  # noqa: E402
from tow_adapters.postgres.embedded import EmbeddedPostgres  # noqa: E402
from tow_adapters.postgres.engine import PoolOptions, create_engine  # noqa: E402
from tow_adapters.postgres.migrator import PgSchemaMigrator  # noqa: E402
from tow_core.ai import EgressContext, EgressPurpose  # noqa: E402
from tow_core.egress import EgressQuery  # noqa: E402

CALLS = 300
LEDGER_ROWS = 100_000
WORDS = ["release", "budget", "roadmap", "incident", "customer", "hiring", "security", "review", "migration", "latency"]


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def per_call(embedder: OpenAIEmbeddingModel, context: EgressContext) -> float:
    samples = []
    for i in range(CALLS):
        started = time.perf_counter()
        embedder.embed([f"note {i} about the release"], context)
        samples.append(time.perf_counter() - started)
    return median_ms(samples)


def main() -> None:
    fake = FakeOpenAIServer().start()
    context = EgressContext(EgressPurpose.EMBEDDING, 1, 1, ("DOC-1",))
    options = OpenAIOptions("sk-bench", fake.base_url, 30.0)
    with tempfile.TemporaryDirectory(prefix="tow-bench-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = EmbeddedPostgres(Path(tmp) / "pg")
        url = server.start()
        engine = create_engine(url, PoolOptions(pool_size=2))
        try:
            PgSchemaMigrator(engine).upgrade()
            in_memory = OpenAIEmbeddingModel(OpenAIGateway(options, InMemoryEgressLedger(), (fake.base_url,)), "m", 256)
            in_pg = OpenAIEmbeddingModel(OpenAIGateway(options, PgEgressLedger(engine), (fake.base_url,)), "m", 256)
            per_call(in_memory, context)  # warm-up: connections, tiktoken
            memory_ms, pg_ms = per_call(in_memory, context), per_call(in_pg, context)

            texts = [" ".join(random.choices(WORDS, k=200)) for _ in range(20_000)]
            started = time.perf_counter()
            batches = list(request_batches(texts))
            batching_s = time.perf_counter() - started

            with engine.begin() as connection:
                connection.execute(sa.text(
                    "INSERT INTO egress_ledger (provider, base_url, model, purpose, acting_user_id, organisation_id, "
                    "record_display_ids, request_bytes, response_bytes, duration_ms, outcome) "
                    "SELECT 'openai', 'https://api.openai.com/v1', 'm', 'embedding', 1 + i % 50, 1 + i % 4, "
                    "ARRAY['DOC-' || (i % 20000)], 100, 100, 5, 'ok' FROM generate_series(1, :n) i"),
                    {"n": LEDGER_ROWS})
                connection.execute(sa.text("ANALYZE egress_ledger"))
            ledger = PgEgressLedger(engine)
            listing = {}
            for name, query in (("newest 50", EgressQuery()), ("by user", EgressQuery(acting_user_id=7)),
                                ("by record", EgressQuery(record_display_id="DOC-123"))):
                samples = []
                for _ in range(30):
                    started = time.perf_counter()
                    ledger.entries(2, query, cursor=None, limit=50)
                    samples.append(time.perf_counter() - started)
                listing[name] = median_ms(samples)
        finally:
            engine.dispose()
            server.stop()
            fake.stop()

    print(f"machine: {platform.machine()}, {platform.python_version()}, {sys.platform}")
    print(f"one-text embedding call, median of {CALLS}: ledger in memory {memory_ms:.2f} ms, "
          f"in PostgreSQL {pg_ms:.2f} ms (overhead {pg_ms - memory_ms:.2f} ms per call)")
    tokens = sum(len(b) for b in batches) * 200  # ~1 token per word here
    print(f"batching 20,000 texts of 200 words: {batching_s:.2f} s ({len(texts) / batching_s:,.0f} texts/s, "
          f"~{tokens / batching_s:,.0f} tokens/s) into {len(batches)} requests")
    for name, ms in listing.items():
        print(f"ledger listing with {LEDGER_ROWS:,} rows, {name}: {ms:.2f} ms (median of 30)")


if __name__ == "__main__":
    main()
