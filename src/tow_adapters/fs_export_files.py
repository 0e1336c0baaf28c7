"""FsExportFiles: export files on the backend filesystem under ``exports.export_storage_path``.

Writes are atomic (``atomic_text_file``, which `tow export` writes its file with too): a temporary file
in the same directory, flushed and fsynced, then renamed over the final name (POSIX ``rename`` is atomic
within a filesystem), so a crash mid-export never leaves a partial file under a name the database could
point at. Names are server-generated; any name with a path separator or not ending in ``.json`` is
refused, so no caller can reach outside the directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TextIO

from tow_core.errors import Conflict, InvalidInput, NotFound
from tow_core.housekeeping import StoredExportFile

_SAFE_NAME = re.compile(r"^[a-z0-9-]+\.json$")
_TEMPORARY_PREFIX, _TEMPORARY_SUFFIX = ".partial-", ".tmp"
_TEMPORARY_NAME = re.compile(r"^\.partial-[A-Za-z0-9_]+\.tmp$")  # what tempfile.mkstemp makes of them
_WRITE_BUFFER_BYTES = 1024 * 1024


class FsExportFiles:
    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, name: str) -> Path:
        if not _SAFE_NAME.fullmatch(name):
            raise InvalidInput(f"{name!r} is not an export file name")
        return self._root / name

    def writing(self, name: str) -> contextlib.AbstractContextManager[TextIO]:
        final = self._path(name)
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return atomic_text_file(final, overwrite=True)

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")  # noqa: SIM115 - the caller streams and closes it
        except FileNotFoundError as exc:
            raise NotFound("export file not found") from exc

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()


    def stored(self) -> Iterator[StoredExportFile]:
        """Every export file and temporary file in the directory (anything else is not ours to touch)."""
        if not self._root.is_dir():
            return
        for path in sorted(self._root.iterdir()):
            temporary = bool(_TEMPORARY_NAME.fullmatch(path.name))
            if (temporary or _SAFE_NAME.fullmatch(path.name)) and path.is_file():
                yield StoredExportFile(path.name, datetime.fromtimestamp(path.stat().st_mtime, UTC), temporary)

    def remove(self, file: StoredExportFile) -> None:
        if not (_TEMPORARY_NAME if file.temporary else _SAFE_NAME).fullmatch(file.name):
            raise InvalidInput(f"{file.name!r} is not an export file name")
        with contextlib.suppress(FileNotFoundError):
            (self._root / file.name).unlink()


@contextlib.contextmanager
def atomic_text_file(final: Path, *, overwrite: bool) -> Iterator[TextIO]:
    """A UTF-8 text file that appears at ``final`` only if the block succeeds: written to a temporary file
    (mode 0600) in the same directory, flushed and fsynced, then renamed over ``final``. On any failure the
    temporary file is removed and ``final`` is as it was. Without ``overwrite`` an existing ``final`` is
    refused, checked before the first byte and again just before the rename."""
    if not overwrite and final.exists():
        raise Conflict(f"{final} already exists", field="output")
    try:
        fd, temporary = tempfile.mkstemp(dir=final.parent, prefix=_TEMPORARY_PREFIX, suffix=_TEMPORARY_SUFFIX)
    except OSError as exc:
        raise InvalidInput(f"cannot write to {final.parent}: {exc.strerror or exc}", field="output") from exc
    try:
        with open(fd, "w", encoding="utf-8", buffering=_WRITE_BUFFER_BYTES) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if not overwrite and final.exists():
            raise Conflict(f"{final} appeared while the export was written; nothing was replaced", field="output")
        try:
            os.replace(temporary, final)
        except OSError as exc:
            raise InvalidInput(f"cannot write {final}: {exc.strerror or exc}", field="output") from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(final.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
