"""Sign-up, sign-in, sessions and the current user (SPEC §1, §3)."""

from __future__ import annotations

import msgspec
from litestar import Request, Response, Router, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from tow_core import accounts
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
from tow_http.shapes import Email, Id, MeOut, Name, Password, Strict, me_out


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


class SetupOut(msgspec.Struct):
    needs_first_account: bool
    auth_mode: str


def _signed_in_response(
    services: NamedDependency[Services], db: NamedDependency[Db], user: User, body: object, status: int
) -> Response:
    token = services.cookie_signer.new_token()  # a new id at every sign-in (session fixation)
    accounts.start_session(
        db.directory,
        user=user,
        token_hash=services.cookie_signer.token_hash(token),
        now=db.now,
        lifetime=services.session_lifetime,
    )
    return Response(body, status_code=status, cookies=[session_cookie(services, token)])


@get("/setup", summary="Is this a fresh server?", sync_to_thread=True)
@in_unit_of_work
def setup(db: NamedDependency[Db], services: NamedDependency[Services]) -> SetupOut:
    """`needs_first_account` is true until the first account exists (then registration needs an invite)."""
    return SetupOut(accounts.needs_first_account(db.directory), services.settings.auth.mode)


@post(
    "/register-first",
    summary="Create the first account",
    description="Only on a fresh server: the account becomes **server admin** and **owner** of the "
    "organisation it names. Afterwards 403: join with an invite. Signs in (sets the session cookie).",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
)
@in_unit_of_work
def register_first(
    data: JSONBody[FirstAccountIn], db: NamedDependency[Db], services: NamedDependency[Services]
) -> Response:
    user, _ = accounts.register_first_account(
        db.directory,
        services.password_hasher,
        email=data.email,
        display_name=data.display_name,
        password=data.password,
        organisation_name=data.organisation_name,
    )
    return _signed_in_response(services, db, user, me_out(db.directory, user.id, None), HTTP_201_CREATED)


@post(
    "/register",
    summary="Register with an invite",
    description="Creates an account and joins the invite's organisation with its role. Refused with distinct "
    "errors when the invite is unknown (404), expired, revoked or used (409), or bound to another email (403).",
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
)
@in_unit_of_work
def register(data: JSONBody[RegisterIn], db: NamedDependency[Db], services: NamedDependency[Services]) -> Response:
    user, invite = accounts.register_with_invite(
        db.directory,
        services.password_hasher,
        token_hash=services.cookie_signer.token_hash(data.invite_token),
        email=data.email,
        display_name=data.display_name,
        password=data.password,
        now=db.now,
    )
    return _signed_in_response(
        services, db, user, me_out(db.directory, user.id, invite.organisation_id), HTTP_201_CREATED
    )


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
@in_unit_of_work
def login(
    data: JSONBody[LoginIn], request: Request, db: NamedDependency[Db], services: NamedDependency[Services]
) -> Response:
    user = accounts.authenticate(
        db.directory,
        services.sign_in_log,
        services.password_hasher,
        email=data.email,
        password=data.password,
        client_ip=client_ip(request),
        now=db.now,
    )
    return _signed_in_response(services, db, user, me_out(db.directory, user.id, None), HTTP_200_OK)


@post("/logout", summary="Sign out this browser", status_code=HTTP_204_NO_CONTENT, sync_to_thread=True)
@in_unit_of_work
def logout(request: Request, db: NamedDependency[Db], services: NamedDependency[Services]) -> Response[None]:
    """Revokes this session server-side (the cookie stops working even if kept) and clears the cookie."""
    token = session_token(request, services)
    if token is not None:
        accounts.sign_out(db.directory, token_hash=services.cookie_signer.token_hash(token[0]), now=db.now)
    return Response(None, status_code=HTTP_204_NO_CONTENT, cookies=[expired_session_cookie(services)])


@post(
    "/logout-everywhere",
    summary="Sign out everywhere",
    description="Revokes every session of the signed-in user, on every device, at once.",
    status_code=HTTP_204_NO_CONTENT,
    sync_to_thread=True,
)
@in_unit_of_work
def logout_everywhere(signed_in: NamedDependency[SignedIn], services: NamedDependency[Services]) -> Response[None]:
    accounts.sign_out_everywhere(signed_in.directory, signed_in.principal, now=signed_in.now)
    return Response(None, status_code=HTTP_204_NO_CONTENT, cookies=[expired_session_cookie(services)])


@get("/me", summary="The signed-in user and their organisations", sync_to_thread=True)
@in_unit_of_work
def me(signed_in: NamedDependency[SignedIn]) -> MeOut:
    return me_out(signed_in.directory, signed_in.principal.user_id, signed_in.session.active_organisation_id)


@put(
    "/me/active-organisation",
    summary="Switch the active organisation",
    description="The session's active organisation; 404 for organisations you are not a member of.",
    sync_to_thread=True,
)
@in_unit_of_work
def switch_organisation(data: JSONBody[ActiveOrganisationIn], signed_in: NamedDependency[SignedIn]) -> MeOut:
    accounts.switch_organisation(
        signed_in.directory, signed_in.principal, token_hash=signed_in.session.token_hash, org_id=data.organisation_id
    )
    return me_out(signed_in.directory, signed_in.principal.user_id, data.organisation_id)


auth_router = Router(
    path="/api/auth", route_handlers=[setup, register_first, register, login, logout, logout_everywhere], tags=["auth"]
)
me_router = Router(path="/api", route_handlers=[me, switch_organisation], tags=["me"])
