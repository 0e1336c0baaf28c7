"""The edge's plumbing: what the composition root hands to ``bootstrap`` and ``create_app`` (``Services``),
the session cookie (``SessionCookies``) and the caller it names — verified with no database, so a request
without a validly signed cookie is refused before any connection is taken. Units of work are the use
cases' business (``tow_core.unit_of_work``); nothing here opens one.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from litestar import Request
from litestar.datastructures import Cookie
from litestar.di import NamedDependency

from tow_core.access_tokens import TOKEN_PREFIX
from tow_core.ai import EmbeddingModel
from tow_core.errors import InvalidToken, NotAuthenticated
from tow_core.exports import ExportFiles
from tow_core.identity import SignInLog
from tow_core.live import LiveHub
from tow_core.oidc import IdentityProvider
from tow_core.passwords import PasswordHasher
from tow_core.unit_of_work import Credential, SessionCredential, Stores, TokenCredential, Transactions
from tow_core.uploads import RasterImageInspector, UploadStore
from tow_http.ai_services import AiServices
from tow_http.config import Settings
from tow_http.session_cookie import SessionCookieSigner


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Services:
    """The ports and settings the composition root built (tests give fakes): ``bootstrap.use_cases`` wires the
    use case objects from them. No handler receives this."""

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
    identity_provider: IdentityProvider | None = None  # the OIDC provider when auth.mode is oidc
    # (key, value with secrets masked, source) for the server settings page; see config.effective_config_entries
    configuration: tuple[tuple[str, str, str], ...] = ()
    live: LiveHub | None = None  # this process's live-update subscribers; None only in tests that open no stream

    @property
    def transactions(self) -> Transactions:
        """How use cases open their unit of work (tow_core.unit_of_work)."""
        return Transactions(self.transaction, self.clock)

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(seconds=self.settings.security.session_max_age_seconds)


def session_token(request: Request, cookies: SessionCookies) -> tuple[str, bool] | None:
    """The verified token from the session cookie and whether it was signed with APP_SECRET_PREVIOUS."""
    raw = request.cookies.get(cookies.settings.security.session_cookie_name)
    verified = cookies.signer.verify(raw) if raw else None
    return (verified.token, verified.signed_with_previous) if verified else None


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_PREFIX = "/api/"


def bearer_secret(headers: Mapping[str, str], path: str) -> str | None:
    """The secret of an ``Authorization: Bearer`` header on the JSON API (None elsewhere: pages never take
    tokens); InvalidToken for a bearer header that is not a TOW personal access token."""
    value = headers.get("authorization")
    if value is None or not path.startswith(API_PREFIX):
        return None
    scheme, _, secret = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    secret = secret.strip()
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        raise InvalidToken("the access token is malformed: TOW tokens start with tow_pat_")
    return secret


def secret_hash(secret: str) -> str:
    """SHA-256 of a token's secret: the secret is 32 random bytes, so a fast unsalted hash is enough (nothing
    to guess, unlike a password) and makes the lookup one indexed equality (tow_core.access_tokens)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class PersonalAccessTokenSecrets:
    """``TokenSecrets``: ``tow_pat_`` + 32 random bytes, urlsafe base64."""

    def new_secret(self) -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    def secret_hash(self, secret: str) -> str:
        return secret_hash(secret)


def caller_of(request: Request, session_cookies: NamedDependency[SessionCookies]) -> Credential:
    """The caller named by a bearer token on the JSON API, else by the session cookie, or 401 (checked without
    touching the database). A bearer request's cookies were dropped by ``BrowserSecurityMiddleware``."""
    secret = bearer_secret(request.headers, request.url.path)
    if secret is not None:
        return TokenCredential(secret_hash(secret), writes=request.method not in SAFE_METHODS)
    token = session_token(request, session_cookies)
    if token is None:
        raise NotAuthenticated("sign in first")
    token_value, signed_with_previous = token
    if signed_with_previous:  # planned APP_SECRET rotation: re-issue under the new secret
        request.state.reissue_session_cookie = token_value
    return SessionCredential(session_cookies.signer.token_hash(token_value))


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


def client_ip(request: Request) -> str:
    """The peer address; behind trusted proxies uvicorn has already replaced it with X-Forwarded-For."""
    return request.client.host if request.client else "unknown"
