"""The MCP server's front door at ``/api/mcp`` (issue 15): streamable HTTP from the official ``mcp`` SDK, mounted
as an ASGI app in TOW's own Litestar app, its session manager started and stopped by the app's lifespan.

In order, for every HTTP request:

1. **An access token or nothing**: ``Authorization: Bearer tow_pat_...`` (a personal access token), or, with
   ``mcp.oidc_access_tokens`` on, an access token the single sign-on provider issued as a JWT (cookies never sign
   in here; ``BrowserSecurityMiddleware`` has already dropped them from a bearer request). Without one: 401 with
   ``WWW-Authenticate: Bearer``; a malformed one: 401 ``invalid_token``.
2. **Bounded concurrency**: at most ``mcp.max_concurrent_requests`` requests in flight at once and
   ``mcp.max_concurrent_per_token`` per token; beyond, 429 at once with ``Retry-After`` (queueing would only
   hold connections and memory for a client that can retry).
3. **The token is checked** before the SDK reads the body: a personal one against the database
   (``TokenUseCases.check``: unknown, expired, revoked or a deactivated user's), a provider's by its signature,
   issuer, audience and expiry and then its linked account (``SingleSignOnUseCases.provider_access``: unlinked
   or deactivated); any refusal is 401 ``invalid_token`` saying why. Each tool call then resolves the credential
   again through ``Transactions.acting_as`` (``tow_http.mcp.tools``).
4. **The SDK's transport**: request bodies over 256 KiB are 413 before they are parsed; the Host (and any
   Origin) header must be ``runtime.public_app_url``'s (DNS-rebinding protection that works behind a proxy,
   which forwards the public host): 421 / 403 otherwise.

**Stateless mode, JSON answers**: every POST carries the whole exchange (no ``Mcp-Session-Id``, no server-held
session), so nothing binds a client to one process or outlives a revoked token, a restart loses nothing, and no
SSE stream sits open per client. TOW's tools need no server-to-client requests (sampling, elicitation), which is
what sessions would add.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import msgspec
from anyio import to_thread
from litestar import Litestar
from litestar.handlers import asgi
from litestar.types import Receive, Scope, Send
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from tow_core.errors import InvalidToken, TowError
from tow_core.unit_of_work import ProviderTokenCredential, TokenCredential
from tow_core.use_cases.single_sign_on import SingleSignOnUseCases
from tow_core.use_cases.tokens import TokenUseCases
from tow_http.config import McpSettings
from tow_http.context import bearer_secret, secret_hash
from tow_http.errors import ErrorDetail, ErrorEnvelope, status_for
from tow_http.mcp.tools import REQUEST_CREDENTIAL

MCP_PATH = "/api/mcp"
MCP_STATE_KEY = "tow_mcp_door"  # app.state: the door, for operators' and tests' eyes
MAX_BODY_BYTES = 256 * 1024
RETRY_AFTER_SECONDS = 1
MAX_PROVIDER_TOKEN_CHARS = 16 * 1024  # a JWT access token with many claims is a few KiB


def transport_security(public_app_url: str) -> TransportSecuritySettings:
    """Only requests addressed to TOW's public address (Host), from no page or TOW's own (Origin)."""
    parts = urlsplit(public_app_url)
    host = parts.netloc.lower()
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=[host],
                                     allowed_origins=[f"{parts.scheme}://{host}"])


class McpDoor:
    """The ASGI app mounted at ``/api/mcp`` (see the module's rules). ``single_sign_on``: given when
    ``mcp.oidc_access_tokens`` is on, to check the provider's access tokens."""

    def __init__(self, server: MCPServer, tokens: TokenUseCases, limits: McpSettings, public_app_url: str,
                 single_sign_on: SingleSignOnUseCases | None = None) -> None:
        self.server = server
        self.tokens = tokens
        self.single_sign_on = single_sign_on
        self.limits = limits
        self.security = transport_security(public_app_url)
        self.running = False
        self.in_flight = 0
        self.per_token: Counter[str] = Counter()  # by the SHA-256 of the bearer token

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Litestar) -> AsyncIterator[None]:
        """A fresh SDK session manager for each run of the app (the SDK's can run only once)."""
        self.server.streamable_http_app(stateless_http=True, json_response=True, transport_security=self.security,
                                        max_request_body_size=MAX_BODY_BYTES)
        async with self.server.session_manager.run():
            self.running = True
            try:
                yield
            finally:
                self.running = False

    def _bearer(self, authorization: str | None) -> tuple[str, bool] | None:
        """The bearer token and whether it is a personal access token (else the provider's JWT); None without
        one; InvalidToken when it is neither."""
        try:
            secret = bearer_secret({"authorization": authorization} if authorization else {}, MCP_PATH)
        except InvalidToken:
            value = (authorization or "").strip().partition(" ")[2].strip()
            if self.single_sign_on is None:
                raise
            if value.count(".") != 2 or len(value) > MAX_PROVIDER_TOKEN_CHARS:
                raise InvalidToken("the access token is malformed: send a personal access token (tow_pat_...) or "
                                   "your single sign-on provider's access token (a JWT)") from None
            return value, False
        return None if secret is None else (secret, True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        try:
            bearer = self._bearer(authorization)
        except InvalidToken as exc:
            await _refuse(send, 401, exc.code, exc.message, {"www-authenticate": 'Bearer error="invalid_token"'})
            return
        if bearer is None:
            also = " or your single sign-on provider's access token" if self.single_sign_on else ""
            await _refuse(send, 401, "not_authenticated", "the MCP server needs a personal access token: "
                          f"Authorization: Bearer tow_pat_... (create one on your profile page){also}",
                          {"www-authenticate": 'Bearer realm="tow"'})
            return
        token, personal = bearer
        token_hash = secret_hash(token)
        if self.in_flight >= self.limits.max_concurrent_requests or \
                self.per_token[token_hash] >= self.limits.max_concurrent_per_token:
            await _refuse(send, 429, "throttled", "too many MCP requests at once: retry in a moment",
                          {"retry-after": str(RETRY_AFTER_SECONDS)})
            return
        self.in_flight += 1
        self.per_token[token_hash] += 1
        try:
            await self._serve(token, personal, scope, receive, send)
        finally:
            self.in_flight -= 1
            self.per_token[token_hash] -= 1
            if not self.per_token[token_hash]:
                del self.per_token[token_hash]

    def _checked(self, token: str, personal: bool) -> TokenCredential | ProviderTokenCredential:
        """The request's credential, checked (asking to read; a writing tool asks again as a writer)."""
        if personal:
            credential = TokenCredential(secret_hash(token), writes=False)
            self.tokens.check(credential)
            return credential
        assert self.single_sign_on is not None  # _bearer takes a JWT only then
        return self.single_sign_on.provider_access(token)

    async def _serve(self, token: str, personal: bool, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            credential = await to_thread.run_sync(self._checked, token, personal)
        except TowError as exc:
            headers = {"www-authenticate": 'Bearer error="invalid_token"'} if isinstance(exc, InvalidToken) else {}
            retry = getattr(exc, "retry_after_seconds", None)
            if retry is not None:
                headers["retry-after"] = str(retry)
            await _refuse(send, status_for(exc), exc.code, exc.message, headers)
            return
        if not self.running:
            await _refuse(send, 503, "dependency_unavailable", "the MCP server is starting or stopping",
                          {"retry-after": str(RETRY_AFTER_SECONDS)})
            return
        reset = REQUEST_CREDENTIAL.set(credential)
        try:
            await self.server.session_manager.handle_request(scope, receive, send)
        finally:
            REQUEST_CREDENTIAL.reset(reset)


async def _refuse(send: Send, status: int, code: str, message: str, headers: dict[str, str]) -> None:
    body = msgspec.json.encode(ErrorEnvelope(ErrorDetail(code, message)))
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           *((k.encode(), v.encode()) for k, v in headers.items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def mcp_mount(door: McpDoor):
    """``/api/mcp`` and below, outside the OpenAPI document (MCP describes its tools itself)."""

    async def mcp_server(scope: Scope, receive: Receive, send: Send) -> None:
        await door(scope, receive, send)

    return asgi(MCP_PATH, is_mount=True, copy_scope=True, include_in_schema=False)(mcp_server)
