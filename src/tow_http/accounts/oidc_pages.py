"""Single sign-on in the browser (issue 15, ``tow_core.use_cases.single_sign_on``): ``/auth/oidc/start`` sends
the browser to the provider, ``/auth/oidc/callback`` (the redirect URI registered at the provider) signs it in.

The login in flight is kept in the ``tow_oidc`` cookie: state, nonce, PKCE verifier and where to go next,
signed with APP_SECRET for the "oidc-state" purpose (``SessionCookieSigner.sign_value``, so it never
verifies as a session cookie or a CSRF token), HttpOnly, SameSite=Lax (the provider's redirect back is a
top-level GET, which Lax lets through), Secure when ``security.session_cookie_secure``, sent only to
``/auth/oidc``, and good for 10 minutes. Any process with the same APP_SECRET can finish the login.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated

from litestar import Request, Response, get
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Redirect

from tow_core.oidc import PendingLogin
from tow_core.use_cases.single_sign_on import LOGIN_LIFETIME, SingleSignOnUseCases
from tow_http.context import SessionCookies
from tow_http.pages.web import PAGE_HEADERS, with_cookies

STATE_COOKIE = "tow_oidc"
STATE_PURPOSE = "oidc-state"
CALLBACK_PATH = "/auth/oidc/callback"


def _safe_next(target: str) -> str:
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ok else ""


def _state_cookie(session_cookies: SessionCookies, value: str, max_age: int) -> Cookie:
    return Cookie(key=STATE_COOKIE, value=value, max_age=max_age, path="/auth/oidc", httponly=True,
                  secure=session_cookies.settings.security.session_cookie_secure, samesite="lax")


def encode_pending(session_cookies: SessionCookies, pending: PendingLogin) -> str:
    payload = json.dumps({"s": pending.state, "n": pending.nonce, "v": pending.code_verifier,
                          "r": pending.return_to, "e": int(pending.expires_at.timestamp()), "i": pending.invite},
                         separators=(",", ":"))
    encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return session_cookies.signer.sign_value(STATE_PURPOSE, encoded)


def decode_pending(session_cookies: SessionCookies, raw: str | None) -> PendingLogin | None:
    """The login this browser started, if its cookie carries one signed by this server; else None."""
    encoded = session_cookies.signer.verify_value(STATE_PURPOSE, raw) if raw else None
    if encoded is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        return PendingLogin(state=str(data["s"]), nonce=str(data["n"]), code_verifier=str(data["v"]),
                            return_to=_safe_next(str(data["r"])),
                            expires_at=datetime.fromtimestamp(int(data["e"]), UTC), invite=str(data.get("i", "")))
    except (binascii.Error, ValueError, TypeError, KeyError, OverflowError):
        return None


@get("/auth/oidc/start", sync_to_thread=True, include_in_schema=False)
def oidc_start(single_sign_on: NamedDependency[SingleSignOnUseCases],
               session_cookies: NamedDependency[SessionCookies], next: str = "",  # noqa: A002
               invite: str = "") -> Response:
    """Off to the provider's sign-in page, with this browser's login in flight in its cookie (and the invite
    link's token it came from: the login ends on that link's page, where the invite is accepted)."""
    start = single_sign_on.begin(_safe_next(next), invite)
    cookie = _state_cookie(session_cookies, encode_pending(session_cookies, start.pending),
                           int(LOGIN_LIFETIME.total_seconds()))
    return Redirect(start.url, status_code=303, headers=PAGE_HEADERS, cookies=[cookie])


@get(CALLBACK_PATH, sync_to_thread=True, include_in_schema=False)
def oidc_callback(request: Request, single_sign_on: NamedDependency[SingleSignOnUseCases],
                  session_cookies: NamedDependency[SessionCookies], code: str = "",
                  answered_state: Annotated[str, QueryParameter(name="state")] = "", error: str = "",
                  error_description: str = "") -> Response:
    """The provider sends the browser back here: signed in, or a page saying why not (nothing created)."""
    pending = decode_pending(session_cookies, request.cookies.get(STATE_COOKIE))
    done = single_sign_on.finish(pending, state=answered_state, code=code, error=error,
                                 error_description=error_description)
    active = done.signed_in.account.active_organisation_id
    target = done.return_to or (f"/o/{active}/today" if active else "/welcome")
    response = Redirect(target, status_code=303, headers=PAGE_HEADERS)
    return with_cookies(response, [session_cookies.issue(done.signed_in.token),
                                   _state_cookie(session_cookies, "", 0)])


OIDC_PAGES = [oidc_start, oidc_callback]
