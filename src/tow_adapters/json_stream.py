"""Reading one large JSON object member by member, and its arrays item by item, without loading it.

``read_object(file, array_members)`` yields ``(key, raw)`` for every member of the top-level object,
where ``raw`` is the member's JSON text (bytes) — except for members named in ``array_members`` whose
value is an array: those yield ``(key, items)``, an iterator over the raw JSON text of each item, which
must be consumed before the next member is read. Memory holds one item (at most ``max_item_bytes``)
plus a read buffer, whatever the file's size. The raw texts are decoded by the caller (msgspec), which
checks them; this module only finds where values start and end and refuses what is not JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import BinaryIO

import msgspec

from tow_core.errors import InvalidInput

_CHUNK = 256 * 1024
_WHITESPACE = b" \t\r\n"
_SCALAR_END_AT = re.compile(rb"[ \t\r\n,\]}]")
_IN_STRING = re.compile(rb'["\\]')
_STRUCTURAL = re.compile(rb'["\[\]{}]')


def _malformed(offset: int, reason: str) -> InvalidInput:
    return InvalidInput(f"$: not valid JSON at byte {offset}: {reason}", field="$")


class _Reader:
    def __init__(self, file: BinaryIO, max_item_bytes: int, chunk_bytes: int) -> None:
        self._file = file
        self._chunk = chunk_bytes
        self._buf = b""
        self._pos = 0
        self._consumed = 0  # bytes dropped from the front of _buf
        self._eof = False
        self._max_item = max_item_bytes

    @property
    def offset(self) -> int:
        return self._consumed + self._pos

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._file.read(self._chunk)
        if not chunk:
            self._eof = True
            return False
        self._consumed += self._pos
        self._buf = self._buf[self._pos:] + chunk
        self._pos = 0
        return True

    def peek(self) -> int:
        """The next non-whitespace byte (not consumed)."""
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in _WHITESPACE:
                self._pos += 1
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                raise _malformed(self.offset, "unexpected end of file")

    def expect(self, char: bytes) -> None:
        if self.peek() != char[0]:
            raise _malformed(self.offset, f"expected {char.decode()!r}")
        self._pos += 1

    def value(self, path: str) -> bytes:
        """The raw text of the next complete value. Scanning jumps between structural bytes (quotes,
        backslashes, brackets) with compiled patterns, so its cost follows their number, not the bytes."""
        self.peek()
        start = scan = self._pos
        if (fast := self._one_line_value(start)) is not None:
            return fast
        depth, in_string = 0, False
        scalar = self._buf[start] not in b'"[{'
        while True:
            end, scan, depth, in_string = self._scan(start, scan, depth, in_string, scalar)
            if end is not None:
                return self._take(start, end)
            if scan - start > self._max_item:
                raise InvalidInput(f"{path}: larger than the {self._max_item} bytes one item may have", field=path)
            # Keep the partial value: shift the buffer so that it starts at ``start``.
            self._consumed += start
            self._buf, self._pos, scan, start = self._buf[start:], 0, scan - start, 0
            chunk = b"" if self._eof else self._file.read(self._chunk)
            if not chunk:
                self._eof = True
                if scalar:
                    return self._take(start, len(self._buf))
                raise _malformed(self.offset + scan, "unexpected end of file")
            self._buf += chunk

    def _one_line_value(self, start: int) -> bytes | None:
        """Fast path for files written one item per line (as TOW writes them): JSON strings cannot hold a
        raw newline, so if the rest of the line (minus a trailing comma) is one complete JSON value, that
        is the value. Anything else (several values on a line, pretty-printed items) takes the scan."""
        end = self._buf.find(b"\n", start)
        if end < 0 or self._buf[start] not in b"[{":
            return None
        candidate = self._buf[start:end].rstrip(b" \t\r")
        if candidate.endswith(b","):
            candidate = candidate[:-1].rstrip(b" \t\r")
        try:
            msgspec.json.decode(candidate, type=msgspec.Raw)
        except msgspec.DecodeError:
            return None
        return self._take(start, start + len(candidate))

    def _scan(self, start: int, scan: int, depth: int, in_string: bool, scalar: bool
              ) -> tuple[int | None, int, int, bool]:
        """Advance over the buffer: (end of the value or None, where to resume, depth, in a string)."""
        buf = self._buf
        if scalar:
            match = _SCALAR_END_AT.search(buf, scan)
            return (match.start(), match.start(), 0, False) if match else (None, len(buf), 0, False)
        while True:
            if in_string:
                match = _IN_STRING.search(buf, scan)
                if match is None:
                    return None, len(buf), depth, True
                if match.group() == b"\\":
                    if match.end() >= len(buf):  # the escaped byte is in the next chunk
                        return None, match.start(), depth, True
                    scan = match.end() + 1
                    continue
                scan, in_string = match.end(), False
                if depth == 0:
                    return scan, scan, 0, False
                continue
            match = _STRUCTURAL.search(buf, scan)
            if match is None:
                return None, len(buf), depth, False
            byte, scan = match.group(), match.end()
            if byte == b'"':
                in_string = True
            elif byte in (b"[", b"{"):
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return scan, scan, 0, False
                if depth < 0:
                    raise _malformed(self._consumed + scan, "unbalanced brackets")

    def _take(self, start: int, end: int) -> bytes:
        self._pos = end
        return self._buf[start:end]

    def at_end(self) -> bool:
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in _WHITESPACE:
                self._pos += 1
            if self._pos < len(self._buf):
                return False
            if not self._fill():
                return True


def _items(reader: _Reader, path: str) -> Iterator[bytes]:
    reader.expect(b"[")
    if reader.peek() == ord("]"):
        reader.expect(b"]")
        return
    index = 0
    while True:
        yield reader.value(f"{path}[{index}]")
        index += 1
        if reader.peek() == ord(","):
            reader.expect(b",")
            continue
        reader.expect(b"]")
        return


def read_object(file: BinaryIO, array_members: frozenset[str], *,
                max_item_bytes: int, chunk_bytes: int = _CHUNK) -> Iterator[tuple[str, bytes | Iterator[bytes]]]:
    reader = _Reader(file, max_item_bytes, chunk_bytes)
    reader.expect(b"{")
    if reader.peek() == ord("}"):
        reader.expect(b"}")
    else:
        while True:
            if reader.peek() != ord('"'):
                raise _malformed(reader.offset, "expected a member name")
            key = json.loads(reader.value("$"))
            reader.expect(b":")
            if key in array_members and reader.peek() == ord("["):
                items = _items(reader, f"$.{key}")
                yield key, items
                for _ in items:  # the caller stopped early: skip the rest of the array
                    pass
            else:
                yield key, reader.value(f"$.{key}")
            if reader.peek() == ord(","):
                reader.expect(b",")
                continue
            reader.expect(b"}")
            break
    if not reader.at_end():
        raise _malformed(reader.offset, "data after the end of the object")
