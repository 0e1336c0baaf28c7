"""The composition root: the one module that builds adapters and hands them to the app and use cases.

Tests build the app through ``Container`` too, overriding providers where they need fakes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

import sqlalchemy as sa
from dependency_injector import containers, providers
from litestar import Litestar

from tow_adapters.argon2_password_hasher import Argon2PasswordHasher
from tow_adapters.backup_archive import TarBackupArchive
from tow_adapters.exa_web_search import EXA_OFFICIAL_HOST, EXA_PROVIDER, ExaWebSearch
from tow_adapters.fs_export_files import FsExportFiles, atomic_text_file
from tow_adapters.fs_upload_store import FsUploadStore
from tow_adapters.oidc_provider import OidcOptions, OidcProvider
from tow_adapters.openai_client import OPENAI_OFFICIAL_HOST, OPENAI_PROVIDER, OpenAIGateway, OpenAIOptions
from tow_adapters.openai_embeddings import OpenAIEmbeddingModel
from tow_adapters.openai_reasoning import OpenAIReasoningModel, ReasoningModels
from tow_adapters.pillow_images import PillowRasterImageInspector
from tow_adapters.postgres.agent_runs import PgAgentRuns
from tow_adapters.postgres.backup import PgBackupDatabase
from tow_adapters.postgres.conversations import PgConversations
from tow_adapters.postgres.directory import PgDirectory, PgSignInLog
from tow_adapters.postgres.egress import PgEgressLedger
from tow_adapters.postgres.email_outbox import PgEmailDelivery, PgEmailOutbox
from tow_adapters.postgres.embedded import EmbeddedPostgres
from tow_adapters.postgres.embeddings import PgEmbeddingQueue, PgEmbeddingSpaces, PgSemanticIndex
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.engine import transaction as transaction_on
from tow_adapters.postgres.export_source import PgExportSource, export_snapshot
from tow_adapters.postgres.exports import PgExportStore
from tow_adapters.postgres.history import (
    PgDocRevisions,
    PgRecordTree,
    PgTicketActivity,
    PgTicketComments,
    PgTicketLinks,
)
from tow_adapters.postgres.housekeeping import PgFinishedJobs, PgUploadDeletionOutbox, recorded_export_file_names
from tow_adapters.postgres.jobs import PgJobLeases, PgJobQueue
from tow_adapters.postgres.live import PgLiveEvents, PgLiveFeed
from tow_adapters.postgres.memory_diffs import PgMemoryDiffStore
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.notifications import PgNotifications
from tow_adapters.postgres.oidc_identities import PgOidcIdentities
from tow_adapters.postgres.organisation_import import PgOrganisationImport
from tow_adapters.postgres.password_resets import PgPasswordResets
from tow_adapters.postgres.records import PgRecordStore
from tow_adapters.postgres.snapshot_sources import PgSnapshotSources
from tow_adapters.postgres.tokens import PgAccessTokens
from tow_adapters.postgres.uploads import PgUploadRecords
from tow_adapters.postgres.wakeups import AGENT_RUNS_CHANNEL, Wakeups
from tow_adapters.s3_upload_store import S3Location, S3UploadStore, s3_client
from tow_adapters.smtp_mail import (
    ConsoleMailTransport,
    Envelope,
    FileMailTransport,
    SmtpMailTransport,
    SmtpOptions,
)
from tow_core.agent_runs import AgentRunHandler
from tow_core.ai import (
    AI_NOT_CONFIGURED_MESSAGE,
    WEB_SEARCH_NOT_CONFIGURED_MESSAGE,
    UnconfiguredReasoningModel,
    UnconfiguredWebSearch,
)
from tow_core.chat import ChatAssistant
from tow_core.egress import EgressLedger, ProviderEndpoint, is_approved
from tow_core.exports import EXPORT_JOB
from tow_core.extraction import EXTRACTION_RUN
from tow_core.housekeeping import ORPHAN_EXPORT_GRACE
from tow_core.jobs import RetryPolicy
from tow_core.live import LiveHub
from tow_core.notifications import EMAIL_JOB as NOTIFICATION_EMAIL_JOB
from tow_core.outbox import MailTransport, QueuedEmail
from tow_core.record_history import RecordKeeping
from tow_core.snapshots import SNAPSHOT_RUN
from tow_core.unit_of_work import Stores, Transactions
from tow_core.uploads import UploadStore
from tow_core.use_cases.agent_runs import owner_told_of_end
from tow_core.use_cases.chat import CHAT_RUN, ChatRuns
from tow_core.use_cases.exports import ExportJobs, ExportSnapshot
from tow_core.use_cases.extraction import ExtractionRuns
from tow_core.use_cases.notification_email import NotificationMailer
from tow_core.use_cases.password_reset import RESET_LINK_JOB, ResetLinkMailer
from tow_core.use_cases.snapshots import SnapshotRuns, fail_abandoned_generations
from tow_http.agent_run_worker import AgentRunWorker
from tow_http.ai_services import AiServices, AiStatus
from tow_http.app import create_app
from tow_http.bootstrap import extraction_policy, mail_composer
from tow_http.config import LoadedConfig, effective_config_entries
from tow_http.context import Services, utc_now
from tow_http.email_worker import EmailWorker
from tow_http.job_worker import (
    JobWorker,
    PeriodicTask,
    finished_agent_run_purge,
    finished_job_purge,
    finished_run_event_purge,
    idle_conversation_purge,
    orphan_export_file_sweep,
    upload_file_deletion_sweep,
)
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
            live = PgLiveEvents(connection)
            history = RecordKeeping(
                revisions=PgDocRevisions(connection), tree=PgRecordTree(connection),
                activity=PgTicketActivity(connection), comments=PgTicketComments(connection),
                links=PgTicketLinks(connection), live=live,
            )
            yield Stores(directory=PgDirectory(connection), records=PgRecordStore(connection), history=history,
                         memory_diffs=PgMemoryDiffStore(connection), uploads=PgUploadRecords(connection),
                         jobs=PgJobQueue(connection), exports=PgExportStore(connection),
                         organisation_import=PgOrganisationImport(connection), semantic=PgSemanticIndex(connection),
                         agent_runs=PgAgentRuns(connection), conversations=PgConversations(connection),
                         tokens=PgAccessTokens(connection),
                         oidc_identities=PgOidcIdentities(connection),
                         snapshot_sources=PgSnapshotSources(connection), email_outbox=PgEmailOutbox(connection),
                         password_resets=PgPasswordResets(connection), live=live,
                         notifications=PgNotifications(connection))

    return transaction


def _export_files(config: LoadedConfig) -> FsExportFiles:
    return FsExportFiles(config.resolve_path(config.settings.exports.export_storage_path))


def export_snapshots_on(engine: sa.Engine, upload_store: UploadStore | None) -> ExportSnapshot:
    """How exports read the database: one REPEATABLE READ snapshot each (the job worker's and `tow export`'s)."""
    @contextmanager
    def snapshot(exported_at: datetime) -> Iterator[PgExportSource]:
        with export_snapshot(engine) as connection:
            yield PgExportSource(connection, exported_at=exported_at,
                                 open_upload=upload_store.open if upload_store else None)

    return snapshot


def export_file_at(path: Path, *, overwrite: bool) -> Callable[[], AbstractContextManager[TextIO]]:
    """Where `tow export` writes: ``path``, atomically (nothing is left there when the export fails)."""
    return lambda: atomic_text_file(path, overwrite=overwrite)


def _upload_store(config: LoadedConfig) -> UploadStore:
    """``uploads.backend``: the files under ``uploads.upload_storage_path``, or the objects of an S3 bucket (SPEC
    §11: the multi-machine choice; the configuration checked that the bucket and its credentials are set)."""
    uploads = config.settings.uploads
    if uploads.backend == "s3":
        s3, secrets = uploads.s3, config.secrets
        location = S3Location(s3.bucket, s3.key_prefix, s3.endpoint_url or None, s3.region)
        client = s3_client(location, secrets.tow_s3_access_key_id or "", secrets.tow_s3_secret_access_key or "")
        return S3UploadStore(client, location)
    return FsUploadStore(config.resolve_path(uploads.upload_storage_path))


def build_job_worker(engine: sa.Engine, config: LoadedConfig, files: FsExportFiles,
                     upload_store: UploadStore | None = None,
                     clock: Callable[[], datetime] | None = None) -> JobWorker:
    """The job worker with every job handler this deployment has (exports, password reset links and, with
    APP_SECRET, notification emails and the daily digests of its housekeeping, whose unsubscribe links it
    signs). Tests pass a clock."""
    jobs, exports = config.settings.jobs, config.settings.exports
    clock = clock or utc_now
    transaction = _transaction_factory(engine)

    export_jobs = ExportJobs(Transactions(transaction, clock), export_snapshots_on(engine, upload_store), files,
                             retention=timedelta(hours=exports.retention_hours))
    reset_links = ResetLinkMailer(Transactions(transaction, clock), SessionCookieSigner,
                                  mail_composer(config.settings))
    handlers = {EXPORT_JOB: export_jobs.run, RESET_LINK_JOB: reset_links.send_link}
    digests: list[Callable[[datetime], object]] = []
    if config.secrets.app_secret:  # notification emails carry an unsubscribe link signed with APP_SECRET
        signer = SessionCookieSigner(config.secrets.app_secret, config.secrets.app_secret_previous)
        mailer = NotificationMailer(Transactions(transaction, clock), signer, mail_composer(config.settings))
        handlers[NOTIFICATION_EMAIL_JOB] = mailer.send
        digests.append(mailer.send_digests)
    return JobWorker(
        PgJobLeases(engine), handlers,
        policy=RetryPolicy(lease_seconds=jobs.lease_seconds, max_attempts=jobs.max_attempts),
        poll_interval_seconds=jobs.poll_interval_seconds, clock=clock,
        periodic=[export_jobs.sweep,
                  *housekeeping_tasks(engine, files, upload_store, retention=timedelta(hours=exports.retention_hours),
                                      chat_retention_days=config.settings.ai.chat_retention_days,
                                      agent_run_retention_days=config.settings.ai.agent_run_retention_days),
                  *digests],  # last: a digest that fails to render delays no housekeeping
    )


def agent_run_handlers(engine: sa.Engine, config: LoadedConfig, ai: AiServices) -> dict[str, AgentRunHandler]:
    """The handler of each kind of agent run this deployment has (chat, snapshot generation, memory
    extraction). A run of a kind without one fails with ``no_handler``."""
    assistant = ChatAssistant(ai.reasoning_model, ai.web_search, ai.embedding_model,
                              config.settings.ai.max_tool_rounds)
    transactions = Transactions(_transaction_factory(engine), utc_now)
    extraction = extraction_policy(config.settings.ai, ai.status.configured)
    return {CHAT_RUN: ChatRuns(transactions, assistant, extraction=extraction),
            SNAPSHOT_RUN: SnapshotRuns(transactions, ai.reasoning_model),
            EXTRACTION_RUN: ExtractionRuns(transactions, ai.reasoning_model, ai.embedding_model)}


def build_agent_run_worker(engine: sa.Engine, config: LoadedConfig, handlers: Mapping[str, AgentRunHandler],
                           clock: Callable[[], datetime] | None = None) -> AgentRunWorker:
    """The agent run worker: ``jobs.ai_queue_max_concurrency`` claimers under the jobs' lease and attempt
    limits. Tests pass handlers and a clock."""
    jobs = config.settings.jobs

    @contextmanager
    def runs():
        with transaction_on(engine) as connection:
            yield PgAgentRuns(connection)

    transaction = _transaction_factory(engine)
    now = clock or utc_now

    @contextmanager
    def ending():  # the end, its event and the owner's notification in one transaction
        with transaction() as stores:
            yield stores.agent_runs, owner_told_of_end(stores, now())

    return AgentRunWorker(
        runs, handlers, ending=ending,
        policy=RetryPolicy(lease_seconds=jobs.lease_seconds, max_attempts=jobs.max_attempts),
        concurrency=jobs.ai_queue_max_concurrency, poll_interval_seconds=jobs.poll_interval_seconds,
        clock=now, listener_for=lambda wake: Wakeups(engine, AGENT_RUNS_CHANNEL, wake),
    )


def housekeeping_tasks(engine: sa.Engine, files: FsExportFiles, upload_store: UploadStore | None, *,
                       retention: timedelta, chat_retention_days: int,
                       agent_run_retention_days: int) -> list[PeriodicTask]:
    """The worker's housekeeping (``tow_core.housekeeping``), each task in its own transaction."""

    @contextmanager
    def on(store):
        with transaction_on(engine) as connection:
            yield store(connection)

    def recorded_names() -> set[str]:
        with transaction_on(engine) as connection:
            return recorded_export_file_names(connection)

    tasks = [finished_job_purge(jobs=lambda: on(PgFinishedJobs), retention=retention),
             orphan_export_file_sweep(recorded_names=recorded_names, directory=files, grace=ORPHAN_EXPORT_GRACE),
             idle_conversation_purge(conversations=lambda: on(PgConversations), retention_days=chat_retention_days),
             finished_agent_run_purge(runs=lambda: on(PgAgentRuns), retention_days=agent_run_retention_days),
             finished_run_event_purge(runs=lambda: on(PgAgentRuns)),
             lambda now: fail_abandoned_generations(Transactions(_transaction_factory(engine), utc_now))]
    if upload_store is not None:
        tasks.append(upload_file_deletion_sweep(outbox=lambda: on(PgUploadDeletionOutbox), files=upload_store))
    return tasks


# --- email (issue 19): the outbox's worker and the transport it sends through ---------------------------


def build_mail_transport(config: LoadedConfig) -> MailTransport:
    """``email.transport``: console (the default), file or smtp (credentials from the environment only)."""
    email = config.settings.email
    envelope = Envelope(email.from_address, email.reply_to)
    if email.transport == "file":
        return FileMailTransport(envelope, config.resolve_path(email.file_directory))
    if email.transport == "smtp":
        smtp = email.smtp
        return SmtpMailTransport(envelope, SmtpOptions(
            smtp.host, smtp.port, smtp.security, smtp.timeout_seconds, username=config.secrets.tow_smtp_username,
            password=config.secrets.tow_smtp_password,
            ca_file=str(config.resolve_path(smtp.ca_file)) if smtp.ca_file else None))
    return ConsoleMailTransport(envelope)


def email_retry_policy(config: LoadedConfig) -> RetryPolicy:
    """``email.max_attempts`` attempts, backing off from 30 s; a lease outlasts the SMTP timeout several times."""
    email = config.settings.email
    return RetryPolicy(lease_seconds=max(60, int(email.smtp.timeout_seconds * 4)), max_attempts=email.max_attempts,
                       base_delay_seconds=30.0)


def build_email_worker(engine: sa.Engine, config: LoadedConfig, transport: MailTransport,
                       clock: Callable[[], datetime] | None = None) -> EmailWorker:
    """The email worker over the outbox. Tests pass a clock (and a transport through the container)."""
    return EmailWorker(PgEmailDelivery(engine), transport, policy=email_retry_policy(config),
                       poll_interval_seconds=config.settings.jobs.poll_interval_seconds, clock=clock or utc_now)


# --- AI (SPEC §6): real adapters when the keys are set, the core's "unconfigured" ones otherwise ---------


def _openai_gateway(config: LoadedConfig, ledger: EgressLedger) -> OpenAIGateway | None:
    if not config.secrets.openai_api_key:
        return None
    ai = config.settings.ai
    options = OpenAIOptions(config.secrets.openai_api_key, ai.openai_base_url, ai.request_timeout_seconds)
    return OpenAIGateway(options, ledger, ai.approved_providers)


def _reasoning_model(config: LoadedConfig, gateway: OpenAIGateway | None):
    if gateway is None:
        return UnconfiguredReasoningModel()
    ai = config.settings.ai
    return OpenAIReasoningModel(
        gateway, ReasoningModels(ai.openai_reasoning_model, ai.openai_fast_model, ai.openai_reasoning_effort)
    )


def _embedding_model(config: LoadedConfig, gateway: OpenAIGateway | None) -> OpenAIEmbeddingModel | None:
    """None without OPENAI_API_KEY: search then falls back to keyword search and says so."""
    if gateway is None:
        return None
    return OpenAIEmbeddingModel(gateway, config.settings.ai.openai_embedding_model, config.settings.ai.embedding_dim)


def _web_search(config: LoadedConfig, ledger: EgressLedger):
    if not config.secrets.exa_api_key:
        return UnconfiguredWebSearch()
    ai = config.settings.ai
    return ExaWebSearch(config.secrets.exa_api_key, ai.exa_base_url, ai.request_timeout_seconds, ledger,
                        ai.approved_providers)


def _ai_status(config: LoadedConfig) -> AiStatus:
    ai, secrets = config.settings.ai, config.secrets
    openai_endpoint = ProviderEndpoint(OPENAI_PROVIDER, ai.openai_base_url.rstrip("/"), OPENAI_OFFICIAL_HOST)
    exa_endpoint = ProviderEndpoint(EXA_PROVIDER, ai.exa_base_url.rstrip("/"), EXA_OFFICIAL_HOST)
    return AiStatus(
        configured=bool(secrets.openai_api_key),
        message=None if secrets.openai_api_key else AI_NOT_CONFIGURED_MESSAGE,
        openai_base_url=openai_endpoint.base_url, openai_approved=is_approved(openai_endpoint, ai.approved_providers),
        reasoning_model=ai.openai_reasoning_model, fast_model=ai.openai_fast_model,
        reasoning_effort=ai.openai_reasoning_effort, embedding_model=ai.openai_embedding_model,
        embedding_dim=ai.embedding_dim, web_search_configured=bool(secrets.exa_api_key),
        web_search_message=None if secrets.exa_api_key else WEB_SEARCH_NOT_CONFIGURED_MESSAGE,
        exa_base_url=exa_endpoint.base_url, exa_approved=is_approved(exa_endpoint, ai.approved_providers),
        approved_providers=ai.approved_providers,
    )


def _identity_provider(config: LoadedConfig) -> OidcProvider | None:
    """The OIDC provider when auth.mode is oidc (config checked issuer, client id and secret)."""
    if config.settings.auth.mode != "oidc":
        return None
    oidc, public = config.settings.auth.oidc, config.settings.runtime.public_app_url.rstrip("/")
    return OidcProvider(OidcOptions(
        issuer_url=oidc.issuer_url, client_id=oidc.client_id, client_secret=config.secrets.oidc_client_secret or "",
        redirect_uri=f"{public}/auth/oidc/callback", post_logout_redirect_uri=f"{public}/login?signed_out=1",
        scopes=oidc.scopes, allowed_algorithms=oidc.allowed_algorithms, timeout_seconds=oidc.request_timeout_seconds,
        email_claim=oidc.email_claim, name_claim=oidc.name_claim, groups_claim=oidc.groups_claim))


class Container(containers.DeclarativeContainer):
    config = providers.Dependency(instance_of=LoadedConfig)
    database_url = providers.Dependency(instance_of=str)

    engine = providers.Singleton(
        create_engine, database_url, providers.Callable(_pool_options, config)
    )
    schema_migrator = providers.Singleton(PgSchemaMigrator, engine)
    password_hasher = providers.Singleton(Argon2PasswordHasher)
    upload_store = providers.Singleton(_upload_store, config)
    egress_ledger = providers.Singleton(PgEgressLedger, engine)
    openai_gateway = providers.Singleton(_openai_gateway, config, egress_ledger)
    reasoning_model = providers.Singleton(_reasoning_model, config, openai_gateway)
    embedding_model = providers.Singleton(_embedding_model, config, openai_gateway)  # None without OPENAI_API_KEY
    web_search = providers.Singleton(_web_search, config, egress_ledger)
    ai_services = providers.Singleton(
        AiServices, reasoning_model=reasoning_model, embedding_model=embedding_model, web_search=web_search,
        egress_ledger=egress_ledger, status=providers.Callable(_ai_status, config),
    )
    embedding_queue = providers.Singleton(PgEmbeddingQueue, engine)
    embedding_spaces = providers.Singleton(PgEmbeddingSpaces, engine)
    export_files = providers.Singleton(_export_files, config)
    # One listening connection per process, opened by the first live stream (tow_core.live)
    live_hub = providers.Singleton(LiveHub, providers.Singleton(PgLiveFeed, engine),
                                   max_subscribers=config.provided.settings.live.max_clients)
    services = providers.Singleton(
        Services,
        settings=config.provided.settings,
        transaction=providers.Callable(_transaction_factory, engine),
        sign_in_log=providers.Singleton(PgSignInLog, engine),
        password_hasher=password_hasher,
        embedding_model=embedding_model,
        cookie_signer=providers.Singleton(
            SessionCookieSigner, config.provided.secrets.app_secret, config.provided.secrets.app_secret_previous
        ),
        upload_store=upload_store,
        images=providers.Singleton(PillowRasterImageInspector),
        ai=ai_services,
        export_files=export_files,
        configuration=providers.Callable(effective_config_entries, config),
        identity_provider=providers.Singleton(_identity_provider, config),
        live=live_hub,
    )
    backup_database = providers.Singleton(PgBackupDatabase, database_url, engine)  # `tow backup` / `tow restore`
    backup_archive = providers.Singleton(TarBackupArchive)
    export_snapshots = providers.Singleton(export_snapshots_on, engine, upload_store)  # `tow export`
    job_worker = providers.Singleton(build_job_worker, engine, config, export_files, upload_store)
    mail_transport = providers.Singleton(build_mail_transport, config)
    email_worker = providers.Singleton(build_email_worker, engine, config, mail_transport)
    agent_run_worker = providers.Singleton(
        build_agent_run_worker, engine, config, providers.Callable(agent_run_handlers, engine, config, ai_services)
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


def dead_letters(container: Container, *, limit: int) -> list[QueuedEmail]:
    """The dead-lettered email, newest first (for `tow email dead-letters`)."""
    with transaction_on(container.engine()) as connection:
        return list(PgEmailOutbox(connection).dead_letters(limit=limit))
