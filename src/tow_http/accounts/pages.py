"""First run, sign-in, sign-out and invites in the browser (SPEC §1, §3): the same use cases as /api/auth."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from tow_core import accounts
from tow_core.access import Principal
from tow_core.errors import NotAuthenticated
from tow_core.identity import User
from tow_http.context import (
    Db,
    Services,
    SignedIn,
    client_ip,
    expired_session_cookie,
    in_unit_of_work,
    session_cookie,
    session_token,
)
from tow_http.pages.web import Form, page, redirect, with_cookies
from tow_http.shapes import me_out


def _start_session(services: Services, db: Db, user: User):
    token = services.cookie_signer.new_token()  # a new session id at every sign-in (session fixation)
    accounts.start_session(db.directory, user=user, token_hash=services.cookie_signer.token_hash(token),
                           now=db.now, lifetime=services.session_lifetime)
    return session_cookie(services, token)


def _home_of(db: Db, user_id: int, active: int | None = None) -> str:
    me = me_out(db.directory, user_id, active)
    return f"/o/{me.active_organisation_id}/memory" if me.active_organisation_id else "/welcome"


def safe_next(target: str) -> str | None:
    """Only paths on this server: ``//evil.example`` and ``https://…`` would be open redirects."""
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ok else None


@get("/", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def home(request: Request, db: NamedDependency[Db], services: NamedDependency[Services]) -> Response:
    if accounts.needs_first_account(db.directory):
        return redirect(request, "/setup")
    token = session_token(request, services)
    if token is None:
        return redirect(request, "/login")
    session, principal = accounts.resolve_session(
        db.directory, token_hash=services.cookie_signer.token_hash(token[0]), now=db.now)
    return redirect(request, _home_of(db, principal.user_id, session.active_organisation_id))


@get("/welcome", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def welcome(request: Request, signed_in: NamedDependency[SignedIn]) -> Response:
    """Signed in but a member of no organisation (removed from all of them): say so."""
    return page(request, "welcome.html", user=accounts.current_user(signed_in.directory, signed_in.principal))


@get("/setup", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def setup_page(request: Request, db: NamedDependency[Db]) -> Response:
    if not accounts.needs_first_account(db.directory):
        return redirect(request, "/login")
    return page(request, "setup.html")


@post("/setup", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def setup_submit(request: Request, form: NamedDependency[Form], db: NamedDependency[Db],
                 services: NamedDependency[Services]) -> Response:
    user, organisation = accounts.register_first_account(
        db.directory, services.password_hasher, email=form.get("email"), display_name=form.get("display_name"),
        password=form.get("password"), organisation_name=form.get("organisation_name"))
    cookie = _start_session(services, db, user)
    return with_cookies(redirect(request, f"/o/{organisation.id}/memory"), [cookie])


@get("/login", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def login_page(request: Request, db: NamedDependency[Db], next: str = "") -> Response:  # noqa: A002 - URL name
    if accounts.needs_first_account(db.directory):
        return redirect(request, "/setup")
    return page(request, "login.html", next=safe_next(next) or "")


@post("/login", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def login_submit(request: Request, form: NamedDependency[Form], db: NamedDependency[Db],
                 services: NamedDependency[Services]) -> Response:
    user = accounts.authenticate(
        db.directory, services.sign_in_log, services.password_hasher, email=form.get("email"),
        password=form.get("password"), client_ip=client_ip(request), now=db.now)
    cookie = _start_session(services, db, user)
    return with_cookies(redirect(request, safe_next(form.get("next")) or _home_of(db, user.id)), [cookie])


@post("/logout", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def logout(request: Request, form: NamedDependency[Form], db: NamedDependency[Db],
           services: NamedDependency[Services]) -> Response:
    token = session_token(request, services)
    if token is not None:
        accounts.sign_out(db.directory, token_hash=services.cookie_signer.token_hash(token[0]), now=db.now)
    return with_cookies(redirect(request, "/login?signed_out=1"), [expired_session_cookie(services)])


@post("/logout-everywhere", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def logout_everywhere(request: Request, form: NamedDependency[Form], signed_in: NamedDependency[SignedIn],
                      services: NamedDependency[Services]) -> Response:
    accounts.sign_out_everywhere(signed_in.directory, signed_in.principal, now=signed_in.now)
    return with_cookies(redirect(request, "/login?signed_out=1"), [expired_session_cookie(services)])


def _signed_in(request: Request, db: Db, services: Services) -> tuple[User, Principal] | None:
    token = session_token(request, services)
    if token is None:
        return None
    try:
        _, principal = accounts.resolve_session(
            db.directory, token_hash=services.cookie_signer.token_hash(token[0]), now=db.now)
    except NotAuthenticated:  # an expired or revoked session joins as a new account, like no session
        return None
    return accounts.current_user(db.directory, principal), principal


def _signed_in_user(request: Request, db: Db, services: Services) -> User | None:
    signed_in = _signed_in(request, db, services)
    return signed_in[0] if signed_in else None


@get("/join", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def join_page(request: Request, db: NamedDependency[Db], services: NamedDependency[Services],
              token: str = "") -> Response:
    """The link an invite is sent as: register with it, or accept it when already signed in."""
    user = _signed_in_user(request, db, services)
    return page(request, "join.html", token=token, user=user)


@get("/invite/{token:str}", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def invite_link(request: Request, token: str, db: NamedDependency[Db], services: NamedDependency[Services]
                ) -> Response:
    """The invite URL the API hands out (``{public_app_url}/invite/{token}``)."""
    return page(request, "join.html", token=token, user=_signed_in_user(request, db, services))


@post("/join", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def join_submit(request: Request, form: NamedDependency[Form], db: NamedDependency[Db],
                services: NamedDependency[Services]) -> Response:
    token_hash = services.cookie_signer.token_hash(form.required("token", "the invite code"))
    current = _signed_in(request, db, services)
    if current is not None:
        _, principal = current
        invite = accounts.accept_invite(db.directory, principal, token_hash=token_hash, now=db.now)
        return redirect(request, f"/o/{invite.organisation_id}/memory")
    user, invite = accounts.register_with_invite(
        db.directory, services.password_hasher, token_hash=token_hash, email=form.get("email"),
        display_name=form.get("display_name"), password=form.get("password"), now=db.now)
    cookie = _start_session(services, db, user)
    return with_cookies(redirect(request, f"/o/{invite.organisation_id}/memory"), [cookie])


@post("/switch-organisation", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def switch_organisation(request: Request, form: NamedDependency[Form], signed_in: NamedDependency[SignedIn]
                        ) -> Response:
    org_id = form.integer("organisation_id", "organisation") or 0
    accounts.switch_organisation(signed_in.directory, signed_in.principal,
                                 token_hash=signed_in.session.token_hash, org_id=org_id)
    return redirect(request, f"/o/{org_id}/memory")


AUTH_PAGES = [home, welcome, setup_page, setup_submit, login_page, login_submit, logout, logout_everywhere,
              join_page, invite_link, join_submit, switch_organisation]
