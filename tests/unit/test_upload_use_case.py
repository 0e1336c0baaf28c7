"""upload_file over fakes: the order that keeps the store and the rows consistent (SPEC §5)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from tests.fake_uploads import InMemoryUploadStore
from tow_core.access import OrgRole, Principal
from tow_core.attachments import UploadDesk, upload_file
from tow_core.errors import Conflict, NotFound, PayloadTooLarge
from tow_core.uploads import NewUpload, Upload, UploadPurpose


@dataclass
class RowsThatRecordOrFail:
    """Keeps what would be inserted; ``fail`` makes the insert fail like a lost race in PostgreSQL."""

    fail: bool = False
    added: list[NewUpload] = field(default_factory=list)

    def add(self, new: NewUpload) -> Upload:
        if self.fail:
            raise Conflict("the upload: changed by someone else meanwhile, try again")
        self.added.append(new)
        return Upload(len(self.added), new.organisation_id, new.uploader_id, new.storage_name, new.original_name,
                      new.size_bytes, new.sha256, new.image_format, UploadPurpose.FILE, None, None,
                      datetime.now(UTC))


class NoImages:
    def raster_format(self, content: io.BufferedIOBase) -> str | None:
        return None


def desk(rows, store, org_roles=None) -> UploadDesk:
    principal = Principal.build(7, org_roles={1: OrgRole.MEMBER} if org_roles is None else org_roles)
    return UploadDesk(principal, rows, store, records=None, directory=None, now=datetime.now(UTC))


def test_the_row_names_the_durable_file_and_the_sanitised_name():
    store, rows = InMemoryUploadStore(), RowsThatRecordOrFail()
    upload = upload_file(desk(rows, store), NoImages(), org_id=1, chunks=[b"ab", b"c"], original_name="../a\u202eb.txt",
                         max_bytes=3)
    assert rows.added[0].original_name == "_ab.txt" and upload.size_bytes == 3
    assert store.exists(upload.storage_name)


def test_a_failed_insert_removes_the_file_again():
    store = InMemoryUploadStore()
    with pytest.raises(Conflict):
        upload_file(desk(RowsThatRecordOrFail(fail=True), store), NoImages(), org_id=1, chunks=[b"x"],
                    original_name="x", max_bytes=10)
    assert store.files == {}


def test_too_large_stores_nothing_and_adds_no_row():
    store, rows = InMemoryUploadStore(), RowsThatRecordOrFail()
    with pytest.raises(PayloadTooLarge):
        upload_file(desk(rows, store), NoImages(), org_id=1, chunks=[b"x" * 4], original_name="x", max_bytes=3)
    assert store.files == {} and rows.added == []


def test_outsiders_are_refused_before_a_single_byte_is_read():
    pulled = []

    def body():
        pulled.append(1)
        yield b"x"

    store, rows = InMemoryUploadStore(), RowsThatRecordOrFail()
    with pytest.raises(NotFound):
        upload_file(desk(rows, store, org_roles={2: OrgRole.OWNER}), NoImages(), org_id=1, chunks=body(),
                    original_name="x", max_bytes=3)
    assert pulled == [] and store.files == {} and rows.added == []
