"""Per-request plumbing: the services the composition root hands to the app, one transaction per
request, and the signed-in principal resolved from the session cookie on every request.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from anyio import to_thread
from litestar import Request
from litestar.datastructures import Cookie
from litestar.di import NamedDependency

from tow_core.access import Principal
from tow_core.accounts import resolve_session
from tow_core.ai import EmbeddingModel
from tow_core.errors import NotAuthenticated
from tow_core.exports import ExportFiles, ExportStore
from tow_core.identity import Directory, Session, SignInLog
from tow_core.imports import OrganisationImport
from tow_core.jobs import JobQueue
from tow_core.memory_diffs import MemoryDiffStore
from tow_core.passwords import PasswordHasher
from tow_core.record_history import RecordKeeping
from tow_core.records import RecordStore
from tow_core.semantic_search import SemanticIndex
from tow_core.uploads import RasterImageInspector, UploadRecords, UploadStore
from tow_http.ai_services import AiServices
from tow_http.config import Settings
from tow_http.session_cookie import SessionCookieSigner


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Stores:
    """The ports one transaction works through; all of them commit together or not at all."""

    directory: Directory
    records: RecordStore
    history: RecordKeeping  # doc revisions and tree, ticket activity, comments and links
    memory_diffs: MemoryDiffStore  # proposed memory changes under review (SPEC §4)
    uploads: UploadRecords  # upload rows; the bytes are in Services.upload_store (SPEC §5)
    semantic: SemanticIndex  # nearest readable records by embedding (SPEC §7)
    jobs: JobQueue  # background jobs, queued with the change that asks for them
    exports: ExportStore  # export requests (SPEC §5)
    organisation_import: OrganisationImport  # restores an organisation export


@dataclass(frozen=True)
class Services:
    """What the HTTP layer needs, built by the composition root (tests override pieces of it)."""

    settings: Settings
    transaction: Callable[[], AbstractContextManager[Stores]]
    sign_in_log: SignInLog
    password_hasher: PasswordHasher
    cookie_signer: SessionCookieSigner
    clock: Callable[[], datetime] = utc_now
    upload_store: UploadStore | None = None  # None only in tests that never touch uploads
    images: RasterImageInspector | None = None
    ai: AiServices | None = None  # reasoning, embeddings, web search, egress ledger (tow_http/ai_services.py)
    embedding_model: EmbeddingModel | None = None  # None: AI not configured; search falls back to keyword
    export_files: ExportFiles | None = None  # where finished exports are read from for download
    # (key, value with secrets masked, source) for the server settings page; see config.effective_config_entries
    configuration: tuple[tuple[str, str, str], ...] = ()

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(seconds=self.settings.security.session_max_age_seconds)


@dataclass(frozen=True)
class Db(Stores):
    """The request's unit of work: everything done through its stores commits together or not at all."""

    now: datetime


@dataclass(frozen=True)
class SignedIn(Db):
    """The request's unit of work plus who is asking, loaded fresh for this request."""

    principal: Principal
    session: Session


def _stores_of(stores: Stores) -> dict[str, object]:
    return {f.name: getattr(stores, f.name) for f in fields(Stores)}


async def provide_db(services: NamedDependency[Services]) -> AsyncGenerator[Db, None]:
    """One transaction per request: committed when the handler returns, rolled back when it raises."""
    transaction = services.transaction()
    stores = await to_thread.run_sync(transaction.__enter__)
    try:
        yield Db(**_stores_of(stores), now=services.clock())
    except BaseException as exc:
        await to_thread.run_sync(transaction.__exit__, type(exc), exc, exc.__traceback__)
        raise
    else:
        await to_thread.run_sync(transaction.__exit__, None, None, None)


def session_token(request: Request, services: Services) -> tuple[str, bool] | None:
    """The verified token from the session cookie and whether it was signed with APP_SECRET_PREVIOUS."""
    raw = request.cookies.get(services.settings.security.session_cookie_name)
    verified = services.cookie_signer.verify(raw) if raw else None
    return (verified.token, verified.signed_with_previous) if verified else None


def authenticate(
    request: Request, services: Services, directory: Directory, now: datetime
) -> tuple[Session, Principal]:
    """The caller's session and principal, loaded fresh from ``directory`` (revocation is immediate), or 401.
    Also used on its own by routes that must not hold a transaction open while they stream a body."""
    token = session_token(request, services)
    if token is None:
        raise NotAuthenticated("sign in first")
    token_value, signed_with_previous = token
    token_hash = services.cookie_signer.token_hash(token_value)
    session, principal = resolve_session(directory, token_hash=token_hash, now=now)
    if signed_with_previous:  # planned APP_SECRET rotation: re-issue under the new secret
        request.state.reissue_session_cookie = token_value
    return session, principal


async def provide_signed_in(request: Request, services: NamedDependency[Services], db: NamedDependency[Db]) -> SignedIn:
    """The caller's principal, loaded fresh from the database (revocation is immediate), or 401."""
    session, principal = await to_thread.run_sync(lambda: authenticate(request, services, db.directory, db.now))
    return SignedIn(**_stores_of(db), now=db.now, principal=principal, session=session)


def session_cookie(services: Services, token: str) -> Cookie:
    security = services.settings.security
    return Cookie(
        key=security.session_cookie_name,
        value=services.cookie_signer.sign(token),
        max_age=security.session_max_age_seconds,
        path="/",
        httponly=True,
        secure=security.session_cookie_secure,
        samesite="lax",
    )


def expired_session_cookie(services: NamedDependency[Services]) -> Cookie:
    security = services.settings.security
    return Cookie(
        key=security.session_cookie_name,
        value="",
        max_age=0,
        path="/",
        httponly=True,
        secure=security.session_cookie_secure,
        samesite="lax",
    )
