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
from collections.abc import Iterator
from typing import BinaryIO

from tow_core.errors import InvalidInput

_CHUNK = 256 * 1024
_WHITESPACE = b" \t\r\n"
_SCALAR_END = b" \t\r\n,]}"


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
        """The raw text of the next complete value."""
        self.peek()
        start, scan = self._pos, self._pos
        depth, in_string, escaped = 0, False, False
        first = self._buf[start]
        while True:
            while scan < len(self._buf):
                byte = self._buf[scan]
                if first not in b'"[{':  # a number, true, false or null: ends at a delimiter
                    if byte in _SCALAR_END:
                        return self._take(start, scan)
                elif in_string:
                    if escaped:
                        escaped = False
                    elif byte == 0x5C:  # backslash
                        escaped = True
                    elif byte == 0x22:  # quote
                        in_string = False
                        if depth == 0:
                            return self._take(start, scan + 1)
                elif byte == 0x22:
                    in_string = True
                elif byte in b"[{":
                    depth += 1
                elif byte in b"]}":
                    depth -= 1
                    if depth == 0:
                        return self._take(start, scan + 1)
                    if depth < 0:
                        raise _malformed(self._consumed + scan, "unbalanced brackets")
                scan += 1
            if scan - start > self._max_item:
                raise InvalidInput(f"{path}: larger than the {self._max_item} bytes one item may have", field=path)
            # Keep the partial value: shift the buffer so that it starts at ``start``.
            shift = start
            self._consumed += shift
            self._buf, self._pos, start, scan = self._buf[shift:], 0, 0, scan - shift
            chunk = b"" if self._eof else self._file.read(self._chunk)
            if not chunk:
                self._eof = True
                if depth == 0 and not in_string and first not in b'"[{':
                    return self._take(start, scan)
                raise _malformed(self.offset + scan, "unexpected end of file")
            self._buf += chunk

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
