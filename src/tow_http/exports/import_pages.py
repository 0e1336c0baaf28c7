"""Importing an organisation export from the browser (server settings, SPEC §5): the same use case as
``POST /api/server/imports`` and ``tow import``, for server admins.

The form's file is spooled by the use case (memory up to 8 MiB, then a temporary file on disk: the import
reads it more than once, and never the whole file into memory), refused as soon as it passes
``IMPORT_PAGE_MAX_BYTES``; no database connection is held while it arrives. The page then shows what was
restored (counts) or why nothing was: the first offending JSON path of a malformed or tampered file.
"""

from __future__ import annotations

from collections.abc import Iterator

from anyio import to_thread
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from multipart import parse_options_header

from tow_core.errors import InvalidInput, PayloadTooLarge
from tow_core.imports import IMPORT_MAX_BYTES
from tow_core.unit_of_work import Credential
from tow_core.use_cases.exports import ImportAttempt, ImportForm, ImportUseCases
from tow_http.errors import status_for
from tow_http.multipart import FILE_FIELD, MULTIPART_OVERHEAD, file_after_token, pull_body
from tow_http.pages.csrf import token_is_valid
from tow_http.pages.web import page, session_cookies_of

IMPORT_PAGE = "/server/import"
# The same bound as the API's: it limits the temporary copy on disk, not memory.
IMPORT_PAGE_MAX_BYTES = IMPORT_MAX_BYTES


def _home(form: ImportForm) -> str:
    return f"/o/{form.home_org_id}/memory" if form.home_org_id is not None else "/welcome"


@get(IMPORT_PAGE, sync_to_thread=True, include_in_schema=False)
def import_form(request: Request, caller: NamedDependency[Credential],
                imports: NamedDependency[ImportUseCases]) -> Response:
    form = imports.form(caller)  # not found for anyone but server admins, like /server
    return page(request, "import.html", home=_home(form), limit=IMPORT_PAGE_MAX_BYTES, report=None, error=None)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the export file is larger than the import limit of {limit} bytes; import it with "
                           "`tow import FILE` on the server instead")


def _token_ok(request: Request, token: str) -> bool:
    return token_is_valid(request, session_cookies_of(request), token)


def _file_of(request: Request, limit: int) -> Iterator[bytes]:
    """The form's file, checked as it starts (run by the use case once the caller is known to be a server
    admin): the declared size, the form's CSRF token (which precedes the file), then at most ``limit``
    bytes, not none."""
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise _too_large(limit)
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    if media_type != "multipart/form-data" or not options.get("boundary"):
        raise InvalidInput("send the export file with the page's form", field=FILE_FIELD)
    body = pull_body(request.stream(), max_bytes=limit + MULTIPART_OVERHEAD)
    _, chunks = file_after_token(body, options["boundary"], lambda token: _token_ok(request, token))
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        yield chunk
    if received == 0:
        raise InvalidInput("the file is empty: choose an organisation export file (.json)", field=FILE_FIELD)


@post(IMPORT_PAGE, include_in_schema=False, request_max_body_size=None)
async def import_upload(request: Request, caller: NamedDependency[Credential],
                        imports: NamedDependency[ImportUseCases]) -> Response:
    """Checks, in order and before storing anything: signed in as a server admin, the declared size, the
    form's CSRF token (which precedes the file); then streams, imports in one transaction and reports."""
    limit = IMPORT_PAGE_MAX_BYTES
    attempt: ImportAttempt = await to_thread.run_sync(imports.import_upload, caller, _file_of(request, limit))
    home = _home(attempt.form)
    if attempt.refused is not None:
        # A refused file is an answer, not a failure of the page: show it (and the first offending JSON path)
        # beside the form. Nothing was kept: the transaction rolled back.
        refused = attempt.refused
        return page(request, "import.html", status_code=status_for(refused), home=home, limit=limit, report=None,
                    error=refused.message, error_path=refused.field)
    return page(request, "import.html", status_code=201, home=home, limit=limit, report=attempt.report, error=None)


IMPORT_PAGES = [import_form, import_upload]
