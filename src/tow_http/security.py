"""Browser-facing protections applied to every request (SPEC §3, §10).

- Cross-site state changes are refused: a POST/PUT/PATCH/DELETE whose ``Sec-Fetch-Site`` is
  ``cross-site`` or whose ``Origin`` is neither this server's public origin, the origin the request
  was addressed to, nor a configured CORS origin gets 403 before any handler runs (OWASP CSRF
  Prevention Cheat Sheet, "Verifying Origin With Standard Headers"). Together with
  ``SameSite=Lax`` cookies this blocks cross-site request forgery without per-form tokens for the API.
- A JSON API request carrying ``Authorization: Bearer`` is authenticated by that token alone: its cookies are
  dropped before any handler runs, so it is never an ambient credential and the cross-site check (which
  exists because browsers attach cookies on their own) does not apply to it. Pages never take tokens.
- A session cookie verified with APP_SECRET_PREVIOUS is re-issued under APP_SECRET on the response.
- Every response carries ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and a
  strict ``Referrer-Policy``.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from tow_http.context import API_PREFIX, SessionCookies

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_bearer_api_request(scope: Scope) -> bool:
    authorization = _header(scope, b"authorization") or ""
    return scope.get("path", "").startswith(API_PREFIX) and authorization[:7].lower() == "bearer "


def without_cookies(scope: Scope) -> Scope:
    return {**scope, "headers": [(k, v) for k, v in scope.get("headers", ()) if k != b"cookie"]}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class BrowserSecurityMiddleware:
    def __init__(self, app: ASGIApp, session_cookies: SessionCookies) -> None:
        self.app = app
        self.session_cookies = session_cookies
        runtime = session_cookies.settings.runtime
        configured = (runtime.public_app_url, *runtime.cors_allowed_origins)
        self.allowed_origins = {origin_of(url) for url in configured}

    def cross_site_reason(self, scope: Scope) -> str | None:
        if scope.get("method") not in STATE_CHANGING:
            return None
        if (_header(scope, b"sec-fetch-site") or "").lower() == "cross-site":
            return "cross-site request refused"
        origin = _header(scope, b"origin")
        if origin is None:
            return None  # not sent by a browser form/fetch of another site (curl, scripts)
        host = _header(scope, b"host") or ""
        own_origin = f"{scope.get('scheme', 'http')}://{host}".lower()
        if origin.lower() in self.allowed_origins or origin.lower() == own_origin:
            return None
        return f"cross-site request from {origin} refused"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if is_bearer_api_request(scope):
            scope = without_cookies(scope)
        reason = None if is_bearer_api_request(scope) else self.cross_site_reason(scope)
        if reason:
            await self.refuse(send, reason)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(header for header in SECURITY_HEADERS if header[0] not in present)
                reissue = scope.get("state", {}).get("reissue_session_cookie")
                if reissue:
                    cookie = self.session_cookies.issue(reissue).to_header(header="")
                    headers.append((b"set-cookie", cookie.strip().encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    async def refuse(send: Send, reason: str) -> None:
        body = json.dumps({"error": {"code": "cross_site_request", "message": reason}}).encode()
        await send({
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        *SECURITY_HEADERS],
        })
        await send({"type": "http.response.body", "body": body})
