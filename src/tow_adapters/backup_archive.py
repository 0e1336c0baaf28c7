"""TarBackupArchive: one tar file (gzip-compressed when its name ends in .gz/.tgz) holding a TOW backup.

Members: ``database.dump`` (pg_dump custom format), ``uploads/...`` and ``exports/...`` (the files under
those directories, relative paths kept), and ``manifest.json`` last, naming every other member with its
size and SHA-256. Reading verifies every member against the manifest, so a tampered, truncated or
foreign archive is refused before anything is changed.

A tree may also come from, and go back to, an object store (``ObjectTree``: the S3 upload store): its objects
are members under the same layout as files (``uploads/ab/cd/<name>``), so one archive restores into either
upload backend. Restoring into an object store writes each object only once its content has the SHA-256 the
manifest names (a member changed since it was checked is never published).

The archive is written to a temporary file beside the target (mode 0600: it holds every record and
upload) and renamed over the target only when complete (POSIX rename is atomic), so a crash never leaves
a half-written backup under the final name. Only the database dump and the file trees are included:
never ``.env``, ``tow.yaml`` or any secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol

from tow_core.errors import InvalidInput, NotFound
from tow_core.progress import Progress, no_progress

MANIFEST = "manifest.json"
DATABASE_MEMBER = "database.dump"
FORMAT = "tow-backup"
FORMAT_VERSION = 1
_TREES = ("uploads", "exports")
_CHUNK = 1024 * 1024
_SAFE_PART = re.compile(r"[A-Za-z0-9._-]+")
_SKIPPED_DIRS = {"quarantine"}  # what `tow uploads verify --repair` moved aside is not live data


@dataclass(frozen=True, slots=True)
class BackupContents:
    manifest: Mapping[str, Any]
    files: Mapping[str, int]  # tree name ("uploads"/"exports") -> number of files


class StoredObject(Protocol):
    relative_path: str  # "ab/cd/<name>"
    size: int
    modified_at: datetime

    def open(self) -> BinaryIO: ...


class ObjectTree(Protocol):
    """A tree of the archive kept in an object store instead of a directory."""

    def backup_objects(self) -> Iterable[StoredObject]: ...

    def restore_object(self, relative_path: str, chunks: Iterable[bytes], *, sha256: str) -> str: ...


def _compressed(path: Path) -> bool:
    return path.name.endswith((".gz", ".tgz"))


def _live_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, path) of each regular file, skipping quarantine and temporary partial files."""
    if not root.is_dir():
        return
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not (Path(directory) == root and d in _SKIPPED_DIRS))
        for name in sorted(files):
            path = Path(directory) / name
            if name.startswith(".tmp") or path.is_symlink() or not path.is_file():
                continue
            yield path.relative_to(root).as_posix(), path


class _Counter:
    """Bytes through so far, reported to a progress display."""

    def __init__(self, progress: Progress, stage: str, total: int) -> None:
        self._progress, self._stage, self._total, self.done = progress, stage, total, 0
        progress(stage, 0, total, "bytes")

    def add(self, size: int) -> None:
        self.done += size
        self._progress(self._stage, min(self.done, self._total), self._total, "bytes")


class _HashingReader:
    def __init__(self, file: BinaryIO, counter: _Counter) -> None:
        self._file = file
        self._counter = counter
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self.digest.update(data)
        self._counter.add(len(data))
        return data


def _add(tar: tarfile.TarFile, name: str, path: Path, counter: _Counter) -> dict[str, Any]:
    with path.open("rb") as file:
        info = tarfile.TarInfo(name)
        info.size = os.fstat(file.fileno()).st_size
        info.mode, info.mtime = 0o600, int(os.fstat(file.fileno()).st_mtime)
        reader = _HashingReader(file, counter)
        tar.addfile(info, reader)  # type: ignore[arg-type]  # duck-typed: tarfile only calls read()
    return {"name": name, "size": info.size, "sha256": reader.digest.hexdigest()}


def _add_object(tar: tarfile.TarFile, name: str, stored: StoredObject, counter: _Counter) -> dict[str, Any] | None:
    """None when the object went away since it was listed (an upload deleted meanwhile, like a file removed
    after the dump: its row, if the dump has one, is then reported missing by `tow uploads verify`)."""
    try:
        content = stored.open()
    except NotFound:
        return None
    with content:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = stored.size, 0o600, int(stored.modified_at.timestamp())
        reader = _HashingReader(content, counter)
        tar.addfile(info, reader)  # type: ignore[arg-type]  # duck-typed: tarfile only calls read()
    return {"name": name, "size": info.size, "sha256": reader.digest.hexdigest()}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # gone since it was listed: _add says so
        return 0


def write_archive(target: Path, *, dump: Path, trees: Mapping[str, Path], manifest: Mapping[str, Any],
                  objects: Mapping[str, ObjectTree] | None = None, progress: Progress = no_progress,
                  stage: str = "archiving") -> int:
    """Write the archive atomically; returns its size in bytes. ``objects``: trees kept in an object store.
    ``progress`` counts the bytes archived (of the files and objects listed first)."""
    target = target.resolve()
    files = [(DATABASE_MEMBER, dump)] + [(f"{tree}/{rel}", path) for tree, root in trees.items()
                                         for rel, path in _live_files(root)]
    stored = [(f"{tree}/{item.relative_path}", item) for tree, store in (objects or {}).items()
              for item in store.backup_objects()]
    counter = _Counter(progress, stage, sum(_size(path) for _, path in files) + sum(o.size for _, o in stored))
    temp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz" if _compressed(target) else "w") as tar:
                members = [_add(tar, name, path, counter) for name, path in files]
                members += [m for name, item in stored if (m := _add_object(tar, name, item, counter)) is not None]
                body = json.dumps({**manifest, "members": members}, indent=2, sort_keys=True).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode = len(body), 0o600
                tar.addfile(info, io.BytesIO(body))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    directory_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory_fd)  # the rename itself survives a power loss
    finally:
        os.close(directory_fd)
    return target.stat().st_size


def _member_target(name: str) -> tuple[str, PurePosixPath] | None:
    """(tree, relative path) for a file-tree member; None for the dump. Anything else is refused."""
    if name == DATABASE_MEMBER:
        return None
    path = PurePosixPath(name)
    parts = path.parts
    if len(parts) < 2 or parts[0] not in _TREES or not all(_SAFE_PART.fullmatch(p) and p not in (".", "..")
                                                           for p in parts[1:]):
        raise InvalidInput(f"the archive holds an unexpected member {name!r}: not a TOW backup; nothing was "
                           "changed", field="file")
    return parts[0], PurePosixPath(*parts[1:])


def _refuse(path: Path, why: str) -> InvalidInput:
    return InvalidInput(f"{path} is not a complete, unmodified TOW backup ({why}); nothing was changed",
                        field="file")


def read_archive(path: Path, *, dump_to: Path | None = None, trees_to: Mapping[str, Path] | None = None,
                 objects_to: Mapping[str, ObjectTree] | None = None, checked: BackupContents | None = None,
                 progress: Progress = no_progress, stage: str = "reading") -> BackupContents:
    """Check every member against the manifest. With ``dump_to``/``trees_to``, also write the members
    there (the caller discards them if this raises). With ``objects_to``, write those trees' members into
    their object stores, each only if it has the SHA-256 of ``checked`` (the result of an earlier read).
    ``progress`` counts the archive's bytes read."""
    expected = {} if checked is None else {m["name"]: m["sha256"] for m in checked.manifest["members"]}
    if objects_to and checked is None:
        raise ValueError("objects_to needs the manifest of an earlier read (checked=)")
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file", field="file")
    seen: dict[str, tuple[int, str]] = {}
    manifest_body: bytes | None = None
    try:
        with path.open("rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
            total = os.fstat(raw.fileno()).st_size
            progress(stage, 0, total, "bytes")

            def read_so_far() -> None:
                progress(stage, min(raw.tell(), total), total, "bytes")

            for member in tar:
                if member.name == MANIFEST and member.isfile():
                    manifest_body = tar.extractfile(member).read()  # type: ignore[union-attr]
                    continue
                if not member.isfile():
                    raise _refuse(path, f"member {member.name!r} is not a regular file")
                where = _member_target(member.name)
                source = tar.extractfile(member)
                if where is not None and where[0] in (objects_to or {}):
                    seen[member.name] = _restore_object(path, source, member.name, where[1],  # type: ignore[arg-type]
                                                        objects_to[where[0]], expected,  # type: ignore[index]
                                                        read_so_far)
                    continue
                destination = _destination(where, dump_to, trees_to)
                seen[member.name] = _copy_member(source, destination, read_so_far)  # type: ignore[arg-type]
            progress(stage, total, total, "bytes")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _refuse(path, f"unreadable: {exc}") from exc
    manifest = _check_manifest(path, manifest_body, seen)
    counts = {tree: sum(1 for name in seen if name.startswith(f"{tree}/")) for tree in _TREES}
    return BackupContents(manifest, counts)


def _restore_object(path: Path, source: BinaryIO, name: str, relative: PurePosixPath, store: ObjectTree,
                    expected: Mapping[str, str], read_so_far: Callable[[], None]) -> tuple[int, str]:
    if name not in expected:
        raise _refuse(path, f"{name} is not in the manifest")
    digest, size = hashlib.sha256(), 0

    def chunks() -> Iterator[bytes]:
        nonlocal size
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            read_so_far()
            yield chunk

    try:
        store.restore_object(relative.as_posix(), chunks(), sha256=expected[name])
    except InvalidInput as exc:  # a member changed since it was checked, or not an upload's path
        raise _refuse(path, exc.message) from exc
    return size, digest.hexdigest()


def _destination(where: tuple[str, PurePosixPath] | None, dump_to: Path | None,
                 trees_to: Mapping[str, Path] | None) -> Path | None:
    if where is None:
        return dump_to
    if trees_to is None or where[0] not in trees_to:
        return None
    return trees_to[where[0]].joinpath(*where[1].parts)


def _copy_member(source: BinaryIO, destination: Path | None, read_so_far: Callable[[], None]) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    out = None
    if destination is not None:
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        out = destination.open("xb")
    try:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if out is not None:
                out.write(chunk)
            read_so_far()
    finally:
        if out is not None:
            out.close()
    return size, digest.hexdigest()


def _check_manifest(path: Path, body: bytes | None, seen: Mapping[str, tuple[int, str]]) -> Mapping[str, Any]:
    if body is None:
        raise _refuse(path, f"no {MANIFEST}")
    try:
        manifest = json.loads(body)
        listed = {m["name"]: (int(m["size"]), str(m["sha256"])) for m in manifest["members"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise _refuse(path, f"{MANIFEST} is malformed") from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise _refuse(path, f"not format {FORMAT} version {FORMAT_VERSION}")
    for name, expected in listed.items():
        if name not in seen:
            raise _refuse(path, f"{name} is missing")
        if seen[name] != expected:
            raise _refuse(path, f"{name} does not match its SHA-256 in the manifest")
    extra = sorted(set(seen) - set(listed))
    if extra:
        raise _refuse(path, f"{extra[0]} is not in the manifest")
    if DATABASE_MEMBER not in listed:
        raise _refuse(path, f"no {DATABASE_MEMBER}")
    return manifest


class TarBackupArchive:
    """The archive format as one object, for the composition root to hand out."""

    write = staticmethod(write_archive)
    read = staticmethod(read_archive)
