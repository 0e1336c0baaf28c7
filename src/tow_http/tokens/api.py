"""Personal access tokens over HTTP (issue 15; rules in ``tow_core.access_tokens``): yours under ``/api/me/tokens``,
your organisation's members' under ``/api/organisations/{org_id}/tokens`` (owners/admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Router, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from tow_core.access_tokens import AccessToken, MemberToken, NewToken, TokenAccess
from tow_core.unit_of_work import Credential
from tow_core.use_cases.tokens import CreatedToken, TokenUseCases
from tow_http.shapes import NOT_BLANK, Id, Strict

USE = ("Use it as `Authorization: Bearer tow_pat_...` on the JSON API (`/api/...`) and the MCP server "
       "(`/api/mcp`); it acts as you, never as more, and never works on pages. A `read` token is refused "
       "(403 `token_read_only`) on every POST, PUT, PATCH and DELETE; a token limited to one organisation gets 404 "
       "for the others, as a non-member does. Revoked with your sessions on password reset and sign out "
       "everywhere; stops working when your account is deactivated.")


class TokenIn(Strict):
    name: Annotated[str, msgspec.Meta(max_length=100, pattern=NOT_BLANK,
                                      description="what the token is for, 1–100 characters")]
    expires_in_days: Annotated[int, msgspec.Meta(
        ge=1, le=3660, description="1 to the server's `auth.token_max_days` (default 365); default 90")] = 90
    access: Annotated[Literal["read", "read_write"], msgspec.Meta(
        description="`read`: safe methods and read-only MCP tools only; `read_write`: acts fully as you")] = "read"
    # limit the token to one organisation you belong to; null: all of them
    organisation_id: Id | None = None


class TokenOut(msgspec.Struct):
    id: int
    name: str
    prefix: Annotated[str, msgspec.Meta(description="the secret's first characters, to tell tokens apart")]
    access: Annotated[str, msgspec.Meta(description="`read` or `read_write`")]
    organisation_id: Annotated[int | None, msgspec.Meta(description="the one organisation it reaches; null: all")]
    created_at: datetime
    expires_at: datetime
    last_used_at: Annotated[datetime | None, msgspec.Meta(description="updated at most once a minute")]


class CreatedTokenOut(msgspec.Struct):
    token: TokenOut
    secret: Annotated[str, msgspec.Meta(description="`tow_pat_...`: shown this once, never again; store it now")]


class TokenOwnerOut(msgspec.Struct):
    user_id: int
    email: str
    display_name: str


class MemberTokenOut(msgspec.Struct):
    token: TokenOut
    owner: TokenOwnerOut


def token_out(token: AccessToken) -> TokenOut:
    return TokenOut(token.id, token.name, token.prefix, token.access.value, token.organisation_id, token.created_at,
                    token.expires_at, token.last_used_at)


def created_out(created: CreatedToken) -> CreatedTokenOut:
    return CreatedTokenOut(token_out(created.token), created.secret)


def member_token_out(item: MemberToken) -> MemberTokenOut:
    owner = item.owner
    return MemberTokenOut(token_out(item.token), TokenOwnerOut(owner.user_id, owner.email, owner.display_name))


@get("/me/tokens", summary="Your personal access tokens", sync_to_thread=True,
     description="Your unrevoked tokens (expired ones too, until you revoke them), newest first: name, prefix, "
     "access, organisation, created, expires, last used. Never the secret. " + USE)
def list_my_tokens(caller: NamedDependency[Credential], tokens: NamedDependency[TokenUseCases]
                   ) -> list[TokenOut]:
    return [token_out(t) for t in tokens.mine(caller)]


@post("/me/tokens", summary="Create a personal access token", status_code=HTTP_201_CREATED, sync_to_thread=True,
      description="Returns the secret once; the server keeps only its SHA-256. Needs a signed-in session: a token "
      "cannot create tokens (403). `expires_in_days` above the server's maximum is 422. `organisation_id` limits "
      "the token to one organisation (null: all of yours); one you do not belong to is 404. " + USE)
def create_my_token(data: JSONBody[TokenIn], caller: NamedDependency[Credential],
                    tokens: NamedDependency[TokenUseCases]) -> CreatedTokenOut:
    new = NewToken(data.name, data.expires_in_days, TokenAccess(data.access), data.organisation_id)
    return created_out(tokens.create(caller, new))


@delete("/me/tokens/{token_id:int}", summary="Revoke one of your tokens", status_code=HTTP_204_NO_CONTENT,
        sync_to_thread=True, description="It stops working on the next request. 404 for a token that is not "
        "yours or is already revoked.")
def revoke_my_token(token_id: int, caller: NamedDependency[Credential],
                    tokens: NamedDependency[TokenUseCases]) -> None:
    tokens.revoke(caller, token_id)


@get("/organisations/{org_id:int}/tokens", summary="Members' tokens that reach this organisation",
     sync_to_thread=True, description="Owners and admins see (never the secret, and they cannot use them) the "
     "unrevoked tokens of the organisation's members that are limited to this organisation or unrestricted, with "
     "whose they are.")
def list_organisation_tokens(org_id: int, caller: NamedDependency[Credential],
                             tokens: NamedDependency[TokenUseCases]) -> list[MemberTokenOut]:
    return [member_token_out(t) for t in tokens.of_organisation(caller, org_id)]


@delete("/organisations/{org_id:int}/tokens/{token_id:int}", summary="Revoke a member's token",
        status_code=HTTP_204_NO_CONTENT, sync_to_thread=True,
        description="Owners and admins revoke a member's token that reaches this organisation; audited "
        "(`token.revoked`, with whose it was). 404 for a token they cannot list.")
def revoke_organisation_token(org_id: int, token_id: int, caller: NamedDependency[Credential],
                              tokens: NamedDependency[TokenUseCases]) -> None:
    tokens.revoke_member_token(caller, org_id, token_id)


tokens_router = Router(path="/api", route_handlers=[list_my_tokens, create_my_token, revoke_my_token,
                                                    list_organisation_tokens, revoke_organisation_token],
                       tags=["tokens"])
