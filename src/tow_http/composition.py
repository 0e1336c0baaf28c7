"""The composition root: the one module that builds adapters and hands them to the app and use cases.

Tests build the app through ``Container`` too, overriding providers where they need fakes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from dependency_injector import containers, providers
from litestar import Litestar

from tow_adapters.argon2_password_hasher import Argon2PasswordHasher
from tow_adapters.fs_upload_store import FsUploadStore
from tow_adapters.pillow_images import PillowRasterImageInspector
from tow_adapters.postgres.directory import PgDirectory, PgLoginFailureLog
from tow_adapters.postgres.embedded import EmbeddedPostgres
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.engine import transaction as transaction_on
from tow_adapters.postgres.history import (
    PgDocRevisions,
    PgRecordTree,
    PgTicketActivity,
    PgTicketComments,
    PgTicketLinks,
)
from tow_adapters.postgres.memory_diffs import PgMemoryDiffStore
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.records import PgRecordStore
from tow_adapters.postgres.uploads import PgUploadRecords
from tow_core.record_history import RecordKeeping
from tow_http.app import create_app
from tow_http.config import LoadedConfig, effective_config_entries
from tow_http.context import Services, Stores
from tow_http.session_cookie import SessionCookieSigner


def _pool_options(config: LoadedConfig) -> PoolOptions:
    db = config.settings.database
    return PoolOptions(
        pool_size=db.pool_size,
        max_overflow=db.max_overflow,
        pool_timeout_seconds=db.pool_timeout_seconds,
        connect_timeout_seconds=db.connect_timeout_seconds,
        statement_timeout_ms=db.statement_timeout_ms,
    )


def _transaction_factory(engine: sa.Engine):
    @contextmanager
    def transaction() -> Iterator[Stores]:
        with transaction_on(engine) as connection:
            history = RecordKeeping(
                revisions=PgDocRevisions(connection), tree=PgRecordTree(connection),
                activity=PgTicketActivity(connection), comments=PgTicketComments(connection),
                links=PgTicketLinks(connection),
            )
            yield Stores(directory=PgDirectory(connection), records=PgRecordStore(connection), history=history,
                         memory_diffs=PgMemoryDiffStore(connection), uploads=PgUploadRecords(connection))

    return transaction


class Container(containers.DeclarativeContainer):
    config = providers.Dependency(instance_of=LoadedConfig)
    database_url = providers.Dependency(instance_of=str)

    engine = providers.Singleton(
        create_engine, database_url, providers.Callable(_pool_options, config)
    )
    schema_migrator = providers.Singleton(PgSchemaMigrator, engine)
    password_hasher = providers.Singleton(Argon2PasswordHasher)
    upload_store = providers.Singleton(
        FsUploadStore, providers.Callable(lambda c: c.resolve_path(c.settings.uploads.upload_storage_path), config)
    )
    services = providers.Singleton(
        Services,
        settings=config.provided.settings,
        transaction=providers.Callable(_transaction_factory, engine),
        login_failures=providers.Singleton(PgLoginFailureLog, engine),
        password_hasher=password_hasher,
        cookie_signer=providers.Singleton(
            SessionCookieSigner, config.provided.secrets.app_secret, config.provided.secrets.app_secret_previous
        ),
        upload_store=upload_store,
        images=providers.Singleton(PillowRasterImageInspector),
        configuration=providers.Callable(effective_config_entries, config),
    )
    app: providers.Provider[Litestar] = providers.Singleton(
        create_app,
        services=services,
        schema_inspector=schema_migrator,
    )


@contextmanager
def database_url(config: LoadedConfig) -> Iterator[str]:
    """DATABASE_URL when set; otherwise the embedded PostgreSQL, stopped again on exit."""
    if config.secrets.database_url:
        yield config.secrets.database_url
        return
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); the fallback is fine.
        warnings.simplefilter("ignore")
        embedded = EmbeddedPostgres(config.resolve_path(config.settings.database.embedded_data_dir))
        url = embedded.start()
    try:
        yield url
    finally:
        embedded.stop()


@contextmanager
def container_for(config: LoadedConfig) -> Iterator[Container]:
    """A wired container with a running database; disposes the pool and stops what it started."""
    with database_url(config) as url:
        container = Container(config=config, database_url=url)
        try:
            yield container
        finally:
            container.engine().dispose()


def upload_row_names(container: Container) -> set[str]:
    """Every storage name an upload row points at (for `tow uploads verify`)."""
    with transaction_on(container.engine()) as connection:
        return PgUploadRecords(connection).storage_names()
