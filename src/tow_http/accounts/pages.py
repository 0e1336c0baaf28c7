"""First run, sign-in, sign-out and invites in the browser (SPEC §1, §3): the same use cases as /api/auth."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from tow_core.accounts import AccountOverview
from tow_core.errors import InvalidInput
from tow_core.unit_of_work import Credential
from tow_core.use_cases.accounts import AccountUseCases
from tow_core.use_cases.password_reset import PasswordResetUseCases
from tow_core.use_cases.single_sign_on import SingleSignOnUseCases
from tow_http.accounts.oidc_pages import OIDC_PAGES
from tow_http.accounts.profile_pages import PROFILE_PAGES
from tow_http.config import Settings
from tow_http.context import SessionCookies, client_ip
from tow_http.pages.web import Form, page, redirect, with_cookies


def _home_of(account: AccountOverview) -> str:
    active = account.active_organisation_id
    return f"/o/{active}/today" if active else "/welcome"


def safe_next(target: str) -> str | None:
    """Only paths on this server: ``//evil.example`` and ``https://…`` would be open redirects."""
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ok else None


@get("/", sync_to_thread=True, include_in_schema=False)
def home(request: Request, accounts: NamedDependency[AccountUseCases],
         session_cookies: NamedDependency[SessionCookies]) -> Response:
    home = accounts.home(session_cookies.credential(request))
    if home.needs_first_account:
        return redirect(request, "/setup")
    if home.account is None:
        return redirect(request, "/login")
    return redirect(request, _home_of(home.account))


@get("/welcome", sync_to_thread=True, include_in_schema=False)
def welcome(request: Request, caller: NamedDependency[Credential],
            accounts: NamedDependency[AccountUseCases]) -> Response:
    """Signed in but a member of no organisation (removed from all of them): say so."""
    return page(request, "welcome.html", user=accounts.current_user(caller))


@get("/setup", sync_to_thread=True, include_in_schema=False)
def setup_page(request: Request, accounts: NamedDependency[AccountUseCases],
               settings: NamedDependency[Settings]) -> Response:
    if settings.auth.mode == "oidc" or not accounts.needs_first_account():
        return redirect(request, "/login")  # with single sign-on the first login is the first account
    return page(request, "setup.html")


@post("/setup", sync_to_thread=True, include_in_schema=False)
def setup_submit(request: Request, form: NamedDependency[Form], accounts: NamedDependency[AccountUseCases],
                 session_cookies: NamedDependency[SessionCookies]) -> Response:
    signed_in = accounts.first_account(email=form.get("email"), display_name=form.get("display_name"),
                                       password=form.get("password"),
                                       organisation_name=form.get("organisation_name"))
    return with_cookies(redirect(request, f"/o/{signed_in.account.active_organisation_id}/today"),
                        [session_cookies.issue(signed_in.token)])


@get("/login", sync_to_thread=True, include_in_schema=False)
def login_page(request: Request, accounts: NamedDependency[AccountUseCases], settings: NamedDependency[Settings],
               next: str = "", local: str = "") -> Response:  # noqa: A002 - URL name
    """With ``auth.mode: oidc`` a single sign-on button; the password form only at ``/login?local=1`` (the
    break-glass server admin, e.g. one made with `tow users create-admin`)."""
    sso = settings.auth.mode == "oidc"
    first = accounts.needs_first_account()
    if first and not sso:
        return redirect(request, "/setup")
    return page(request, "login.html", next=safe_next(next) or "", sso=sso, first=first,
                show_password=not sso or local == "1")


@post("/login", sync_to_thread=True, include_in_schema=False)
def login_submit(request: Request, form: NamedDependency[Form], accounts: NamedDependency[AccountUseCases],
                 session_cookies: NamedDependency[SessionCookies]) -> Response:
    signed_in = accounts.sign_in(email=form.get("email"), password=form.get("password"),
                                 client_ip=client_ip(request))
    return with_cookies(redirect(request, safe_next(form.get("next")) or _home_of(signed_in.account)),
                        [session_cookies.issue(signed_in.token)])


@post("/logout", sync_to_thread=True, include_in_schema=False)
def logout(request: Request, form: NamedDependency[Form], single_sign_on: NamedDependency[SingleSignOnUseCases],
           session_cookies: NamedDependency[SessionCookies]) -> Response:
    """Signed out here always; a single sign-on session then goes on to the provider's logout (a page that
    navigates there), which sends the browser back to ``/login?signed_out=1``."""
    provider_logout = single_sign_on.sign_out(session_cookies.credential(request))
    if provider_logout is None:
        return with_cookies(redirect(request, "/login?signed_out=1"), [session_cookies.expired()])
    # not a redirect: a form's answer may not lead to another site (CSP form-action 'self')
    return with_cookies(page(request, "signed_out.html", provider_logout=provider_logout),
                        [session_cookies.expired()])


@post("/logout-everywhere", sync_to_thread=True, include_in_schema=False)
def logout_everywhere(request: Request, form: NamedDependency[Form], caller: NamedDependency[Credential],
                      accounts: NamedDependency[AccountUseCases],
                      session_cookies: NamedDependency[SessionCookies]) -> Response:
    accounts.sign_out_everywhere(caller)
    return with_cookies(redirect(request, "/login?signed_out=1"), [session_cookies.expired()])


@get("/join", sync_to_thread=True, include_in_schema=False)
def join_page(request: Request, accounts: NamedDependency[AccountUseCases],
              session_cookies: NamedDependency[SessionCookies], settings: NamedDependency[Settings],
              token: str = "") -> Response:
    """The link an invite is sent as: register with it (with single sign-on: sign in through the provider with
    it), or accept it when already signed in."""
    user = accounts.invited_user(session_cookies.credential(request))
    return page(request, "join.html", token=token, user=user, sso=settings.auth.mode == "oidc")


@get("/invite/{token:str}", sync_to_thread=True, include_in_schema=False)
def invite_link(request: Request, token: str, accounts: NamedDependency[AccountUseCases],
                session_cookies: NamedDependency[SessionCookies], settings: NamedDependency[Settings]) -> Response:
    """The invite URL the API hands out (``{public_app_url}/invite/{token}``); a link that can no longer be used
    says so at once, before anyone fills in the form."""
    problem = accounts.invite_problem(token)
    return page(request, "join.html", token=token, problem=problem, sso=settings.auth.mode == "oidc",
                user=None if problem else accounts.invited_user(session_cookies.credential(request)))


@post("/join", sync_to_thread=True, include_in_schema=False)
def join_submit(request: Request, form: NamedDependency[Form], accounts: NamedDependency[AccountUseCases],
                session_cookies: NamedDependency[SessionCookies]) -> Response:
    joined = accounts.join(session_cookies.credential(request), invite_token=form.required("token", "the invite code"),
                           email=form.get("email"), display_name=form.get("display_name"),
                           password=form.get("password"))
    response = redirect(request, f"/o/{joined.organisation_id}/today")
    if joined.signed_in is None:
        return response
    return with_cookies(response, [session_cookies.issue(joined.signed_in.token)])


@post("/switch-organisation", sync_to_thread=True, include_in_schema=False)
def switch_organisation(request: Request, form: NamedDependency[Form], caller: NamedDependency[Credential],
                        accounts: NamedDependency[AccountUseCases]) -> Response:
    """The header's one switcher (``choice``: an organisation id, or ``ID/KEY`` for one of its projects; it
    sends itself on change, or by its Go button without JavaScript). Within the same organisation the page
    it came from (``back``) comes back with ``?project=KEY``; another organisation opens on its Today page.
    ``organisation_id`` alone is the older form of the same."""
    org_id, project = _switch_choice(form)
    accounts.switch_organisation(caller, org_id)
    return redirect(request, switched_to(org_id, project, form.get("back")))


_PROJECT_KEY = re.compile(r"[A-Za-z0-9]{1,32}")
_ORG_PATH = re.compile(r"/o/(\d+)(/[A-Za-z0-9/_.-]*)?")


def _switch_choice(form: Form) -> tuple[int, str]:
    choice = form.get("choice").strip()
    if not choice:
        return form.integer("organisation_id", "organisation") or 0, ""
    org, _, project = choice.partition("/")
    if not org.isdigit() or (project and not _PROJECT_KEY.fullmatch(project)):
        raise InvalidInput("choose an organisation or project from the list", field="choice")
    return int(org), project.upper()


def switched_to(org_id: int, project: str, back: str) -> str:
    """Where the switcher goes: ``back`` (a page of the same organisation, never another site) with the
    project replaced and no paging cursor; else the organisation's Today."""
    parts = urlsplit(back)
    path = parts.path if not (parts.scheme or parts.netloc) else ""
    match = _ORG_PATH.fullmatch(path)
    if match is None or int(match.group(1)) != org_id or "//" in path:
        path, query = f"/o/{org_id}/today", []
    else:
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("project", "cursor")]
    query += [("project", project)] if project else []
    return path + (f"?{urlencode(query)}" if query else "")


@get("/forgot-password", sync_to_thread=False, include_in_schema=False)
def forgot_password_page(request: Request, settings: NamedDependency[Settings]) -> Response:
    """"Forgot your password?": a form with an email (with single sign-on: where passwords are reset)."""
    return page(request, "forgot_password.html", sso=settings.auth.mode == "oidc", answer=None)


@post("/forgot-password", sync_to_thread=True, include_in_schema=False)
def forgot_password_submit(request: Request, form: NamedDependency[Form],
                           password_reset: NamedDependency[PasswordResetUseCases]) -> Response:
    """The same answer whether or not the address has an account (``tow_core.password_reset``)."""
    answer = password_reset.request_reset(email=form.get("email"), client_ip=client_ip(request))
    return page(request, "forgot_password.html", sso=False, answer=answer)


@get("/reset-password/{token:str}", sync_to_thread=True, include_in_schema=False)
def reset_password_page(request: Request, token: str,
                        password_reset: NamedDependency[PasswordResetUseCases]) -> Response:
    """The emailed link: a new-password form, or why the link no longer works (used, expired, unknown)."""
    return page(request, "reset_password.html", token=token, problem=password_reset.reset_problem(token))


@post("/reset-password", sync_to_thread=True, include_in_schema=False)
def reset_password_submit(request: Request, form: NamedDependency[Form],
                          password_reset: NamedDependency[PasswordResetUseCases]) -> Response:
    """Sets the password, ends every session of the account; then the sign-in page says so."""
    password_reset.reset_password(token=form.required("token", "the reset link"), password=form.get("password"),
                                  client_ip=client_ip(request))
    return redirect(request, "/login?password_reset=1")


AUTH_PAGES = [home, welcome, setup_page, setup_submit, login_page, login_submit, logout, logout_everywhere,
              join_page, invite_link, join_submit, switch_organisation, forgot_password_page,
              forgot_password_submit, reset_password_page, reset_password_submit, *OIDC_PAGES,
              *PROFILE_PAGES]
