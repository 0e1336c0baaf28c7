"""S3UploadStore: upload bytes in an S3-compatible bucket (SPEC §11: the multi-machine choice), behind the same
``UploadStore`` port as FsUploadStore.

Library: boto3 (the reference S3 SDK, maintained by AWS; plain synchronous calls). Its explicit multipart calls
let this adapter enforce the size limit per chunk as it arrives and abort the multipart upload itself, so an
over-limit or broken upload never becomes an object. Nothing else in TOW imports boto3 or botocore (an
import-linter contract).

Layout: ``<key_prefix><storage name>`` — a 128-bit random name; S3 needs no sharding. ``<key_prefix>quarantine/``
receives what ``tow uploads verify --repair`` moves aside; ``<key_prefix>replaced-<time>/`` what a restore set
aside. Neither is ever listed as a stored file.

Atomic writes: an object becomes visible only when its PutObject or CompleteMultipartUpload succeeds, entirely
(S3's read-after-write consistency). A file that fits one part (``part_size``, at least S3's 5 MiB minimum) is
one PutObject; a larger one is a multipart upload of ``part_size`` parts, so at most one part is held in
memory. A write that exceeds its limit, or whose body fails, aborts its multipart upload; one killed outright
leaves an incomplete multipart upload, which ``entries`` reports as a *partial* file (like the file store's
temporary files) until ``quarantine`` completes it under ``quarantine/`` (nothing is deleted). A lifecycle rule
"abort incomplete multipart uploads after N days" on the bucket is a good second net.

Reads are seekable: a reader fetches from its position with a ranged GET and starts a new one after a seek,
so a ``Range`` request downloads only the bytes it asks for. Vendor errors become ``tow_core.errors``
(``NotFound`` for a missing object, ``DependencyUnavailable`` for everything the bucket or network does).
Credentials are passed explicitly: boto3's own credential chain (``~/.aws``, instance metadata) is not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

import boto3
import botocore.config
import botocore.exceptions

from tow_core.errors import DependencyUnavailable, InvalidInput, NotFound, PayloadTooLarge
from tow_core.uploads import StoredEntry, StoredFile

_NAME = re.compile(r"[0-9a-f]{32}")
_PARTIAL = re.compile(r"(?P<name>[0-9a-f]{32}):(?P<upload_id>[A-Za-z0-9._~+=/-]{1,1024})")
_PREFIX = re.compile(r"((?!\.{1,2}/)[A-Za-z0-9._-]+/)*")
MIN_PART_SIZE = 5 * 1024 * 1024  # S3: every part but the last is at least 5 MiB
DEFAULT_PART_SIZE = 8 * 1024 * 1024
QUARANTINE = "quarantine"
_MISSING = {"NoSuchKey", "404", "NotFound"}
_VENDOR_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    key_prefix: str = ""  # "" or segments ending in "/"
    endpoint_url: str | None = None  # None: AWS's endpoint for the region
    region: str = "us-east-1"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object of the store for a backup: its archive path (``ab/cd/<name>``, the file store's layout, so a
    backup restores into either backend), size, modification time and a way to read it."""

    relative_path: str
    size: int
    modified_at: datetime
    open: Callable[[], BinaryIO]


def _code(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", "error"))
    return type(exc).__name__


def _unavailable(bucket: str, doing: str, exc: Exception) -> DependencyUnavailable:
    return DependencyUnavailable(f"the upload store (S3 bucket {bucket}) could not {doing}: {_code(exc)}",
                                 retry_after_seconds=30)


def s3_client(location: S3Location, access_key_id: str, secret_access_key: str) -> Any:
    """A client with explicit credentials, bounded timeouts and retries; path-style addressing when an
    endpoint is given (what S3-compatible servers such as SeaweedFS, MinIO or Ceph expect)."""
    config = botocore.config.Config(
        connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=64,  # a streaming download holds its connection for as long as it runs
        s3={"addressing_style": "path" if location.endpoint_url else "auto"},
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=location.endpoint_url, region_name=location.region, config=config,
        aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
    )


class S3UploadStore:
    def __init__(self, client: Any, location: S3Location, *, part_size: int = DEFAULT_PART_SIZE) -> None:
        if not _PREFIX.fullmatch(location.key_prefix):
            raise InvalidInput("uploads.s3.key_prefix: empty, or path segments each ending in '/'",
                               field="uploads.s3.key_prefix")
        if part_size < MIN_PART_SIZE:
            raise InvalidInput(f"part_size: at least {MIN_PART_SIZE} bytes (S3's minimum part size)",
                               field="part_size")
        self._client = client
        self.bucket, self.prefix = location.bucket, location.key_prefix
        self.part_size = part_size
        self.location = f"s3://{self.bucket}/{self.prefix}" + (
            f" at {location.endpoint_url}" if location.endpoint_url else f" ({location.region})")

    # --- names ----------------------------------------------------------------------------------------

    def _key(self, storage_name: str) -> str:
        """The key of a storage name this store generated; anything else is refused."""
        if not isinstance(storage_name, str) or not _NAME.fullmatch(storage_name):
            raise InvalidInput("not a storage name", field="storage_name")
        return self.prefix + storage_name

    def _call(self, doing: str, operation: str, **arguments: Any) -> Any:
        try:
            return getattr(self._client, operation)(Bucket=self.bucket, **arguments)
        except _VENDOR_ERRORS as exc:
            raise _unavailable(self.bucket, doing, exc) from exc

    # --- writing --------------------------------------------------------------------------------------

    def put(self, chunks: Iterable[bytes], *, max_bytes: int) -> StoredFile:
        storage_name = secrets.token_hex(16)
        size, digest = self._write(self._key(storage_name), chunks, max_bytes=max_bytes)
        return StoredFile(storage_name, size, digest)

    def _write(self, key: str, chunks: Iterable[bytes], *, max_bytes: int,
               expected_sha256: str | None = None) -> tuple[int, str]:
        """Stream ``chunks`` to ``key``; published only when complete, within the limit and (when given) with
        the expected SHA-256. Errors raised by ``chunks`` pass through unchanged, after the abort."""
        digest, size, buffer = hashlib.sha256(), 0, bytearray()
        upload: _Multipart | None = None
        try:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:  # checked per chunk as it arrives, before it is sent
                    raise PayloadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes "
                                          "(uploads.upload_max_bytes)")
                digest.update(chunk)
                buffer += chunk
                while len(buffer) >= self.part_size:
                    upload = upload or _Multipart(self, key)
                    upload.send(bytes(buffer[:self.part_size]))
                    del buffer[:self.part_size]
            if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
                raise InvalidInput(f"{key} does not match its SHA-256 in the manifest", field="file")
            if upload is None:
                self._call("write an upload", "put_object", Key=key, Body=bytes(buffer))
            else:
                if buffer:
                    upload.send(bytes(buffer))
                upload.complete()
        except BaseException:
            if upload is not None:
                upload.abort()
            raise
        return size, digest.hexdigest()

    # --- reading --------------------------------------------------------------------------------------

    def _missing(self, exc: botocore.exceptions.ClientError, doing: str) -> NotFound:
        """A 404 names a missing object only when the bucket is there (a HEAD's 404 has no error code)."""
        if _code(exc) in ("NoSuchKey", "NotFound") or (_code(exc) == "404" and self._bucket_exists(doing)):
            return NotFound("the upload's file is missing")
        if _code(exc) == "404":
            raise DependencyUnavailable(f"the upload store (S3 bucket {self.bucket}) could not {doing}: "
                                        "NoSuchBucket", retry_after_seconds=30) from exc
        raise _unavailable(self.bucket, doing, exc) from exc

    def _bucket_exists(self, doing: str) -> bool:
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return True
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise _unavailable(self.bucket, doing, exc) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise _unavailable(self.bucket, doing, exc) from exc

    def _get(self, key: str, first: int = 0) -> dict[str, Any]:
        """GetObject from byte ``first`` on: ``NotFound`` for a missing object, DependencyUnavailable otherwise."""
        try:
            return self._client.get_object(Bucket=self.bucket, Key=key,
                                           **({"Range": f"bytes={first}-"} if first else {}))
        except botocore.exceptions.ClientError as exc:
            raise self._missing(exc, "read an upload") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise _unavailable(self.bucket, "read an upload", exc) from exc

    def open(self, storage_name: str) -> BinaryIO:
        """A reader already streaming from byte 0 (one GET); a seek elsewhere starts a ranged GET."""
        key = self._key(storage_name)
        answer = self._get(key)
        raw = _ObjectReader(self, key, int(answer["ContentLength"]), answer["Body"])
        return io.BufferedReader(raw, buffer_size=64 * 1024)

    def exists(self, storage_name: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(storage_name))
            return True
        except botocore.exceptions.ClientError as exc:
            self._missing(exc, "look for an upload")
            return False
        except botocore.exceptions.BotoCoreError as exc:
            raise _unavailable(self.bucket, "look for an upload", exc) from exc

    def delete(self, storage_name: str) -> None:
        self._call("delete an upload", "delete_object", Key=self._key(storage_name))  # absent is fine in S3

    # --- integrity ------------------------------------------------------------------------------------

    def _objects(self) -> Iterator[tuple[str, dict[str, Any]]]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix):]
                    if _NAME.fullmatch(name):  # quarantine/, replaced-*/ and anything an operator put there
                        yield name, item
        except _VENDOR_ERRORS as exc:
            raise _unavailable(self.bucket, "list the uploads", exc) from exc

    def _incomplete_uploads(self) -> Iterator[tuple[str, dict[str, Any]]]:
        pages = self._client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket,
                                                                              Prefix=self.prefix)
        try:
            for page in pages:
                for item in page.get("Uploads", []):
                    name = item["Key"][len(self.prefix):]
                    if _NAME.fullmatch(name):
                        yield f"{name}:{item['UploadId']}", item
        except _VENDOR_ERRORS as exc:
            raise _unavailable(self.bucket, "list the incomplete uploads", exc) from exc

    def entries(self) -> Iterator[StoredEntry]:
        for name, item in self._objects():
            yield StoredEntry(name, item["LastModified"].astimezone(UTC), False)
        for name, item in self._incomplete_uploads():
            yield StoredEntry(name, item["Initiated"].astimezone(UTC), True)

    def quarantine(self, storage_name: str, *, partial: bool = False) -> str:
        folder = f"{QUARANTINE}/{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        if not partial:
            return self._move(self._key(storage_name), f"{self.prefix}{folder}/{storage_name}")
        match = _PARTIAL.fullmatch(storage_name) if isinstance(storage_name, str) else None
        if match is None:
            raise InvalidInput("not an incomplete upload of this store", field="storage_name")
        key, upload_id = self.prefix + match["name"], match["upload_id"]
        if not _Multipart(self, key, upload_id).complete_as_found():
            return f"s3://{self.bucket}/{key} (an incomplete upload with no parts: aborted, nothing to keep)"
        return self._move(key, f"{self.prefix}{folder}/{match['name']}.partial")

    def _move(self, key: str, target: str) -> str:
        """Copy then delete (S3 has no rename); the managed copy handles objects past CopyObject's 5 GiB."""
        try:
            self._client.copy({"Bucket": self.bucket, "Key": key}, self.bucket, target)
        except _VENDOR_ERRORS as exc:
            if _code(exc) in _MISSING:
                raise NotFound(f"{key} is not in the bucket") from exc
            raise _unavailable(self.bucket, "move an upload", exc) from exc
        self._call("move an upload", "delete_object", Key=key)
        return f"s3://{self.bucket}/{target}"

    # --- backup and restore (tow_adapters.backup_archive) ----------------------------------------------

    def backup_objects(self) -> Iterator[StoredObject]:
        for name, item in self._objects():
            yield StoredObject(f"{name[:2]}/{name[2:4]}/{name}", int(item["Size"]),
                               item["LastModified"].astimezone(UTC), lambda name=name: self.open(name))

    def restore_object(self, relative_path: str, chunks: Iterable[bytes], *, sha256: str) -> str:
        """Write a backup's object back under its storage name (``ab/cd/<name>``), only if its content has
        ``sha256``; returns the storage name."""
        parts = relative_path.split("/")
        name = parts[-1]
        if len(parts) != 3 or not _NAME.fullmatch(name) or parts[:2] != [name[:2], name[2:4]]:
            raise InvalidInput(f"uploads/{relative_path} is not the path of an upload", field="file")
        self._write(self._key(name), chunks, max_bytes=1 << 62, expected_sha256=sha256)
        return name

    def set_aside(self, keep: set[str], folder: str) -> str | None:
        """Move every stored object not in ``keep`` under ``<key_prefix><folder>/``; returns where, if any moved."""
        moved = [name for name, _ in list(self._objects()) if name not in keep]
        for name in moved:
            self._move(self._key(name), f"{self.prefix}{folder}/{name}")
        return f"s3://{self.bucket}/{self.prefix}{folder}/" if moved else None


class _Multipart:
    """One multipart upload: parts sent in order, then completed or aborted."""

    def __init__(self, store: S3UploadStore, key: str, upload_id: str | None = None) -> None:
        self._store, self._key = store, key
        self._parts: list[dict[str, Any]] = []
        self._id = upload_id or store._call("start an upload", "create_multipart_upload", Key=key)["UploadId"]

    def send(self, body: bytes) -> None:
        number = len(self._parts) + 1
        answer = self._store._call("write an upload", "upload_part", Key=self._key, UploadId=self._id,
                                   PartNumber=number, Body=body)
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def complete(self) -> None:
        self._store._call("finish an upload", "complete_multipart_upload", Key=self._key, UploadId=self._id,
                          MultipartUpload={"Parts": self._parts})

    def abort(self) -> None:
        """Best effort: if the abort fails too, the incomplete upload is a partial file for `tow uploads verify`."""
        with contextlib.suppress(*_VENDOR_ERRORS, DependencyUnavailable):
            self._store._call("abort an upload", "abort_multipart_upload", Key=self._key, UploadId=self._id)

    def complete_as_found(self) -> bool:
        """Complete an upload someone else left unfinished with the parts it has; False (and aborted) if none."""
        pages = self._store._client.get_paginator("list_parts").paginate(
            Bucket=self._store.bucket, Key=self._key, UploadId=self._id)
        try:
            self._parts = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]}
                           for page in pages for p in page.get("Parts", [])]
        except _VENDOR_ERRORS as exc:
            if _code(exc) == "NoSuchUpload":
                raise NotFound(f"the incomplete upload of {self._key} is gone") from exc
            raise _unavailable(self._store.bucket, "list an incomplete upload", exc) from exc
        if not self._parts:
            self._store._call("abort an upload", "abort_multipart_upload", Key=self._key, UploadId=self._id)
            return False
        self.complete()
        return True


class _ObjectReader(io.RawIOBase):
    """A seekable reader over one object: a ranged GET from the current position, replaced after a seek."""

    def __init__(self, store: S3UploadStore, key: str, size: int, body: Any) -> None:
        self._store, self._key, self._size = store, key, size
        self._position = 0
        self._body: Any = body  # streaming from self._position, or None: fetch from there on the next read

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        if base + offset != self._position:
            self._drop_body()
            self._position = base + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        if self._position >= self._size or len(buffer) == 0:
            return 0
        if self._body is None:
            self._body = self._store._get(self._key, self._position)["Body"]
        try:
            data = self._body.read(len(buffer))
        except (*_VENDOR_ERRORS, OSError) as exc:
            raise _unavailable(self._store.bucket, "read an upload", exc) from exc
        buffer[:len(data)] = data
        self._position += len(data)
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            with contextlib.suppress(*_VENDOR_ERRORS, OSError):
                self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()
