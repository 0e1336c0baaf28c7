"""Personal access tokens in the browser (issue 15): the "API tokens" section of your profile page lists yours
with their last use and creates one (its secret is shown on the answer page, once) or revokes one; owners and
admins see and revoke the tokens of their organisation's members on a settings page. The same use cases as
``/api/me/tokens`` and ``/api/organisations/{org}/tokens``. Pages themselves never accept a token: they are
signed in with the session cookie only (``tow_http.context.caller_of``)."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from tow_core.access_tokens import NewToken, TokenAccess
from tow_core.errors import InvalidInput
from tow_core.unit_of_work import Credential
from tow_core.use_cases.tokens import TokenUseCases
from tow_http.pages.web import Form, Shell, page, redirect

MINE = "/o/{org_id:int}/profile/tokens"
MEMBERS = "/o/{org_id:int}/settings/tokens"


@post(MINE, sync_to_thread=True, include_in_schema=False)
def create_token(request: Request, org_id: int, form: NamedDependency[Form],
                 caller: NamedDependency[Credential], tokens: NamedDependency[TokenUseCases]) -> Response:
    access = form.get("access", TokenAccess.READ.value)
    if access not in {a.value for a in TokenAccess}:
        raise InvalidInput("access must be read or read_write", field="access")
    new = NewToken(form.required("name", "a name"), form.integer("expires_in_days", "expiry in days"),
                   TokenAccess(access), form.integer("organisation_id", "organisation", minimum=1))
    framed = tokens.create_on_page(caller, org_id, form.get("project") or None, new)
    return page(request, "token_created.html", shell=Shell(framed.frame, "profile"), created=framed.content)


@post(MINE + "/{token_id:int}/revoke", sync_to_thread=True, include_in_schema=False)
def revoke_token(request: Request, org_id: int, token_id: int, form: NamedDependency[Form],
                 caller: NamedDependency[Credential], tokens: NamedDependency[TokenUseCases]) -> Response:
    tokens.revoke(caller, token_id)
    return redirect(request, f"/o/{org_id}/profile#tokens")


@get(MEMBERS, sync_to_thread=True, include_in_schema=False)
def member_tokens(request: Request, org_id: int, caller: NamedDependency[Credential],
                  tokens: NamedDependency[TokenUseCases], project: str | None = None) -> Response:
    framed = tokens.organisation_page(caller, org_id, project)
    return page(request, "member_tokens.html", shell=Shell(framed.frame, "settings"), tokens=framed.content)


@post(MEMBERS + "/{token_id:int}/revoke", sync_to_thread=True, include_in_schema=False)
def revoke_member_token(request: Request, org_id: int, token_id: int, form: NamedDependency[Form],
                        caller: NamedDependency[Credential], tokens: NamedDependency[TokenUseCases]) -> Response:
    tokens.revoke_member_token(caller, org_id, token_id)
    return redirect(request, f"/o/{org_id}/settings/tokens")


TOKEN_PAGES = [create_token, revoke_token, member_tokens, revoke_member_token]
