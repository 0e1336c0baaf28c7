"""The one table from core exceptions to HTTP statuses (SPEC §10), and the JSON error shape.

Every error leaves as ``{"error": {"code": ..., "message": ..., "field"?: ...}}``. Route handlers
contain no try/except: they raise core exceptions and this module answers.
"""

from __future__ import annotations

import logging
import re

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from tow_core import errors as core
from tow_http.security import SECURITY_HEADERS

ERROR_SECURITY_HEADERS = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}

log = logging.getLogger("tow.http")

# Most specific class first: the first isinstance match wins.
STATUS_FOR_ERROR: tuple[tuple[type[core.TowError], int], ...] = (
    (core.MalformedInput, HTTP_400_BAD_REQUEST),  # like Litestar's own decoding errors
    (core.InvalidInput, HTTP_422_UNPROCESSABLE_ENTITY),
    (core.NotAuthenticated, HTTP_401_UNAUTHORIZED),
    (core.AccessDenied, HTTP_403_FORBIDDEN),
    (core.NotFound, HTTP_404_NOT_FOUND),
    (core.Conflict, HTTP_409_CONFLICT),
    (core.PayloadTooLarge, HTTP_413_REQUEST_ENTITY_TOO_LARGE),
    (core.Throttled, HTTP_429_TOO_MANY_REQUESTS),
    (core.DependencyUnavailable, HTTP_503_SERVICE_UNAVAILABLE),
    (core.SchemaOutOfDate, HTTP_503_SERVICE_UNAVAILABLE),
    (core.NotConfigured, HTTP_503_SERVICE_UNAVAILABLE),
    (core.TowError, HTTP_400_BAD_REQUEST),
)
SCHEMA_RETRY_AFTER_SECONDS = 30

_CODE_FOR_HTTP_STATUS = {
    400: "invalid_input",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    503: "dependency_unavailable",
}


class ErrorDetail(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    code: str  # stable, e.g. not_found, invalid_input, throttled
    message: str  # for people; may change
    field: str | msgspec.UnsetType = msgspec.UNSET  # the input value that was wrong, when it was one


class ErrorEnvelope(msgspec.Struct, forbid_unknown_fields=True):
    """Every error TOW answers, whatever the status (the OpenAPI document's ``ErrorEnvelope``)."""

    error: ErrorDetail


def status_for_class(cls: type[core.TowError]) -> int:
    return next(status for base, status in STATUS_FOR_ERROR if issubclass(cls, base))


def status_for(exc: core.TowError) -> int:
    return status_for_class(type(exc))


def error_response(
    status: int, code: str, message: str, *, field: str | None = None, headers: dict[str, str] | None = None
) -> Response[ErrorEnvelope]:
    body = ErrorEnvelope(ErrorDetail(code, message, field or msgspec.UNSET))
    # The router answers an unknown path or method before any middleware runs, so the security headers that
    # BrowserSecurityMiddleware adds to everything else are set here too (it never adds a header twice).
    return Response(body, status_code=status, media_type=MediaType.JSON,
                    headers={**ERROR_SECURITY_HEADERS, **(headers or {})})


def handle_tow_error(_: Request, exc: core.TowError) -> Response[ErrorEnvelope]:
    headers = {}
    if isinstance(exc, core.InvalidToken):  # RFC 6750 §3: tell a bearer client its token is the problem
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if isinstance(exc, core.RetryableError):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    elif isinstance(exc, core.SchemaOutOfDate):
        headers["Retry-After"] = str(SCHEMA_RETRY_AFTER_SECONDS)
    return error_response(status_for(exc), exc.code, exc.message, field=exc.field, headers=headers)


def handle_validation_error(request: Request, exc: ValidationException) -> Response[ErrorEnvelope]:
    """Litestar's request decoding errors: name the offending field and why."""
    problems = [p for p in (exc.extra or []) if isinstance(p, dict)]
    if problems:
        first = problems[0]
        message = str(first.get("message") or exc.detail)
        field = _field_of(str(first.get("key") or ""), message)
        return error_response(HTTP_400_BAD_REQUEST, "invalid_input", message, field=_public_name(request, field))
    return error_response(HTTP_400_BAD_REQUEST, "invalid_input", exc.detail)


def _field_of(key: str, message: str) -> str | None:
    """The dotted field a decoding error is about; ``data`` is Litestar's name for the whole body."""
    named = re.search(r"field `([^`]+)`", message)  # msgspec: "Object missing required field `x`"
    parts = [p for p in key.removeprefix("$.").split(".") if p and p != "data"]
    if named:
        parts.append(named.group(1))
    return ".".join(parts) or None


def _public_name(request: Request, field: str | None) -> str | None:
    """A parameter as the client names it (``?scope=``), not as the handler does (``scope_text``)."""
    if not field:
        return field
    head, dot, rest = field.partition(".")
    parameter = request.route_handler.parsed_fn_signature.parameters.get(head)
    definition = getattr(parameter, "kwarg_definition", None)
    alias = next((a for a in (getattr(definition, n, None) for n in ("name", "query", "header")) if a), None)
    return f"{alias}{dot}{rest}" if alias else field


def handle_http_exception(request: Request, exc: HTTPException) -> Response[ErrorEnvelope]:
    if exc.status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        return handle_unexpected(request, exc)
    code = _CODE_FOR_HTTP_STATUS.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, exc.detail, headers=dict(exc.headers or {}))


def handle_unexpected(request: Request, exc: Exception) -> Response[ErrorEnvelope]:
    """A bug: log it with the traceback, answer without one."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "internal error: the server logged the details"
    )


EXCEPTION_HANDLERS = {
    core.TowError: handle_tow_error,
    ValidationException: handle_validation_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
