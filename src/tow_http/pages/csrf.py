"""Per-form CSRF tokens bound to the browser's session (OWASP CSRF Prevention Cheat Sheet, "Synchronizer
Token Pattern"), on top of the Origin check every state-changing request already passes
(``tow_http.security``).

Signed in, the token is a MAC of the session token's hash: it changes at every sign-in and is useless
with any other session. Before sign-in (setup, sign-in and invite forms) it is bound to a random
``tow_form`` cookie instead, so a forged sign-in form (login CSRF) fails too.
"""

from __future__ import annotations

import hmac

from litestar import Request
from litestar.datastructures import Cookie

from tow_http.context import SessionCookies, session_token

FORM_COOKIE = "tow_form"
FIELD = "csrf_token"


def _mac(cookies: SessionCookies, purpose: str, seed: str) -> str:
    return cookies.signer.sign_value(purpose, seed).rpartition(".")[2]


def _seed(request: Request, cookies: SessionCookies) -> tuple[str, str] | None:
    token = session_token(request, cookies)
    if token is not None:
        return "csrf-session", cookies.signer.token_hash(token[0])
    anonymous = request.cookies.get(FORM_COOKIE, "")
    return ("csrf-anonymous", anonymous) if anonymous.isascii() and 20 <= len(anonymous) <= 100 else None


def form_token(request: Request, cookies: SessionCookies) -> tuple[str, Cookie | None]:
    """The token for this browser's forms and, when it has no seed yet, the cookie that creates one."""
    seed = _seed(request, cookies)
    if seed is not None:
        return _mac(cookies, *seed), None
    fresh = cookies.signer.new_token()
    cookie = Cookie(key=FORM_COOKIE, value=fresh, path="/", httponly=True, samesite="strict",
                    secure=cookies.settings.security.session_cookie_secure)
    return _mac(cookies, "csrf-anonymous", fresh), cookie


def token_is_valid(request: Request, cookies: SessionCookies, submitted: str) -> bool:
    seed = _seed(request, cookies)
    return seed is not None and bool(submitted) and hmac.compare_digest(
        _mac(cookies, *seed).encode(), submitted.encode("utf-8", "replace")
    )
