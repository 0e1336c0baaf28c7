"""The baselines of bench/api_throughput.py: bare Litestar apps served by the same uvicorn, protocol class
and settings as `tow serve`, so the ratio measures what TOW adds to its framework and driver.

- ``bytes``: ``GET /bytes`` answers the bytes in the file named by ``TOW_BENCH_BODY`` (the body TOW's list
  answered), as JSON — the framework's floor;
- ``sql``: ``GET /sql`` runs one SQL statement through the same engine factory, pool and psycopg driver
  as TOW (``TOW_BENCH_DATABASE_URL``), the same twenty docs' columns as the list reads, encoded with
  msgspec — the framework plus one database round trip.

Run by the benchmark: ``python bench/baseline_app.py bytes|sql PORT``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import msgspec
import sqlalchemy as sa
import uvicorn
from litestar import Litestar, Response, get

from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_http.http_protocol import EnvelopeH11Protocol

_ROWS = sa.text(
    "SELECT id, organisation_id, prefix, number, type, scope_kind, scope_ref, title, body, status, author_id, "
    "created_at, updated_at, version, fields FROM records WHERE organisation_id = :org AND type = 'doc' "
    "ORDER BY updated_at DESC, id DESC LIMIT 20"
)


def bytes_app() -> Litestar:
    body = Path(os.environ["TOW_BENCH_BODY"]).read_bytes()

    @get("/bytes", sync_to_thread=False)
    def answer() -> Response[bytes]:
        return Response(body, media_type="application/json")

    return Litestar([answer], openapi_config=None)


def sql_app() -> Litestar:
    engine = create_engine(os.environ["TOW_BENCH_DATABASE_URL"], PoolOptions(pool_size=10, max_overflow=10))
    org = int(os.environ.get("TOW_BENCH_ORG", "1"))
    encoder = msgspec.json.Encoder()

    @get("/sql", sync_to_thread=True)
    def answer() -> Response[bytes]:
        with engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(_ROWS, {"org": org})]
        return Response(encoder.encode({"items": rows, "next_cursor": None}), media_type="application/json")

    return Litestar([answer], openapi_config=None)


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    app = bytes_app() if mode == "bytes" else sql_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", server_header=False,
                http=EnvelopeH11Protocol)
