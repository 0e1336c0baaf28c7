"""Importing an organisation export from the browser (server settings, SPEC §5): the same use case as
``POST /api/server/imports`` and ``tow import``, for server admins.

The form's file is streamed to a temporary file on disk (the import reads it more than once, and never
the whole file into memory), refused as soon as it passes ``IMPORT_PAGE_MAX_BYTES``; no database
connection is held while it arrives. The page then shows what was restored (counts) or why nothing was:
the first offending JSON path of a malformed or tampered file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from anyio import to_thread
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from multipart import parse_options_header

from tow_core import accounts, imports
from tow_core.access import Principal
from tow_core.errors import Conflict, InvalidInput, PayloadTooLarge
from tow_core.imports import IMPORT_MAX_BYTES
from tow_http.context import Services, SignedIn, in_unit_of_work, signed_in_transaction
from tow_http.errors import status_for
from tow_http.multipart import FILE_FIELD, MULTIPART_OVERHEAD, file_after_token, pull_body
from tow_http.pages.csrf import token_is_valid
from tow_http.pages.web import page

IMPORT_PAGE = "/server/import"
# The same bound as the API's: it limits the temporary copy on disk, not memory.
IMPORT_PAGE_MAX_BYTES = IMPORT_MAX_BYTES
_COPY_CHUNK = 1024 * 1024


def _home(signed_in_orgs: list) -> str:
    return f"/o/{signed_in_orgs[0][0].id}/memory" if signed_in_orgs else "/welcome"


def _server_admin(principal: Principal) -> None:
    if not principal.is_server_admin:
        raise NotFoundException("no such page")  # like /server: it does not exist for others


@get(IMPORT_PAGE, sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def import_form(request: Request, signed_in: NamedDependency[SignedIn]) -> Response:
    _server_admin(signed_in.principal)
    home = _home(accounts.own_organisations(signed_in.directory, signed_in.principal))
    return page(request, "import.html", home=home,
                limit=IMPORT_PAGE_MAX_BYTES, report=None, error=None)


def _spool(chunks: Iterator[bytes], file: BinaryIO, limit: int) -> int:
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"the export file is larger than the import limit of {limit} bytes; "
                                  "import it with `tow import FILE` on the server instead")
        file.write(chunk)
    if received == 0:
        raise InvalidInput("the file is empty: choose an organisation export file (.json)", field=FILE_FIELD)
    file.seek(0)
    return received


@post(IMPORT_PAGE, include_in_schema=False, request_max_body_size=None)
async def import_upload(request: Request, services: NamedDependency[Services]) -> Response:
    """Checks, in order and before storing anything: signed in as a server admin, the declared size, the
    form's CSRF token (which precedes the file); then streams, imports in one transaction and reports."""
    limit = IMPORT_PAGE_MAX_BYTES
    media_type, options = parse_options_header(request.headers.get("content-type", ""))

    def admin() -> tuple[Principal, str]:
        with signed_in_transaction(request, services) as signed_in:
            _server_admin(signed_in.principal)
            return signed_in.principal, _home(accounts.own_organisations(signed_in.directory, signed_in.principal))

    principal, home = await to_thread.run_sync(admin)
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"the export file is larger than the import limit of {limit} bytes; import it with "
                              "`tow import FILE` on the server instead")
    if media_type != "multipart/form-data" or not options.get("boundary"):
        raise InvalidInput("send the export file with the page's form", field=FILE_FIELD)

    def receive(file: BinaryIO) -> None:
        body = pull_body(request.stream(), max_bytes=limit + MULTIPART_OVERHEAD)
        _, chunks = file_after_token(body, options["boundary"], lambda token: token_is_valid(request, services, token))
        _spool(chunks, file, limit)

    def restore(file: BinaryIO) -> imports.ImportReport:
        with signed_in_transaction(request, services) as fresh:  # revoked meanwhile: 401
            return imports.import_organisation(fresh.directory, fresh.organisation_import, fresh.principal,
                                               file=file, upload_store=services.upload_store, images=services.images)

    with tempfile.TemporaryFile(prefix="tow-import-") as file:
        await to_thread.run_sync(receive, file)
        try:
            report = await to_thread.run_sync(restore, file)
        except (InvalidInput, Conflict) as exc:
            # A refused file is an answer, not a failure of the page: show it (and the first offending JSON
            # path) beside the form. Nothing was kept: the transaction rolled back.
            return page(request, "import.html", status_code=status_for(exc), home=home, limit=limit, report=None,
                        error=exc.message, error_path=exc.field)
    return page(request, "import.html", status_code=201, home=home, limit=limit, report=report, error=None)


IMPORT_PAGES = [import_form, import_upload]
