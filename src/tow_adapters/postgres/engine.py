"""SQLAlchemy engine for PostgreSQL through psycopg 3, with pool sizes and timeouts from config."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from tow_core.errors import Conflict


@dataclass(frozen=True, slots=True)
class PoolOptions:
    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout_seconds: float = 30.0
    connect_timeout_seconds: int = 10
    statement_timeout_ms: int = 30_000


def sqlalchemy_url(database_url: str) -> str:
    """Accept the usual ``postgres://`` / ``postgresql://`` spellings and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


def create_engine(database_url: str, options: PoolOptions) -> sa.Engine:
    return sa.create_engine(
        sqlalchemy_url(database_url),
        pool_size=options.pool_size,
        max_overflow=options.max_overflow,
        pool_timeout=options.pool_timeout_seconds,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": options.connect_timeout_seconds,
            "options": f"-c statement_timeout={options.statement_timeout_ms}",
        },
    )


# SQLSTATEs of transactions PostgreSQL aborted because of a concurrent one (deadlock, serialization).
_CONCURRENCY_SQLSTATES = {"40P01": "a deadlock with a concurrent change", "40001": "a concurrent change"}


@contextmanager
def transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction; when PostgreSQL aborts it for a concurrent change (e.g. two people moving pages
    under each other), the caller gets a core Conflict to retry instead of a vendor error (a 500)."""
    try:
        with engine.begin() as connection:
            yield connection
    except sa.exc.DBAPIError as exc:
        reason = _CONCURRENCY_SQLSTATES.get(getattr(exc.orig, "sqlstate", None) or "")
        if reason is None:
            raise
        raise Conflict(f"this change collided with {reason}: nothing was saved, try again") from exc


class SqlStore:
    """A store over one connection (the request's transaction), with the two query helpers all stores use."""

    def __init__(self, connection: sa.Connection) -> None:
        self._conn = connection

    def _rows(self, sql: str, **params) -> Sequence[sa.Row]:
        return self._conn.execute(sa.text(sql), params).all()

    def _row(self, sql: str, **params) -> sa.Row | None:
        return self._conn.execute(sa.text(sql), params).first()
