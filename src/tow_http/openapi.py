"""What the OpenAPI document says about errors, sign-in and access: one explicit table, applied to every API
operation when the app is composed (SPEC §10; checked against the running server by
tests/e2e/test_openapi_conformance.py, which runs schemathesis over every operation).

Every error response is ``ErrorEnvelope`` (tow_http/errors.py). Which statuses an operation declares:

- from what the operation *is*, for every operation alike — 400 when it takes parameters or a body (they
  are decoded against this document); 401 when it needs a session; 403 for POST/PUT/PATCH/DELETE, which
  ``BrowserSecurityMiddleware`` refuses when they come from another site; 404 when its path has parameters
  (nothing there, not visible to you, or a path segment that is not a number); 413 when it takes a body;
  503 when it uses the database (unavailable or busy, with ``Retry-After``) or an unconfigured service;
- from what its use case raises, listed per operation in ``ANSWERS`` as core exceptions, whose statuses come
  from the one exception table (``errors.STATUS_FOR_ERROR``);
- ``x-tow-access`` on operations only some roles may use (``Access``), which a plain member never gets a
  2xx from.

Litestar's own generated 400 (``{status_code, detail, extra}``, which TOW never sends) is replaced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial

import msgspec
from litestar import Litestar
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.routes import HTTPRoute
from litestar.typing import FieldDefinition

from tow_core.errors import (
    AccessDenied,
    AiNotConfigured,
    Conflict,
    DependencyUnavailable,
    InvalidInput,
    NotAuthenticated,
    NotConfigured,
    NotFound,
    PayloadTooLarge,
    Throttled,
    TowError,
)
from tow_core.live import MAX_TOPICS
from tow_http.errors import ErrorEnvelope, status_for_class
from tow_http.security import STATE_CHANGING
from tow_http.shapes import DISPLAY_ID, END, VISIBLE

SESSION_SCHEME = "session"
BEARER_SCHEME = "bearer"  # personal access tokens (README "API tokens"), on /api/... only
# Path segments the core parses itself (422 when they do not match), declared so that clients know the shape.
PATH_PATTERNS = {"display_id": DISPLAY_ID}
# use_cases.extraction.record_ref: a record id (digits) or a display ID
RECORD_ID_OR_DISPLAY_ID = f"^(?:[0-9]{{1,18}}|{DISPLAY_ID[1:-len(END)]}){END}"


class Access(StrEnum):
    """Who may use an operation at all; a plain member of the organisation gets 403 or 404."""

    ORGANISATION_MANAGERS = "organisation_managers"  # owners and admins of the organisation
    PROJECT_MANAGERS = "project_managers"  # those, and the project's leads and admins
    SERVER_ADMINS = "server_admins"


@dataclass(frozen=True)
class Answers:
    """What one operation's use case can answer beyond what every operation of its kind can."""

    raises: tuple[type[TowError], ...] = ()
    access: Access | None = None
    ranges: bool = False  # a file download: 206 for one byte range, 416 outside the file
    body: RequestBody | None = None  # a body the handler streams itself (Litestar cannot see it)
    # parameter -> the bounds the use case checks itself (422), as Schema attributes
    parameters: Mapping[str, Mapping[str, object]] = field(default_factory=dict)


def answers(*raises: type[TowError], access: Access | None = None, ranges: bool = False,
            body: RequestBody | None = None,
            parameters: Mapping[str, Mapping[str, object]] | None = None) -> Answers:
    return Answers(raises, access, ranges, body, parameters or {})


def _query_text(max_length: int) -> Mapping[str, object]:
    """knowledge.clean_text(required=True), which the use case applies to `q`."""
    return {"max_length": max_length, "pattern": VISIBLE}


_ORG, _PROJECT, _SERVER = Access.ORGANISATION_MANAGERS, Access.PROJECT_MANAGERS, Access.SERVER_ADMINS
_BINARY = Schema(type=OpenAPIType.STRING, format="binary")
_UPLOAD_BODY = RequestBody(
    required=True,
    description="The file: the raw body (any media type), or a multipart/form-data form with a `file` field.",
    content={"application/octet-stream": OpenAPIMediaType(schema=_BINARY),
             "multipart/form-data": OpenAPIMediaType(schema=Schema(
                 type=OpenAPIType.OBJECT, required=["file"], properties={"file": _BINARY}))},
)
_IMPORT_BODY = RequestBody(
    required=True, description="An organisation export file (docs/export-format.md).",
    content={"application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT))},
)

# handler name -> what its use case can answer. Every operation in the document has an entry
# (tests/unit/test_openapi_document.py), so a new route states its answers here.
ANSWERS: dict[str, Answers] = {
    # health and sign-in
    "health": answers(),
    "ready": answers(DependencyUnavailable),
    "setup": answers(),
    "register_first": answers(AccessDenied, InvalidInput),
    "register": answers(AccessDenied, Conflict, InvalidInput, NotFound),
    "login": answers(NotAuthenticated, Throttled),
    "logout": answers(),
    "logout_everywhere": answers(),
    "me": answers(),
    "change_profile": answers(AccessDenied, Conflict, InvalidInput, Throttled),
    "change_password": answers(AccessDenied, InvalidInput, Throttled),
    "switch_organisation": answers(NotFound),
    # invites and organisations
    "create_invite": answers(InvalidInput, access=_ORG),
    "list_invites": answers(access=_ORG),
    "revoke_invite": answers(Conflict, access=_ORG),
    "accept_invite": answers(AccessDenied, Conflict, NotFound),
    "create_organisation": answers(InvalidInput, access=_SERVER),
    "get_organisation": answers(),
    "update_organisation": answers(InvalidInput, access=_ORG),
    "list_members": answers(),
    "change_member_role": answers(Conflict, access=_ORG),
    "remove_member": answers(AccessDenied, Conflict),  # members may remove themselves (leave)
    "set_member_active": answers(AccessDenied, Conflict, access=_ORG),
    "create_group": answers(Conflict, InvalidInput, access=_ORG),
    "list_groups": answers(),
    "rename_group": answers(Conflict, InvalidInput, access=_ORG),
    "delete_group": answers(access=_ORG),
    "add_group_member": answers(InvalidInput, access=_ORG),
    "remove_group_member": answers(access=_ORG),
    # projects and access
    "create_project": answers(Conflict, InvalidInput, access=_ORG),
    "list_projects": answers(),
    "update_project": answers(InvalidInput, access=_PROJECT),
    "get_project": answers(),
    "list_grants": answers(),
    "put_grant": answers(InvalidInput, access=_PROJECT),
    "remove_grant": answers(access=_PROJECT),
    "explain_access": answers(AccessDenied, InvalidInput),
    "access_review": answers(access=_ORG),
    "list_server_admins": answers(access=_SERVER),
    "grant_server_admin": answers(Conflict, access=_SERVER),
    "revoke_server_admin": answers(Conflict, access=_SERVER),
    # records, docs, tickets
    "create_record": answers(AccessDenied, InvalidInput),
    "list_records": answers(InvalidInput),
    "count_records": answers(),
    "get_record": answers(InvalidInput),
    "update_record": answers(AccessDenied, Conflict, InvalidInput),
    "record_backlinks": answers(InvalidInput),
    "record_references": answers(InvalidInput),
    "search": answers(InvalidInput, parameters={"q": _query_text(500)}),
    "lookup": answers(InvalidInput, parameters={"q": _query_text(200)}),
    "list_revisions": answers(InvalidInput),
    "doc_tree": answers(),
    "doc_breadcrumbs": answers(InvalidInput),
    "move_scope": answers(AccessDenied, Conflict, InvalidInput),
    "make_private": answers(AccessDenied, Conflict, InvalidInput),
    "delete_doc": answers(AccessDenied, Conflict, InvalidInput),
    "add_comment": answers(AccessDenied, InvalidInput),
    "list_comments": answers(InvalidInput),
    "edit_comment": answers(AccessDenied, InvalidInput),
    "delete_comment": answers(AccessDenied, InvalidInput),
    "ticket_activity": answers(InvalidInput),
    "list_links": answers(InvalidInput),
    "add_link": answers(AccessDenied, Conflict, InvalidInput),
    "delete_link": answers(AccessDenied, InvalidInput),
    "list_diffs": answers(InvalidInput),
    "propose_diff": answers(AccessDenied, Conflict, InvalidInput),
    "get_diff": answers(),
    "approve_diff": answers(AccessDenied, Conflict, InvalidInput),
    "reject_diff": answers(AccessDenied, Conflict, InvalidInput),
    # uploads
    "create_upload": answers(InvalidInput, PayloadTooLarge, body=_UPLOAD_BODY),
    "get_upload": answers(),
    "download_upload": answers(ranges=True),
    "head_upload": answers(ranges=True),
    "delete_upload": answers(AccessDenied),
    "list_attachments": answers(InvalidInput),
    "attach_upload": answers(AccessDenied, InvalidInput),
    "detach_upload": answers(AccessDenied, InvalidInput),
    "set_avatar": answers(AccessDenied, InvalidInput, NotFound),
    "clear_avatar": answers(),
    "get_avatar": answers(ranges=True),
    "set_org_logo": answers(InvalidInput, access=_ORG),
    "clear_org_logo": answers(access=_ORG),
    "get_org_logo": answers(ranges=True),
    "set_project_logo": answers(InvalidInput, access=_PROJECT),
    "clear_project_logo": answers(access=_PROJECT),
    "get_project_logo": answers(ranges=True),
    # AI, audit, exports
    "ai_status": answers(),
    "organisation_egress": answers(InvalidInput, access=_ORG),
    "list_agent_runs": answers(InvalidInput),
    "get_agent_run": answers(),
    "cancel_agent_run": answers(Conflict),
    "list_my_agent_runs": answers(InvalidInput),
    "get_my_agent_run": answers(),
    "cancel_my_agent_run": answers(Conflict),
    "get_inbox": answers(),
    "get_inbox_count": answers(),
    "live_updates": answers(InvalidInput, NotConfigured, Throttled, parameters={"record": {
        "items": Schema(type=OpenAPIType.STRING, pattern=DISPLAY_ID), "max_items": MAX_TOPICS}}),
    "dismiss_run": answers(Conflict),
    "list_notifications": answers(NotFound),
    "mark_notification_read": answers(),
    "mark_all_notifications_read": answers(NotFound),
    "get_watch": answers(InvalidInput),
    "put_watch": answers(InvalidInput),
    "mentionable": answers(InvalidInput),
    "get_notification_preferences": answers(),
    "put_notification_preferences": answers(InvalidInput),
    "agent_run_events": answers(AiNotConfigured),
    "server_egress": answers(InvalidInput, access=_SERVER),
    "start_conversation": answers(AiNotConfigured, InvalidInput),
    "list_conversations": answers(InvalidInput),
    "get_conversation": answers(),
    "update_conversation": answers(InvalidInput),
    "delete_conversation": answers(),
    "ask_question": answers(AiNotConfigured, InvalidInput),
    "extract_memory": answers(AccessDenied, AiNotConfigured, InvalidInput,
                              parameters={"display_id": {"pattern": RECORD_ID_OR_DISPLAY_ID}}),
    "apply_action": answers(AccessDenied, Conflict, InvalidInput),
    "generate_snapshot": answers(AiNotConfigured, InvalidInput),
    "snapshot_sources": answers(InvalidInput),
    "organisation_audit": answers(InvalidInput, access=_ORG),
    "server_audit": answers(InvalidInput, access=_SERVER),
    "request_export": answers(AccessDenied, InvalidInput),  # kind=organisation: owners and admins only
    "list_exports": answers(),
    "show_export": answers(),
    "download_export": answers(Conflict),
    "import_organisation": answers(Conflict, InvalidInput, PayloadTooLarge, access=_SERVER, body=_IMPORT_BODY),
    # personal access tokens
    "list_my_tokens": answers(),
    "create_my_token": answers(AccessDenied, InvalidInput, NotFound),  # a token cannot create tokens; not a member
    "revoke_my_token": answers(),
    "list_organisation_tokens": answers(access=_ORG),
    "revoke_organisation_token": answers(access=_ORG),
}

# One description and example per status; the operation's own description says when it applies.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_input", "The request does not match this document: a parameter or body field is missing, has "
          "the wrong type or is out of its declared bounds (`field` names it)."),
    401: ("not_authenticated", "Not signed in: the session cookie is missing, expired, revoked or not signed by "
          "this server; on sign-in, the email or password is wrong. A bearer token that is malformed, unknown, "
          "expired or revoked is `invalid_token`, with `WWW-Authenticate: Bearer error=\"invalid_token\"`."),
    403: ("forbidden", "Signed in but not allowed (`forbidden`), a read-only access token on a state-changing "
          "request (`token_read_only`), or a state-changing request from another site refused "
          "(`cross_site_request`)."),
    404: ("not_found", "Not found, or not visible to you: TOW never says which."),
    409: ("conflict", "Conflicts with the current state: a stale version, a name in use, a lifecycle move the "
          "target does not allow, the last owner."),
    413: ("payload_too_large", "The body is larger than the limit for this operation."),
    416: ("range_not_satisfiable", "The byte range is outside the file (`Content-Range: bytes */<size>`)."),
    422: ("invalid_input", "Well-formed, but refused by a rule this document cannot state: an id that names "
          "nothing usable here, a cursor this endpoint did not return, a field that does not belong to the "
          "record's type (`field` names it)."),
    429: ("throttled", "Too many attempts: retry after `Retry-After` seconds."),
    503: ("dependency_unavailable", "A dependency is unavailable or busy — the database, or a service that is not "
          "configured (`ai_not_configured`, `uploads` ...). `Retry-After` says when to retry when it is temporary."),
}
_RETRY_AFTER = "Seconds to wait before retrying (RFC 9110 §10.2.3)."


def error_response(status: int) -> ResponseSpec:
    code, description = _ERRORS[status]
    example = Example(value={"error": {"code": code, "message": description.split(":")[0]}})
    return ResponseSpec(data_container=ErrorEnvelope, description=description, examples=[example],
                        generate_examples=False)


@dataclass
class TowOperation(Operation):
    """Litestar's operation plus what its response specs cannot say: response headers, no body on 204 and
    HEAD, the file a download sends, path segment patterns, and ``x-tow-access``."""

    access: str | None = field(default=None, metadata={"alias": "x-tow-access"})
    method: str = ""
    ranges: bool = False
    extra_body: RequestBody | None = None
    bounds: Mapping[str, Mapping[str, object]] = field(default_factory=dict)

    @property
    def _exclude_fields(self) -> set[str]:
        return {"method", "ranges", "extra_body", "bounds"}

    def __post_init__(self) -> None:
        responses = self.responses or {}
        for status, response in responses.items():
            if status == "204" or self.method == "HEAD":
                response.content = None  # RFC 9110 §9.3.2, §15.3.5: no content
            if status in ("429", "503"):
                response.headers = {**(response.headers or {}), "Retry-After": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.INTEGER), description=_RETRY_AFTER, required=status == "429")}
        if self.ranges:
            file = None if self.method == "HEAD" else {"*/*": OpenAPIMediaType(schema=_BINARY)}
            responses["200"] = OpenAPIResponse(description="The file, with a server-chosen Content-Type.",
                                               content=file)
            responses["206"] = OpenAPIResponse(description="One byte range of the file (`Content-Range`).",
                                               content=file)
        if self.extra_body is not None:
            self.request_body = self.extra_body
        for parameter in self.parameters or ():
            if parameter.param_in == "path" and parameter.name in PATH_PATTERNS:
                parameter.schema.pattern = PATH_PATTERNS[parameter.name]
            for name, value in self.bounds.get(parameter.name, {}).items():
                setattr(parameter.schema, name, value)


def _path_parameters(handler: HTTPRouteHandler) -> set[str]:
    return {name for path in handler.paths for name in re.findall(r"{(\w+)(?::\w+)?}", path)}


def _inputs(handler: HTTPRouteHandler) -> set[str]:
    dependencies = set(handler.resolve_dependencies())
    return {name for name in handler.parsed_fn_signature.parameters if name not in dependencies} - {"request"}


def needs_session(handler: HTTPRouteHandler, known: Answers) -> bool:
    # ``caller``: the verified session cookie a signed-in handler passes to its use case
    return "caller" in handler.parsed_fn_signature.parameters


def statuses_of(handler: HTTPRouteHandler, known: Answers, use_case_names: frozenset[str] = frozenset()) -> set[int]:
    """Every error status ``handler`` can answer: see the module docstring."""
    parameters = set(handler.parsed_fn_signature.parameters)
    inputs = _inputs(handler)
    body = "data" in inputs or known.body is not None
    signed_in = needs_session(handler, known)
    statuses = {status_for_class(cls) for cls in known.raises}
    statuses |= {400} if inputs or body else set()
    statuses |= {401} if signed_in else set()
    statuses |= {403} if handler.http_methods & STATE_CHANGING or known.access else set()
    statuses |= {404} if _path_parameters(handler) else set()
    statuses |= {413} if body else set()
    statuses |= {416} if known.ranges else set()
    # a use case opens a unit of work: a held pool or an unreachable database is 503
    statuses |= {503} if parameters & use_case_names or signed_in else set()
    return statuses


def document_api(app: Litestar, use_case_names: frozenset[str] = frozenset()) -> None:
    """Declare on every API operation of ``app`` what it can answer (before the document is generated)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if handler.resolve_include_in_schema():
                _document(handler, ANSWERS.get(handler.handler_name, Answers()), use_case_names)


def _document(handler: HTTPRouteHandler, known: Answers, use_case_names: frozenset[str]) -> None:
    errors = {status: error_response(status) for status in sorted(statuses_of(handler, known, use_case_names))}
    handler.responses = {**errors, **(handler.responses or {})}
    if needs_session(handler, known):
        handler.security = [{SESSION_SCHEME: []}, {BEARER_SCHEME: []}]
    method = next(iter(handler.http_methods))
    handler.operation_class = partial(TowOperation, access=known.access.value if known.access else None,
                                      ranges=known.ranges, extra_body=known.body, method=method,
                                      bounds=known.parameters)


def components(session_cookie_name: str) -> Components:
    return Components(security_schemes={
        SESSION_SCHEME: SecurityScheme(
            type="apiKey", name=session_cookie_name, security_scheme_in="cookie",
            description="The session cookie sign-in sets (HttpOnly, signed; see README, Security)."),
        BEARER_SCHEME: SecurityScheme(
            type="http", scheme="bearer", bearer_format="tow_pat_...",
            description="A personal access token (`POST /api/me/tokens`): acts as its user within its access "
                        "(`read` tokens are refused on state-changing requests) and organisation; needs no "
                        "cross-site check, as it is never sent by a browser on its own. Not accepted on pages."),
    })


class ClosedStructs(StructSchemaPlugin):
    """Structs with ``forbid_unknown_fields`` (request bodies, the error envelope) say
    ``additionalProperties: false``: an unknown field is refused (400), so the document must not invite one.
    Litestar's own struct plugin (private in Litestar 2, hence the import) does everything else."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return (super().is_plugin_supported_field(field_definition)
                and msgspec.inspect.type_info(field_definition.type_).forbid_unknown_fields)

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator) -> Schema | Reference:
        result = super().to_openapi_schema(field_definition, schema_creator)
        schema = (schema_creator.schema_registry.from_reference(result).schema if isinstance(result, Reference)
                  else result)
        schema.additional_properties = False
        return result
