"""Per-request plumbing: the services the composition root hands to the app, the caller named by the
verified session cookie (no database needed to refuse a missing or forged one), and the request's unit
of work — one transaction, with the principal loaded fresh in it, on the handler's own thread.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from litestar import Request
from litestar.datastructures import Cookie
from litestar.di import NamedDependency

from tow_core.access import Principal
from tow_core.accounts import resolve_session
from tow_core.ai import AI_NOT_CONFIGURED_MESSAGE, EmbeddingModel
from tow_core.attachments import UploadDesk
from tow_core.errors import AiNotConfigured, NotAuthenticated, NotConfigured
from tow_core.exports import ExportFiles
from tow_core.identity import Session, SignInLog
from tow_core.knowledge import Workspace
from tow_core.passwords import PasswordHasher
from tow_core.unit_of_work import SessionCredential, Stores, Transactions
from tow_core.uploads import RasterImageInspector, UploadStore
from tow_http.ai_services import AiServices
from tow_http.config import Settings
from tow_http.session_cookie import SessionCookieSigner

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


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
    def transactions(self) -> Transactions:
        """How use cases open their unit of work (tow_core.unit_of_work)."""
        return Transactions(self.transaction, self.clock)

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


Caller = SessionCredential  # the verified cookie, nothing loaded yet (tow_core.unit_of_work)


def session_token(request: Request, services: Services | SessionCookies) -> tuple[str, bool] | None:
    """The verified token from the session cookie and whether it was signed with APP_SECRET_PREVIOUS."""
    signer = services.signer if isinstance(services, SessionCookies) else services.cookie_signer
    raw = request.cookies.get(services.settings.security.session_cookie_name)
    verified = signer.verify(raw) if raw else None
    return (verified.token, verified.signed_with_previous) if verified else None


def caller_of(request: Request, services: NamedDependency[Services]) -> Caller:
    """The caller named by the session cookie, or 401 (checked without touching the database)."""
    token = session_token(request, services)
    if token is None:
        raise NotAuthenticated("sign in first")
    token_value, signed_with_previous = token
    if signed_with_previous:  # planned APP_SECRET rotation: re-issue under the new secret
        request.state.reissue_session_cookie = token_value
    return Caller(services.cookie_signer.token_hash(token_value))


def signed_in_on(stores: Stores, caller: Caller, now: datetime) -> SignedIn:
    """The caller's session and principal, loaded fresh through ``stores`` (revocation is immediate), or 401."""
    session, principal = resolve_session(stores.directory, token_hash=caller.token_hash, now=now)
    return SignedIn(**_stores_of(stores), now=now, principal=principal, session=session)


@contextmanager
def signed_in_transaction(request: Request, services: Services) -> Iterator[SignedIn]:
    """A unit of work with the caller's principal, for handlers that stream a body and so must not hold a
    connection meanwhile: they open short ones themselves, in a worker thread. The cookie is checked
    before the connection is taken."""
    caller = caller_of(request, services)
    with services.transaction() as stores:
        yield signed_in_on(stores, caller, services.clock())


_UNIT_OF_WORK_PARAMETERS = ("signed_in", "db")


def in_unit_of_work(handler: Callable[..., T]) -> Callable[..., T]:
    """Runs a synchronous handler inside the request's unit of work, entered, used and left on the one
    worker thread that runs the handler (``sync_to_thread=True``): a pooled connection is never shared
    between threads, and it is held only while the handler runs (issue 11: a transaction entered on one
    thread and left on another, while a handler still used it, crashed the process).

    The handler asks for ``db: Db`` (a transaction) or ``signed_in: SignedIn`` (a transaction plus the
    caller's principal). The wrapper asks Litestar for ``caller`` instead (the verified cookie: a request
    without one is refused before any connection is taken) and ``services``.
    """
    signature = inspect.signature(handler)
    wanted = [name for name in _UNIT_OF_WORK_PARAMETERS if name in signature.parameters]
    if not wanted:
        raise TypeError(f"{handler.__name__} takes neither signed_in nor db")
    has_services = "services" in signature.parameters
    parameters = [p for p in signature.parameters.values() if p.name not in _UNIT_OF_WORK_PARAMETERS]
    annotations = {k: v for k, v in handler.__annotations__.items() if k not in _UNIT_OF_WORK_PARAMETERS}
    added = {"caller": NamedDependency[Caller]} if "signed_in" in wanted else {}
    if not has_services:
        added["services"] = NamedDependency[Services]
    for name, annotation in added.items():
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation))
        annotations[name] = annotation

    @functools.wraps(handler)
    def run(**kwargs: Any) -> T:
        services: Services = kwargs["services"] if has_services else kwargs.pop("services")
        caller: Caller | None = kwargs.pop("caller", None)
        with services.transaction() as stores:
            now = services.clock()
            if "db" in wanted:
                kwargs["db"] = Db(**_stores_of(stores), now=now)
            if caller is not None:
                kwargs["signed_in"] = signed_in_on(stores, caller, now)
            return handler(**kwargs)

    run.__signature__ = signature.replace(parameters=_ordered(parameters))  # type: ignore[attr-defined]
    run.__annotations__ = annotations
    return run


def _ordered(parameters: list[inspect.Parameter]) -> list[inspect.Parameter]:
    """Positional parameters first, then keyword-only ones (what ``inspect.Signature`` requires)."""
    return sorted(parameters, key=lambda p: p.kind == inspect.Parameter.KEYWORD_ONLY)


@dataclass(frozen=True)
class SessionCookies:
    """The session cookie at the edge: read and verified from a request, issued after sign-in, expired on
    sign-out. Handlers that set or clear it ask for ``session_cookies: NamedDependency[SessionCookies]``."""

    settings: Settings
    signer: SessionCookieSigner

    def issue(self, token: str) -> Cookie:
        return self._cookie(self.signer.sign(token), self.settings.security.session_max_age_seconds)

    def expired(self) -> Cookie:
        return self._cookie("", 0)

    def credential(self, request: Request) -> SessionCredential | None:
        """The credential the request's cookie carries, if its signature verifies (no database)."""
        token = session_token(request, self)
        return SessionCredential(self.signer.token_hash(token[0])) if token else None

    def token(self, request: Request) -> str | None:
        """The verified raw session token (sign-in pages hand it to use cases that replace it)."""
        token = session_token(request, self)
        return token[0] if token else None

    def _cookie(self, value: str, max_age: int) -> Cookie:
        security = self.settings.security
        return Cookie(key=security.session_cookie_name, value=value, max_age=max_age, path="/", httponly=True,
                      secure=security.session_cookie_secure, samesite="lax")


def session_cookies(services: Services) -> SessionCookies:
    return SessionCookies(services.settings, services.cookie_signer)


def session_cookie(services: Services, token: str) -> Cookie:
    return session_cookies(services).issue(token)


def expired_session_cookie(services: NamedDependency[Services]) -> Cookie:
    return session_cookies(services).expired()


def client_ip(request: Request) -> str:
    """The peer address; behind trusted proxies uvicorn has already replaced it with X-Forwarded-For."""
    return request.client.host if request.client else "unknown"


def workspace(signed_in: SignedIn, org_id: int) -> Workspace:
    return Workspace.for_member(signed_in.records, signed_in.directory, signed_in.principal, org_id,
                                history=signed_in.history)


def ai_of(services: Services) -> AiServices:
    if services.ai is None:  # an app composed without AI at all (some unit tests)
        raise AiNotConfigured(AI_NOT_CONFIGURED_MESSAGE)
    return services.ai


def upload_services(services: Services) -> tuple[UploadStore, RasterImageInspector]:
    if services.upload_store is None or services.images is None:
        raise NotConfigured("uploads are not configured")
    return services.upload_store, services.images


def upload_desk(signed_in: SignedIn, services: Services) -> UploadDesk:
    return UploadDesk(signed_in.principal, signed_in.uploads, upload_services(services)[0], signed_in.records,
                      signed_in.directory, signed_in.now)
