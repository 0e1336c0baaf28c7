"""Sending an upload back: safe headers, HEAD and single byte ranges, streamed (SPEC §5).

- ``Content-Disposition`` carries the sanitised name twice (RFC 6266 §4.3): ``filename="…"`` as a plain
  ASCII fallback for old clients, and ``filename*=UTF-8''…`` percent-encoded (RFC 8187) for everyone else.
  It is ``attachment`` unless the content verified as a raster image; HTML, SVG and XML never render.
- ``Content-Type`` is chosen by the server from verified content; ``X-Content-Type-Options: nosniff``
  stops browsers from guessing otherwise; ``Cache-Control: private`` keeps shared caches out, and a
  ``sandbox`` CSP neuters anything that is opened anyway.
- ``Range: bytes=…`` with one range answers 206 with ``Content-Range``; an unsatisfiable one 416; a
  malformed or multi-range header is ignored and the whole file is sent (RFC 9110 §14.2 allows it).
  Bodies stream in 64 KiB chunks from the open file; nothing reads a whole file into memory.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import quote

from litestar import Response
from litestar.response import Stream

from tow_core.uploads import Upload
from tow_http.errors import error_response

CHUNK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_ASCII_SAFE = re.compile(r"[^A-Za-z0-9 ._()+,=@~-]")
# RFC 8187 attr-char: ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
_ATTR_CHAR_SAFE = "!#$&+-.^_`|~"


def content_disposition(name: str, *, inline: bool = False) -> str:
    """``attachment; filename="ascii"; filename*=UTF-8''percent-encoded`` (RFC 6266, RFC 8187)."""
    fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    fallback = _ASCII_SAFE.sub("_", fallback).strip(" .") or "download"
    encoded = quote(name, safe=_ATTR_CHAR_SAFE)
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """The inclusive (first, last) byte of one satisfiable range; ``None`` to send everything (no,
    malformed or multi-range header); ``False`` when the range cannot be satisfied (416)."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # suffix: the last N bytes
        length = int(last)
        return (max(size - length, 0), size - 1) if length > 0 and size > 0 else False
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None  # invalid range-spec: ignore the header
    return (start, end) if start < size else False


def _chunks(reader: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    try:
        reader.seek(start)
        while length > 0:
            chunk = reader.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
    finally:
        reader.close()


def download_headers(upload: Upload) -> dict[str, str]:
    """``X-Content-Type-Options: nosniff`` is on every response already (``tow_http.security``)."""
    return {
        "Content-Type": upload.media_type,
        "Content-Disposition": content_disposition(upload.original_name, inline=upload.inline),
        "Cache-Control": "private, no-cache",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Accept-Ranges": "bytes",
        "ETag": f'"{upload.sha256}"',
    }


def download_response(upload: Upload, reader: BinaryIO, range_header: str | None) -> Response:
    """200 with the whole file, 206 with one range, or 416; the reader is closed when done."""
    headers = download_headers(upload)
    wanted = byte_range(range_header, upload.size_bytes)
    if wanted is False:
        reader.close()
        return error_response(416, "range_not_satisfiable",
                              f"the range is outside the file ({upload.size_bytes} bytes)",
                              headers={"Content-Range": f"bytes */{upload.size_bytes}"})
    if wanted is None:
        start, length, status = 0, upload.size_bytes, 200
    else:
        start, length, status = wanted[0], wanted[1] - wanted[0] + 1, 206
        headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1]}/{upload.size_bytes}"
    headers["Content-Length"] = str(length)
    return Stream(_chunks(reader, start, length), status_code=status, headers=headers,
                  media_type=upload.media_type)


def head_response(upload: Upload, range_header: str | None) -> Response[None]:
    """What GET would answer, without the body."""
    headers = download_headers(upload)
    wanted = byte_range(range_header, upload.size_bytes)
    if wanted is False:
        return Response(None, status_code=416, headers={**headers, "Content-Range": f"bytes */{upload.size_bytes}"})
    if wanted is None:
        headers["Content-Length"] = str(upload.size_bytes)
        return Response(None, status_code=200, headers=headers)
    headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1]}/{upload.size_bytes}"
    headers["Content-Length"] = str(wanted[1] - wanted[0] + 1)
    return Response(None, status_code=206, headers=headers)
