"""SQLAlchemy engine for PostgreSQL through psycopg 3, with pool sizes and timeouts from config."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from tow_core.errors import Conflict, DatabaseBusy, DatabaseUnavailable


@dataclass(frozen=True, slots=True)
class PoolOptions:
    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout_seconds: float = 0.5
    connect_timeout_seconds: int = 10
    statement_timeout_ms: int = 30_000


def sqlalchemy_url(database_url: str) -> str:
    """Accept the usual ``postgres://`` / ``postgresql://`` spellings and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


# A pooled connection idle at least this long is pinged before it is handed out (below).
PING_AFTER_IDLE_SECONDS = 1.0


def create_engine(database_url: str, options: PoolOptions) -> sa.Engine:
    engine = sa.create_engine(
        sqlalchemy_url(database_url),
        pool_size=options.pool_size,
        max_overflow=options.max_overflow,
        pool_timeout=options.pool_timeout_seconds,
        connect_args={
            "connect_timeout": options.connect_timeout_seconds,
            "options": f"-c statement_timeout={options.statement_timeout_ms}",
        },
    )
    _ping_idle_connections(engine.pool)
    return engine


def _ping_idle_connections(pool: sa.pool.Pool) -> None:
    """Pessimistic disconnect handling for idle connections only (SQLAlchemy's documented custom pre-ping:
    a checkout listener raising DisconnectionError makes the pool retry with a fresh connection). A
    connection that went back to the pool under a second ago is handed out as it is: ``pool_pre_ping``
    would cost every request one more round trip, and a database that went away within that second fails
    the statement instead — a disconnect SQLAlchemy detects, invalidating the pool, and the request
    answers 503 (``transaction`` below) while the next ones reconnect."""

    @sa.event.listens_for(pool, "checkin")
    def _returned(dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(pool, "checkout")
    def _check(dbapi_connection, record, proxy) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # new (just connected) or in use a moment ago
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as exc:  # noqa: BLE001 - any failure: the pool drops it and connects again
            raise sa.exc.DisconnectionError(f"an idle pooled connection no longer answers: {exc}") from exc


# SQLSTATEs of transactions PostgreSQL aborted because of a concurrent one (deadlock, serialization).
_CONCURRENCY_SQLSTATES = {"40P01": "a deadlock with a concurrent change", "40001": "a concurrent change"}


# How long a client should wait before retrying when the pool or the server is out of connections.
BUSY_RETRY_AFTER_SECONDS = 1
UNAVAILABLE_RETRY_AFTER_SECONDS = 5


@contextmanager
def transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction on one pooled connection, returned to the pool on exit.

    Vendor errors become core ones: PostgreSQL aborting it for a concurrent change (two people moving
    pages under each other) is a Conflict to retry; no connection freeing up within the pool's wait
    (``database.pool_timeout_seconds``) is DatabaseBusy, and PostgreSQL unreachable or cancelling a
    statement is DependencyUnavailable — both 503 with Retry-After instead of a 500 or a long hang."""
    try:
        connection = engine.connect()
    except sa.exc.TimeoutError as exc:  # QueuePool: every connection stayed in use for pool_timeout
        raise DatabaseBusy("the server is busy: every database connection is in use; try again in a moment",
                           retry_after_seconds=BUSY_RETRY_AFTER_SECONDS) from exc
    except sa.exc.OperationalError as exc:
        raise _unavailable() from exc
    with connection, _vendor_errors_wrapped(), connection.begin():
        yield connection


@contextmanager
def _vendor_errors_wrapped() -> Iterator[None]:
    try:
        yield
    except sa.exc.DBAPIError as exc:
        reason = _CONCURRENCY_SQLSTATES.get(getattr(exc.orig, "sqlstate", None) or "")
        if reason is not None:
            raise Conflict(f"this change collided with {reason}: nothing was saved, try again") from exc
        if isinstance(exc, sa.exc.OperationalError):  # connection lost, statement_timeout, server shutting down
            raise _unavailable() from exc
        raise


def _unavailable() -> DatabaseUnavailable:
    return DatabaseUnavailable("the database is unavailable or did not answer in time; try again shortly",
                                 retry_after_seconds=UNAVAILABLE_RETRY_AFTER_SECONDS)


@functools.lru_cache(maxsize=2048)
def statement(sql: str) -> sa.TextClause:
    """``sa.text(sql)``, built once per distinct statement: building one parses its bind parameters again on
    every call (measured: about 5 % of a signed-in list request). The stores' SQL is a bounded set of strings
    (values are always bound, never formatted in), so the cache stays small."""
    return sa.text(sql)


class SqlStore:
    """A store over one connection (the request's transaction), with the two query helpers all stores use."""

    def __init__(self, connection: sa.Connection) -> None:
        self._conn = connection

    def _rows(self, sql: str, **params) -> Sequence[sa.Row]:
        return self._conn.execute(statement(sql), params).all()

    def _row(self, sql: str, **params) -> sa.Row | None:
        return self._conn.execute(statement(sql), params).first()
