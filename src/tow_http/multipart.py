"""Request bodies read from a worker thread, and files sent with page forms (multipart/form-data,
RFC 7578) streamed after their CSRF field: shared by uploads, attachments, images and the import page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

from anyio import from_thread
from litestar.exceptions import InternalServerException, PermissionDeniedException
from multipart import MultipartError, MultipartSegment, PushMultipartParser

from tow_core.errors import InvalidInput, PayloadTooLarge
from tow_http.pages.csrf import FIELD

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers allowed on top of the file itself


FILE_FIELD = "file"


def pull_body(stream: AsyncIterator[bytes], *, max_bytes: float) -> Iterator[bytes]:
    """The request body, read from the event loop on demand by a worker thread; at most ``max_bytes``."""
    received = 0
    while True:
        try:
            chunk = from_thread.run(stream.__anext__)
        except StopAsyncIteration:
            return
        except InternalServerException as exc:  # Litestar's "client disconnected prematurely": not our bug
            raise InvalidInput("the upload was interrupted before the body was complete; nothing was kept",
                               field="body") from exc
        received += len(chunk)
        if received > max_bytes:
            raise PayloadTooLarge(f"the request is larger than the upload limit of {int(max_bytes)} bytes")
        if chunk:
            yield chunk


CSRF_REFUSED = "this form expired or did not come from this site: reload the page and send it again"


def _events(body: Iterator[bytes], boundary: str) -> Iterator[object]:
    try:
        with PushMultipartParser(boundary, max_segment_count=16) as parser:
            for chunk in body:
                yield from parser.parse(chunk)
    except MultipartError as exc:
        raise InvalidInput(f"the form could not be read: {exc}", field=FILE_FIELD) from exc


def _field_text(events: Iterator[object], limit: int = 200) -> str:
    """The rest of a small text field: its bytes up to the end-of-part event (None)."""
    data = b""
    for event in events:
        if event is None:
            break
        if isinstance(event, bytes | bytearray) and len(data) <= limit:
            data += bytes(event)
    return data[:limit].decode("ascii", "replace")


def file_after_token(body: Iterator[bytes], boundary: str, token_ok: Callable[[str], bool]
                      ) -> tuple[str, Iterator[bytes]]:
    """(file name, file chunks) once the CSRF field that precedes the file has been verified (the page
    forms put it first, so not a byte of the file is stored for a forged form)."""
    events = _events(body, boundary)
    token = ""
    for event in events:
        if not isinstance(event, MultipartSegment):
            continue
        if event.name == FIELD:
            token = _field_text(events)
        elif event.name == FILE_FIELD and event.filename is not None:
            if not token_ok(token):
                raise PermissionDeniedException(CSRF_REFUSED)
            if not event.filename:
                raise InvalidInput("choose a file to attach", field=FILE_FIELD)

            def chunks() -> Iterator[bytes]:
                for part in events:
                    if part is None:
                        return
                    if isinstance(part, bytes | bytearray):
                        yield bytes(part)

            return event.filename, chunks()
    raise InvalidInput("the form has no file to attach", field=FILE_FIELD)
