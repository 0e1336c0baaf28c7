"""uvicorn's HTTP/1.1 protocol (h11) answering requests it cannot parse with TOW's JSON error envelope.

h11 refuses a request whose header value holds NUL, CR, LF, VT or FF (RFC 9110 §5.5) before the app runs,
and uvicorn then answers a plain-text 400. The app itself refuses the other control characters
(``tow_http.input_guard``); this keeps both answers the same shape: ``{"error": {"code", "message",
"field"}}``, the field being the header's name when h11 says which line it refused.
"""

from __future__ import annotations

import json
import re
import sys

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from tow_http.security import SECURITY_HEADERS

# h11's message for a refused header: "illegal header line: bytearray(b'X-Filename: a\\x00b')"
_REFUSED_HEADER = re.compile(r"illegal header line: bytearray\(b['\"]([!#$%&'*+.^_`|~0-9A-Za-z-]+):")


def error_body(error: BaseException | None) -> bytes:
    named = _REFUSED_HEADER.match(str(error)) if isinstance(error, h11.RemoteProtocolError) else None
    if named:
        field = named.group(1).lower()
        body = {"code": "invalid_input", "message": f"the {field} header contains a control character",
                "field": field}
    else:
        body = {"code": "invalid_input", "message": "the request is not valid HTTP/1.1"}
    return json.dumps({"error": body}).encode()


class EnvelopeH11Protocol(H11Protocol):
    """``uvicorn.run(..., http=EnvelopeH11Protocol)``."""

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this from its `except h11.RemoteProtocolError:` block: the error is the one in flight.
        body = error_body(sys.exc_info()[1])
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close"), *SECURITY_HEADERS]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()
