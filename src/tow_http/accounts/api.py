"""Sign-up, sign-in, sessions and the current user (SPEC §1, §3)."""

from __future__ import annotations

import msgspec
from litestar import Request, Response, Router, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from tow_core.unit_of_work import Credential
from tow_core.use_cases.accounts import AccountUseCases, SignedInAs
from tow_http.config import Settings
from tow_http.context import SessionCookies, client_ip
from tow_http.shapes import Email, Id, MeOut, Name, Password, Strict, me_of


class FirstAccountIn(Strict):
    email: Email
    display_name: Name
    password: Password
    organisation_name: Name


class RegisterIn(Strict):
    invite_token: str
    email: Email
    display_name: Name
    password: Password


class LoginIn(Strict):
    email: str
    password: str


class ActiveOrganisationIn(Strict):
    organisation_id: Id


class ProfilePatch(Strict):
    display_name: Name | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType = msgspec.UNSET
    current_password: str = ""


class PasswordChangeIn(Strict):
    current_password: str
    new_password: Password


class PasswordChangedOut(msgspec.Struct):
    other_sessions_signed_out: int


class SetupOut(msgspec.Struct):
    needs_first_account: bool
    auth_mode: str


def _signed_in_response(session_cookies: SessionCookies, signed_in: SignedInAs, status: int) -> Response:
    return Response(me_of(signed_in.account), status_code=status, cookies=[session_cookies.issue(signed_in.token)])


@get("/setup", summary="Is this a fresh server?", sync_to_thread=True)
def setup(accounts: NamedDependency[AccountUseCases], settings: NamedDependency[Settings]) -> SetupOut:
    """`needs_first_account` is true until the first account exists (then registration needs an invite)."""
    return SetupOut(accounts.needs_first_account(), settings.auth.mode)


@post(
    "/register-first",
    summary="Create the first account",
    description="Only on a fresh server: the account becomes **server admin** and **owner** of the "
    "organisation it names. Afterwards 403: join with an invite. Signs in (sets the session cookie).",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
)
def register_first(data: JSONBody[FirstAccountIn], accounts: NamedDependency[AccountUseCases],
                   session_cookies: NamedDependency[SessionCookies]) -> Response:
    signed_in = accounts.first_account(email=data.email, display_name=data.display_name, password=data.password,
                                       organisation_name=data.organisation_name)
    return _signed_in_response(session_cookies, signed_in, HTTP_201_CREATED)


@post(
    "/register",
    summary="Register with an invite",
    description="Creates an account and joins the invite's organisation with its role. Refused with distinct "
    "errors when the invite is unknown (404), expired, revoked or used (409), or bound to another email (403).",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
)
def register(data: JSONBody[RegisterIn], accounts: NamedDependency[AccountUseCases],
             session_cookies: NamedDependency[SessionCookies]) -> Response:
    signed_in = accounts.register(invite_token=data.invite_token, email=data.email, display_name=data.display_name,
                                  password=data.password)
    return _signed_in_response(session_cookies, signed_in, HTTP_201_CREATED)


@post(
    "/login",
    summary="Sign in",
    description="Email + password. The error never says whether the email exists. Failures are throttled "
    "(429 with `Retry-After`, the seconds until a try is allowed again; refused before the password is checked) "
    "when, within the last 15 minutes, there were 5 failures for this email from this client address, or 20 from "
    "this address for any emails, or 100 for this email from all addresses together - the last limit does not "
    "apply from an address that signed in to this account successfully within the last 30 days, so other "
    "people's failures cannot lock you out of your usual address. Unknown emails are counted and throttled the "
    "same way. An IPv6 client counts by its /64. A successful sign-in forgets this address's failures for this "
    "account. A new session id is issued.",
    status_code=HTTP_200_OK,
    sync_to_thread=True,
)
def login(data: JSONBody[LoginIn], request: Request, accounts: NamedDependency[AccountUseCases],
          session_cookies: NamedDependency[SessionCookies]) -> Response:
    signed_in = accounts.sign_in(email=data.email, password=data.password, client_ip=client_ip(request))
    return _signed_in_response(session_cookies, signed_in, HTTP_200_OK)


@post("/logout", summary="Sign out this browser", status_code=HTTP_204_NO_CONTENT, sync_to_thread=True)
def logout(request: Request, accounts: NamedDependency[AccountUseCases],
           session_cookies: NamedDependency[SessionCookies]) -> Response[None]:
    """Revokes this session server-side (the cookie stops working even if kept) and clears the cookie."""
    accounts.sign_out(session_cookies.credential(request))
    return Response(None, status_code=HTTP_204_NO_CONTENT, cookies=[session_cookies.expired()])


@post(
    "/logout-everywhere",
    summary="Sign out everywhere",
    description="Revokes every session of the signed-in user, on every device, at once.",
    status_code=HTTP_204_NO_CONTENT,
    sync_to_thread=True,
)
def logout_everywhere(caller: NamedDependency[Credential], accounts: NamedDependency[AccountUseCases],
                      session_cookies: NamedDependency[SessionCookies]) -> Response[None]:
    accounts.sign_out_everywhere(caller)
    return Response(None, status_code=HTTP_204_NO_CONTENT, cookies=[session_cookies.expired()])


@get("/me", summary="The signed-in user and their organisations", sync_to_thread=True)
def me(caller: NamedDependency[Credential], accounts: NamedDependency[AccountUseCases]) -> MeOut:
    return me_of(accounts.me(caller))


@patch(
    "/me",
    summary="Change your name or email",
    description="Absent fields are left unchanged. A new `email` needs `current_password` (422 naming "
    "`current_password` when it is wrong; wrong passwords are throttled like sign-ins, 429) and must not belong to "
    "another account (409). With single sign-on (`auth.mode: oidc`) the email comes from the provider (403), as it "
    "does for an account without a password.",
    sync_to_thread=True,
)
def change_profile(data: JSONBody[ProfilePatch], request: Request, caller: NamedDependency[Credential],
                   accounts: NamedDependency[AccountUseCases]) -> MeOut:
    return me_of(accounts.change_profile(
        caller, display_name=None if data.display_name is msgspec.UNSET else data.display_name,
        email=None if data.email is msgspec.UNSET else data.email, current_password=data.current_password,
        client_ip=client_ip(request)))


@put(
    "/me/password",
    summary="Change your password",
    description="Needs your `current_password` (422 naming it when wrong; throttled like sign-ins, 429). The new "
    "password must have at least 10 characters (no composition rules, NIST SP 800-63B). Every **other** session "
    "of your account is signed out at once; the one making the request stays signed in. An account without a "
    "password (single sign-on) has none to change (403).",
    sync_to_thread=True,
)
def change_password(data: JSONBody[PasswordChangeIn], request: Request, caller: NamedDependency[Credential],
                    accounts: NamedDependency[AccountUseCases]) -> PasswordChangedOut:
    return PasswordChangedOut(accounts.change_password(caller, current_password=data.current_password,
                                                       new_password=data.new_password, client_ip=client_ip(request)))


@put(
    "/me/active-organisation",
    summary="Switch the active organisation",
    description="The session's active organisation; 404 for organisations you are not a member of.",
    sync_to_thread=True,
)
def switch_organisation(data: JSONBody[ActiveOrganisationIn], caller: NamedDependency[Credential],
                        accounts: NamedDependency[AccountUseCases]) -> MeOut:
    return me_of(accounts.switch_organisation(caller, data.organisation_id))


auth_router = Router(
    path="/api/auth", route_handlers=[setup, register_first, register, login, logout, logout_everywhere], tags=["auth"]
)
me_router = Router(path="/api", route_handlers=[me, change_profile, change_password, switch_organisation], tags=["me"])
