"""Files on records in the browser (SPEC §5): attach a file to a record you can write, detach it.
Downloads use the upload routes' own link (``/api/uploads/{id}/content``), which checks access on every
request and sends files as attachments.

The file is streamed from the multipart body to the upload store like the JSON route does (with no
database connection held meanwhile: ``UploadUseCases`` checks the caller in one short unit of work and
keeps the file in another); the form's CSRF token comes before the file in the body and is checked
before a single file byte is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

from anyio import to_thread
from litestar import Request, Response, post
from litestar.di import NamedDependency
from multipart import parse_options_header

from tow_core.errors import InvalidInput, MalformedInput, PayloadTooLarge
from tow_core.records import DisplayId
from tow_core.unit_of_work import Credential
from tow_core.use_cases.uploads import FileBody, UploadUseCases
from tow_http.multipart import FILE_FIELD, MULTIPART_OVERHEAD, file_after_token, pull_body
from tow_http.pages.csrf import token_is_valid
from tow_http.pages.web import Form, redirect, session_cookies_of


def form_file(request: Request, *, noun: str) -> FileBody:
    """How a use case opens the file a page form sends (multipart, its CSRF token first): refused before
    anything is read unless it is such a form; the token is verified before a byte of the file is."""
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    if media_type != "multipart/form-data" or not options.get("boundary"):
        raise InvalidInput(f"send the {noun} with the page's form", field=FILE_FIELD)
    cookies = session_cookies_of(request)  # the CSRF token's key, as page() uses it

    def body(max_bytes: int) -> tuple[str, Iterator[bytes]]:
        stream = pull_body(request.stream(), max_bytes=max_bytes + MULTIPART_OVERHEAD)
        return file_after_token(stream, options["boundary"], lambda token: token_is_valid(request, cookies, token))

    return body


@post("/o/{org_id:int}/r/{display_id:str}/attachments", include_in_schema=False, request_max_body_size=None)
async def attach_file(request: Request, org_id: int, display_id: str, caller: NamedDependency[Credential],
                      uploads: NamedDependency[UploadUseCases], project: str = "") -> Response:
    did, body = DisplayId.parse(display_id), form_file(request, noun="file")
    back = f"/o/{org_id}/r/{display_id}" + (f"?{urlencode({'project': project})}" if project else "")
    try:
        await to_thread.run_sync(uploads.attach_file, caller, org_id, did, body)  # 404/403 before a byte is read
    except PayloadTooLarge:  # back to the record, which says the limit (nothing was kept)
        return redirect(request, _with_query(back, upload_refused=UPLOAD_TOO_LARGE) + "#files")
    except MalformedInput:
        raise
    except InvalidInput as refused:
        if refused.field != FILE_FIELD:
            raise
        return redirect(request, _with_query(back, upload_refused=UPLOAD_UNREADABLE) + "#files")
    return redirect(request, back)


# Why the record page's last upload was refused (``?upload_refused=``): codes, never text from the request.
UPLOAD_TOO_LARGE = "too_large"
UPLOAD_UNREADABLE = "unreadable"


def _with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


@post("/o/{org_id:int}/r/{display_id:str}/attachments/{upload_id:int}/detach", sync_to_thread=True,
      include_in_schema=False)
def detach_file(request: Request, org_id: int, display_id: str, upload_id: int, form: NamedDependency[Form],
                caller: NamedDependency[Credential], uploads: NamedDependency[UploadUseCases]) -> Response:
    uploads.detach(caller, org_id, DisplayId.parse(display_id), upload_id)
    suffix = f"?project={form.get('project')}" if form.get("project") else ""
    return redirect(request, f"/o/{org_id}/r/{display_id}{suffix}")


UPLOAD_PAGES = [attach_file, detach_file]
