"""InMemoryUploadStore: the UploadStore port in memory (ARCHITECTURE practice 12), kept honest by
tests/contract/test_fs_upload_store.py, which runs the same behaviour against it and FsUploadStore."""

from __future__ import annotations

import hashlib
import io
import re
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from tow_core.errors import InvalidInput, NotFound, PayloadTooLarge
from tow_core.uploads import StoredEntry, StoredFile

_NAME = re.compile(r"[0-9a-f]{32}")


class InMemoryUploadStore:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.quarantined: dict[str, bytes] = {}

    def _check(self, storage_name: str) -> str:
        if not isinstance(storage_name, str) or not _NAME.fullmatch(storage_name):
            raise InvalidInput("not a storage name", field="storage_name")
        return storage_name

    def put(self, chunks: Iterable[bytes], *, max_bytes: int) -> StoredFile:
        buffer = bytearray()
        for chunk in chunks:
            if len(buffer) + len(chunk) > max_bytes:
                raise PayloadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
            buffer += chunk
        name = secrets.token_hex(16)
        self.files[name] = bytes(buffer)  # published only once complete, like the atomic rename
        return StoredFile(name, len(buffer), hashlib.sha256(buffer).hexdigest())

    def open(self, storage_name: str) -> BinaryIO:
        try:
            return io.BytesIO(self.files[self._check(storage_name)])
        except KeyError as exc:
            raise NotFound("the upload's file is missing") from exc

    def exists(self, storage_name: str) -> bool:
        return self._check(storage_name) in self.files

    def delete(self, storage_name: str) -> None:
        self.files.pop(self._check(storage_name), None)

    def entries(self) -> Iterator[StoredEntry]:
        now = datetime.now(UTC)
        for name in sorted(self.files):
            yield StoredEntry(name, now, False)

    def quarantine(self, storage_name: str, *, partial: bool = False) -> str:
        if partial:
            raise InvalidInput("not a temporary file of this store", field="storage_name")
        self.quarantined[storage_name] = self.files.pop(self._check(storage_name))
        return f"memory:quarantine/{storage_name}"
