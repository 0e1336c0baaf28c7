"""Your personal access tokens in the browser (issue 15), under your profile: create one (its secret is shown
on the answer page, once), see them with their last use, revoke one. The same use cases as ``/api/me/tokens``.
Pages themselves never accept a token: they are signed in with the session cookie only."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from tow_core.access_tokens import NewToken, TokenAccess
from tow_core.errors import InvalidInput
from tow_core.unit_of_work import Credential, SessionCredential
from tow_core.use_cases.tokens import TokenUseCases
from tow_http.pages.web import Form, Shell, page, redirect

TOKENS = "/o/{org_id:int}/profile/tokens"


def _show(request: Request, tokens: TokenUseCases, caller: SessionCredential, org_id: int, **extra) -> Response:
    framed = tokens.page(caller, org_id, None)
    return page(request, "tokens.html", shell=Shell(framed.frame, "profile"), tokens=framed.content.tokens,
                max_days=framed.content.max_days, default_days=framed.content.default_days, **extra)


@get(TOKENS, sync_to_thread=True, include_in_schema=False)
def tokens_page(request: Request, org_id: int, caller: NamedDependency[Credential],
                tokens: NamedDependency[TokenUseCases]) -> Response:
    return _show(request, tokens, caller, org_id)


@post(TOKENS, sync_to_thread=True, include_in_schema=False)
def create_token(request: Request, org_id: int, form: NamedDependency[Form],
                 caller: NamedDependency[Credential], tokens: NamedDependency[TokenUseCases]) -> Response:
    access = form.get("access", TokenAccess.READ.value)
    if access not in {a.value for a in TokenAccess}:
        raise InvalidInput("access must be read or read_write", field="access")
    limited = form.integer("organisation_id", "organisation", minimum=1)
    new = NewToken(form.required("name", "a name"), form.integer("expires_in_days", "expiry in days"),
                   TokenAccess(access), limited)
    created = tokens.create(caller, new)
    return _show(request, tokens, caller, org_id, created=created)


@post(TOKENS + "/{token_id:int}/revoke", sync_to_thread=True, include_in_schema=False)
def revoke_token(request: Request, org_id: int, token_id: int, form: NamedDependency[Form],
                 caller: NamedDependency[Credential], tokens: NamedDependency[TokenUseCases]) -> Response:
    tokens.revoke(caller, token_id)
    return redirect(request, f"/o/{org_id}/profile/tokens")


TOKEN_PAGES = [tokens_page, create_token, revoke_token]
