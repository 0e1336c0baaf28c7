"""Alembic migrations as a port: apply them, and tell which revision the database is at."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from tow_adapters.postgres.engine import transaction
from tow_core.errors import DependencyUnavailable, NotConfigured
from tow_core.readiness import SchemaState

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class PgSchemaMigrator:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._config = Config()
        self._config.set_main_option("script_location", str(MIGRATIONS_DIR))

    def latest_revision(self) -> str:
        head = ScriptDirectory.from_config(self._config).get_current_head()
        assert head is not None, "the migrations directory has no revisions"
        return head

    def schema_state(self) -> SchemaState:
        try:  # pool exhausted → DatabaseBusy, unreachable → DependencyUnavailable (both 503 on /api/ready)
            with transaction(self._engine) as conn:
                current = MigrationContext.configure(conn).get_current_revision()
        except sa.exc.SQLAlchemyError as exc:
            raise DependencyUnavailable(
                f"database unreachable: {type(exc.orig or exc).__name__}", retry_after_seconds=5
            ) from exc
        return SchemaState(current_revision=current, latest_revision=self.latest_revision())

    def upgrade(self) -> SchemaState:
        """Apply every pending migration, each in its own transaction."""
        try:
            with self._engine.begin() as conn:
                self._config.attributes["connection"] = conn
                command.upgrade(self._config, "head")
        except sa.exc.ProgrammingError as exc:
            if "vector" in str(exc.orig):
                raise NotConfigured(
                    "the pgvector extension is not available in this database: install pgvector >= 0.8 "
                    "and run `CREATE EXTENSION vector` as a superuser, then retry"
                ) from exc
            raise DependencyUnavailable(f"migration failed: {exc.orig}", retry_after_seconds=5) from exc
        except sa.exc.OperationalError as exc:
            raise DependencyUnavailable(
                f"database unreachable: {type(exc.orig or exc).__name__}", retry_after_seconds=5
            ) from exc
        finally:
            self._config.attributes.pop("connection", None)
        return self.schema_state()
