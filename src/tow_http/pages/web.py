"""What every page handler shares: templates, the shell around each page, forms with their CSRF check,
redirects that also work for HTMX, the Content-Security-Policy and errors shown as messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, PermissionDeniedException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.template import TemplateConfig
from markupsafe import Markup

from tow_core import errors as core
from tow_core.access import Visibility
from tow_core.use_cases.frame import Frame
from tow_http.context import SessionCookies, session_token
from tow_http.errors import status_for
from tow_http.input_guard import BIGINT_MAX, BIGINT_MIN
from tow_http.pages.csrf import FIELD, form_token, token_is_valid
from tow_http.pages.labels import field_label, value_label
from tow_http.pages.markdown import render_markdown

log = logging.getLogger("tow.pages")

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STATIC = Path(__file__).resolve().parent.parent / "static"

# No inline scripts or styles anywhere; HTMX and the stylesheet come from /static (SPEC §10).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
COOKIES_STATE_KEY = "tow_session_cookies"  # create_app puts the SessionCookies here (CSRF, error pages)
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"}


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["markdown"] = lambda text: Markup(render_markdown(text))  # noqa: S704 - escaped by markdown-it
    env.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M UTC") if value else ""
    env.filters["filesize"] = _file_size
    env.filters["label"] = lambda value: str(value).replace("_", " ")
    env.filters["field_label"] = field_label
    env.filters["value_label"] = value_label
    return env


def _file_size(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if size < 1024:
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def template_config() -> TemplateConfig:
    return TemplateConfig(engine=JinjaTemplateEngine.from_environment(_environment()))


# --- the shell: who, which organisation, which project -------------------------------------------


@dataclass(frozen=True)
class Shell:
    """The frame around every signed-in page (``tow_core.use_cases.frame``) and the section it shows:
    organisation switcher, project picker, user menu."""

    frame: Frame
    section: str = ""

    def __getattr__(self, name: str) -> Any:  # user, org, role, projects, project, groups, avatar_id ...
        return getattr(self.frame, name)

    @property
    def project_logo_id(self) -> int | None:
        return self.frame.project_logos.get(self.project.id) if self.project else None

    @property
    def manages_org(self) -> bool:
        return self.frame.role.manages_org

    @property
    def open_project_warning(self) -> bool:
        return self.project is not None and self.project.visibility is Visibility.OPEN

    def link(self, path: str = "", **params: object) -> str:
        """A URL in this organisation that keeps the picked project (``?project=KEY``) across navigation."""
        return Shell.linker(self.org.id, self.project.key if self.project else None)(path, **params)

    @staticmethod
    def linker(org_id: int, project_key: str | None) -> Callable[..., str]:
        """``link`` for fragments rendered without a frame (the project key was checked by their use case)."""
        def link(path: str = "", **params: object) -> str:
            query = {"project": project_key} if project_key else {}
            query.update({k: v for k, v in params.items() if v not in (None, "")})
            base = f"/o/{org_id}{path}"
            return f"{base}?{urlencode(query, doseq=True)}" if query else base
        return link


# --- rendering ----------------------------------------------------------------------------------


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Template:
    """A page from ``template`` with this browser's CSRF token for its forms."""
    token, cookie = form_token(request, session_cookies_of(request))
    return Template(template_name=template, context={"csrf_token": token, "csrf_field": FIELD, **context},
                    status_code=status_code, headers=PAGE_HEADERS, cookies=[cookie] if cookie else [])


def session_cookies_of(request: Request) -> SessionCookies:
    return request.app.state[COOKIES_STATE_KEY]


def redirect(request: Request, url: str) -> Response:
    """After a successful form: 303 for plain forms; for HTMX a 200 with HX-Redirect (it follows it)."""
    if request.headers.get("hx-request"):
        # Without the #fragment: assigning the current URL plus a fragment would only scroll, not reload.
        return Response(None, status_code=200, headers={"HX-Redirect": url.partition("#")[0], **PAGE_HEADERS})
    return Redirect(url, status_code=303, headers=PAGE_HEADERS)


def with_cookies(response: Response, cookies: list[Cookie]) -> Response:
    response.cookies.extend(cookies)
    return response


# --- forms ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Form:
    """A submitted form whose CSRF token was checked; values are stripped strings."""

    values: Mapping[str, list[str]] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        found = self.values.get(name)
        return found[0] if found else default

    def all(self, name: str) -> list[str]:
        return list(self.values.get(name, ()))

    def required(self, name: str, label: str | None = None) -> str:
        value = self.get(name).strip()
        if not value:
            raise core.InvalidInput(f"{label or name.replace('_', ' ')} is required", field=name)
        return value

    def integer(self, name: str, label: str | None = None, *, minimum: int = BIGINT_MIN,
                maximum: int = BIGINT_MAX) -> int | None:
        """The field as a whole number from ``minimum`` to ``maximum`` (by default what a bigint column holds)."""
        value = self.get(name).strip()
        if not value:
            return None
        label = label or name.replace("_", " ")
        try:
            number = int(value)
        except ValueError as exc:
            raise core.InvalidInput(f"{label} must be a whole number", field=name) from exc
        if not minimum <= number <= maximum:
            raise core.InvalidInput(f"{label} must be from {minimum} to {maximum}", field=name)
        return number


async def provide_form(request: Request, session_cookies: NamedDependency[SessionCookies]) -> Form:
    """The posted form, refused (403) unless it carries this browser's CSRF token."""
    data = await request.form()
    values: dict[str, list[str]] = {}
    for key, value in data.multi_items():
        if isinstance(value, str):
            values.setdefault(key, []).append(value)
    submitted = values.get(FIELD, [""])[0]
    if not token_is_valid(request, session_cookies, submitted):
        raise PermissionDeniedException("this form expired or did not come from this site: reload the page and "
                                        "send it again")
    return Form(values)


# --- errors as messages ---------------------------------------------------------------------------


def _message_response(request: Request, status: int, message: str, headers: dict[str, str] | None = None
                      ) -> Response:
    headers = {**PAGE_HEADERS, **(headers or {})}
    if request.headers.get("hx-request"):
        # HTMX: show the message in the form that was sent (its id is HX-Trigger), keeping what was typed.
        trigger = request.headers.get("hx-trigger") or ""
        target = f"#{trigger}-error" if trigger.replace("-", "").replace("_", "").isalnum() else "#page-error"
        headers.update({"HX-Retarget": target, "HX-Reswap": "innerHTML"})
        return Template(template_name="_message.html", context={"message": message, "status": status},
                        status_code=status, headers=headers)
    signed_in = session_token(request, session_cookies_of(request)) is not None
    return Template(template_name="error.html",
                    context={"message": message, "status": status, "signed_in": signed_in},
                    status_code=status, headers=headers)


def handle_tow_error(request: Request, exc: core.TowError) -> Response:
    if isinstance(exc, core.NotAuthenticated) and request.method == "GET":  # a page: go and sign in first
        target = "/login?" + urlencode({"next": request.url.path})
        return redirect(request, target)
    headers = {"Retry-After": str(exc.retry_after_seconds)} if isinstance(exc, core.RetryableError) else {}
    message = exc.message
    if isinstance(exc, core.Throttled):
        message = f"{message} — try again in {exc.retry_after_seconds} seconds"
    return _message_response(request, status_for(exc), message, headers)


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    if exc.status_code >= 500:
        return handle_unexpected(request, exc)
    return _message_response(request, exc.status_code, exc.detail)


def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on page %s %s", request.method, request.url.path, exc_info=exc)
    return _message_response(request, 500, "something went wrong on the server; it logged the details")


PAGE_EXCEPTION_HANDLERS = {
    core.TowError: handle_tow_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
