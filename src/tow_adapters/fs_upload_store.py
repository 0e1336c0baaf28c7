"""FsUploadStore: upload bytes on the local file system (SPEC §5, §11 "uploads sit behind a port").

Layout under the root: ``ab/cd/abcd<28 more hex>`` — a 128-bit random storage name, sharded by its first
two byte pairs so no directory grows past ~65k entries. Client file names never reach the file system.

Atomic writes (a crash never leaves a partial file visible): bytes go to ``.tmp-<random>`` in the
destination directory (same file system, so the rename is atomic), then the file is fsynced, renamed
to its storage name, and the directory fsynced so the rename itself survives a power loss (POSIX
rename(2); "Files are hard" / ext4 data=ordered semantics). A write stops as soon as it exceeds its
limit and removes its temporary file.

``quarantine/`` (beside the shards, skipped when listing) receives what ``tow uploads verify --repair``
moves aside.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from tow_core.errors import DependencyUnavailable, InvalidInput, NotFound, PayloadTooLarge
from tow_core.uploads import StoredEntry, StoredFile

_NAME = re.compile(r"[0-9a-f]{32}")
_TEMP = re.compile(r"\.tmp-[0-9a-f]{32}")
_SHARD = re.compile(r"[0-9a-f]{2}")
QUARANTINE = "quarantine"


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unavailable(exc: OSError) -> DependencyUnavailable:
    return DependencyUnavailable(f"the upload store could not write: {exc.strerror or exc}", retry_after_seconds=30)


class FsUploadStore:
    def __init__(self, root: Path, *, chunk_size: int = 64 * 1024) -> None:
        self.root = Path(root).resolve()
        self.chunk_size = chunk_size
        self.location = str(self.root)  # what `tow uploads verify` names

    # --- names ----------------------------------------------------------------------------------------

    def _path(self, storage_name: str) -> Path:
        """The file of a storage name this store generated; anything else is refused."""
        if not isinstance(storage_name, str) or not _NAME.fullmatch(storage_name):
            raise InvalidInput("not a storage name", field="storage_name")
        return self.root / storage_name[:2] / storage_name[2:4] / storage_name

    def _shard(self, storage_name: str) -> Path:
        directory = self._path(storage_name).parent
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            _fsync_directory(directory.parent)  # the new shard directory entries survive a crash
            _fsync_directory(directory.parent.parent)
        return directory

    # --- writing --------------------------------------------------------------------------------------

    def put(self, chunks: Iterable[bytes], *, max_bytes: int) -> StoredFile:
        storage_name = secrets.token_hex(16)
        try:
            directory = self._shard(storage_name)
            temp = directory / f".tmp-{secrets.token_hex(16)}"
            out = open(temp, "xb")  # noqa: SIM115 (closed below, on every path)
        except OSError as exc:
            raise _unavailable(exc) from exc
        try:
            with out:
                size, digest = self._copy(chunks, out, max_bytes)
            self._publish(temp, directory / storage_name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)  # after a successful rename the temporary name is already gone
        return StoredFile(storage_name, size, digest)

    @staticmethod
    def _copy(chunks: Iterable[bytes], out: BinaryIO, max_bytes: int) -> tuple[int, str]:
        """Errors raised by ``chunks`` (a client that went away) pass through unchanged; file errors
        become DependencyUnavailable."""
        digest, size = hashlib.sha256(), 0
        for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:  # checked per chunk as it arrives, before it is written
                raise PayloadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes "
                                      "(uploads.upload_max_bytes)")
            digest.update(chunk)
            try:
                out.write(chunk)
            except OSError as exc:
                raise _unavailable(exc) from exc
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            raise _unavailable(exc) from exc
        return size, digest.hexdigest()

    @staticmethod
    def _publish(temp: Path, final: Path) -> None:
        try:
            os.rename(temp, final)
            _fsync_directory(final.parent)
        except OSError as exc:
            raise _unavailable(exc) from exc

    # --- reading --------------------------------------------------------------------------------------

    def open(self, storage_name: str) -> BinaryIO:
        try:
            return open(self._path(storage_name), "rb")  # noqa: SIM115 (the caller closes it)
        except FileNotFoundError as exc:
            raise NotFound("the upload's file is missing") from exc

    def exists(self, storage_name: str) -> bool:
        return self._path(storage_name).is_file()

    def delete(self, storage_name: str) -> None:
        path = self._path(storage_name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            _fsync_directory(path.parent)

    # --- integrity ------------------------------------------------------------------------------------

    def entries(self) -> Iterator[StoredEntry]:
        if not self.root.is_dir():
            return
        for first in sorted(self.root.iterdir()):
            if not (first.is_dir() and _SHARD.fullmatch(first.name)):
                continue  # quarantine/ and anything an operator put there
            for second in sorted(first.iterdir()):
                if not (second.is_dir() and _SHARD.fullmatch(second.name)):
                    continue
                for path in sorted(second.iterdir()):
                    partial = bool(_TEMP.fullmatch(path.name))
                    expected = path.name.startswith(first.name + second.name)
                    if path.is_file() and (partial or (_NAME.fullmatch(path.name) and expected)):
                        at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                        name = f"{first.name}{second.name}{path.name}" if partial else path.name
                        yield StoredEntry(name, at, partial)

    def _entry_path(self, storage_name: str, partial: bool) -> Path:
        if not partial:
            return self._path(storage_name)
        shard_a, shard_b, temp = storage_name[:2], storage_name[2:4], storage_name[4:]
        if not (_SHARD.fullmatch(shard_a) and _SHARD.fullmatch(shard_b) and _TEMP.fullmatch(temp)):
            raise InvalidInput("not a temporary file of this store", field="storage_name")
        return self.root / shard_a / shard_b / temp

    def quarantine(self, storage_name: str, *, partial: bool = False) -> str:
        source = self._entry_path(storage_name, partial)
        target_dir = self.root / QUARANTINE / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / (source.name.removeprefix(".") if partial else source.name)
        os.rename(source, target)
        _fsync_directory(source.parent)
        return str(target)
