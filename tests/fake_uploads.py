"""In-memory fakes of the upload ports (ARCHITECTURE practice 12): ``InMemoryUploadStore`` (the bytes),
kept honest by tests/contract/test_upload_store.py, which runs the same behaviour against it,
FsUploadStore and S3UploadStore; ``InMemoryUploadRecords`` (the rows), kept honest by tests/contract/test_upload_records.py
against PgUploadRecords."""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import BinaryIO

from tests.fake_records import InMemoryRecordStore, _Readable
from tests.fakes import InMemoryDirectory
from tow_core.access import Scope
from tow_core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from tow_core.uploads import NewUpload, StoredEntry, StoredFile, Upload, UploadPurpose

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


# The CHECK constraints of migration 0007 on uploads.
_SHA256 = re.compile(r"[0-9a-f]{64}")
_IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})


class InMemoryUploadRecords(_Readable):
    """The ``UploadRecords`` port over a dict, kept honest by tests/contract/test_upload_records.py.

    Visibility is ``PgUploadRecords.UPLOAD_READABLE`` in Python: attached → the pure policy on the record's
    scope (records from ``InMemoryRecordStore``); avatars → the user depicted and anyone sharing an
    organisation with them; logos → the policy on the organisation / project scope of the upload's
    organisation; other unattached uploads → their uploader; server admins → all; inactive → nothing.
    What the schema refuses is InvalidInput (Conflict for a storage name or an image subject taken),
    as PgUploadRecords maps it.
    """

    def __init__(self, directory: InMemoryDirectory, records: InMemoryRecordStore,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__(directory)
        self._records = records
        self._clock = clock
        self._ids = itertools.count(1)
        self.rows: dict[int, Upload] = {}

    def _store(self, upload: Upload, what: str) -> Upload:
        checks = (bool(_NAME.fullmatch(upload.storage_name)) and 1 <= len(upload.original_name) <= 255
                  and upload.size_bytes >= 0 and bool(_SHA256.fullmatch(upload.sha256))
                  and upload.image_format in (None, *_IMAGE_FORMATS)
                  and (upload.purpose is UploadPurpose.FILE) == (upload.subject_id is None)
                  and (upload.purpose is UploadPurpose.FILE or (upload.record_id is None and upload.image_format)))
        others = [u for u in self.rows.values() if u.id != upload.id]
        taken = any(u.storage_name == upload.storage_name for u in others) or (
            upload.purpose is not UploadPurpose.FILE
            and any((u.purpose, u.subject_id) == (upload.purpose, upload.subject_id) for u in others))
        references = (self._directory.organisation(upload.organisation_id) is not None
                      and (upload.uploader_id is None or self._directory.user(upload.uploader_id) is not None)
                      and (upload.record_id is None or upload.record_id in self._records.rows))
        if not checks:  # PostgreSQL checks a row's CHECK constraints, then unique indexes, then foreign keys
            raise InvalidInput(f"{what} is not valid: it violates a check constraint")
        if taken:
            raise Conflict(f"{what}: changed by someone else meanwhile, try again")
        if not references:
            raise InvalidInput(f"{what} is not valid: it names a missing organisation, user or record")
        self.rows[upload.id] = upload
        return upload

    def _change(self, upload_id: int, what: str, **changes) -> Upload:
        if upload_id not in self.rows:
            raise NotFound("upload not found")
        return self._store(replace(self.rows[upload_id], **changes), what)

    def add(self, new: NewUpload) -> Upload:
        return self._store(Upload(next(self._ids), new.organisation_id, new.uploader_id, new.storage_name,
                                  new.original_name, new.size_bytes, new.sha256, new.image_format,
                                  UploadPurpose.FILE, None, None, self._clock()), "the upload")

    def _may_read(self, principal_id: int, upload: Upload) -> bool:
        user = self._directory.user(principal_id)
        if user is None or not user.is_active:
            return False
        if user.is_server_admin:
            return True
        if upload.record_id is not None:
            return self._can_read(principal_id, self._records.rows[upload.record_id].scope)
        org, subject = upload.organisation_id, upload.subject_id
        if upload.purpose is UploadPurpose.AVATAR:
            mine = {o.id for o, _ in self._directory.organisations_of(principal_id)}
            return subject == principal_id or bool(mine & {o.id for o, _ in self._directory.organisations_of(subject)})
        if upload.purpose is UploadPurpose.ORGANISATION_LOGO:
            return subject == org and self._can_read(principal_id, Scope.organisation(org))
        if upload.purpose is UploadPurpose.PROJECT_LOGO:
            return self._can_read(principal_id, Scope.project(org, subject))
        return upload.uploader_id == principal_id

    def readable(self, principal_id: int, upload_id: int) -> Upload | None:
        upload = self.rows.get(upload_id)
        return upload if upload is not None and self._may_read(principal_id, upload) else None

    def for_update(self, upload_id: int) -> Upload | None:
        return self.rows.get(upload_id)

    def attachments_readable(self, principal_id: int, record_id: int) -> list[Upload]:
        return [u for _, u in sorted(self.rows.items()) if u.record_id == record_id and self._may_read(principal_id, u)]

    def attach(self, upload_id: int, record_id: int | None) -> Upload:
        return self._change(upload_id, "the attachment", record_id=record_id)

    def set_purpose(self, upload_id: int, purpose: UploadPurpose, subject_id: int | None) -> Upload:
        return self._change(upload_id, f"the {purpose.value.replace('_', ' ')}", purpose=UploadPurpose(purpose),
                            subject_id=subject_id)

    def current_image(self, purpose: UploadPurpose, subject_id: int) -> Upload | None:
        return next((u for u in self.rows.values() if (u.purpose, u.subject_id) == (purpose, subject_id)), None)

    def readable_images(self, principal_id: int, wanted: Mapping[UploadPurpose, Iterable[int]]
                        ) -> dict[UploadPurpose, dict[int, int]]:
        found: dict[UploadPurpose, dict[int, int]] = {}
        for purpose, subject_ids in wanted.items():
            ids = set(subject_ids)
            found[purpose] = {u.subject_id: u.id for u in self.rows.values()
                              if u.purpose is purpose and u.subject_id in ids and self._may_read(principal_id, u)}
        return found

    def delete(self, upload_id: int) -> None:
        self.rows.pop(upload_id, None)

    def storage_names(self) -> set[str]:
        return {u.storage_name for u in self.rows.values()}
