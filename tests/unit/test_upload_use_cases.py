"""UploadUseCases over the in-memory fakes (tow_core.use_cases.uploads): the two units of work of a streamed
file — refused before a byte of the body is read, recorded with the caller loaded afresh, the file deleted
whenever its row does not commit — and the reads and changes the API and the pages call."""

from __future__ import annotations

from typing import BinaryIO

import pytest

from tests.fake_tokens import InMemoryAccessTokens
from tests.fake_unit_of_work import fake_transactions, with_inbox
from tests.fake_uploads import InMemoryUploadRecords, InMemoryUploadStore
from tests.unit.records_world import World
from tow_core.errors import AccessDenied, InvalidInput, NotAuthenticated, NotConfigured, NotFound, PayloadTooLarge
from tow_core.records import RecordType
from tow_core.unit_of_work import SessionCredential
from tow_core.uploads import UploadPurpose
from tow_core.use_cases import uploads as use_cases
from tow_core.use_cases.uploads import UploadUseCases

PNG = b"\x89PNG\r\n\x1a\n a picture"


class FirstBytesImages:
    """A PNG is what starts with the PNG signature (the real inspector decodes it; judged by content here too)."""

    def raster_format(self, content: BinaryIO) -> str | None:
        return "png" if content.read(8) == PNG[:8] else None


class UploadWorld(World):
    def __init__(self) -> None:
        super().__init__()
        self.rows = InMemoryUploadRecords(self.directory, self.records, self.clock)
        self.store = InMemoryUploadStore()
        self.tokens = InMemoryAccessTokens()  # the profile page lists your personal access tokens
        self.uploads = self.use_cases(self.store)

    def use_cases(self, store: InMemoryUploadStore | None, max_bytes: int = 1000) -> UploadUseCases:
        transactions = fake_transactions(self.clock, rollback=(*self._tables, self.rows), **with_inbox(
            self.clock, directory=self.directory, records=self.records, history=self.keeping, uploads=self.rows,
            tokens=self.tokens))
        return UploadUseCases(transactions, store, FirstBytesImages(), max_bytes)


class Body:
    """A request body the use case opens once the caller may send it; ``while_streaming`` runs as it arrives."""

    def __init__(self, content: bytes, name: str = "notes.txt", while_streaming=lambda: None) -> None:
        self.content, self.name, self.while_streaming = content, name, while_streaming
        self.opened_with: list[int] = []

    def __call__(self, max_bytes: int):
        self.opened_with.append(max_bytes)

        def chunks():
            yield self.content[:3]
            self.while_streaming()
            yield self.content[3:]
        return self.name, chunks()


@pytest.fixture
def w() -> UploadWorld:
    return UploadWorld()


def test_an_upload_is_checked_before_its_body_is_opened_and_recorded_as_the_callers_alone(w):
    body = Body(b"meeting notes", "../a\u202eb.txt")
    upload = w.uploads.upload(w.credential("bob"), w.org, body)
    assert body.opened_with == [1000]  # opened once, with the limit
    assert (upload.original_name, upload.size_bytes, upload.uploader_id) == ("_ab.txt", 13, w.ids["bob"])
    meta, reader = w.uploads.download(w.credential("bob"), upload.id)
    with reader:
        assert meta == upload and reader.read() == b"meeting notes"
    with pytest.raises(NotFound):  # unattached: its uploader's alone
        w.uploads.get(w.credential("cy"), upload.id)

    refused = Body(b"x")
    with pytest.raises(NotFound):  # not a member of Acme: refused before the body is opened
        w.uploads.upload(w.credential("oscar"), w.org, refused)
    with pytest.raises(NotAuthenticated):
        w.uploads.upload(SessionCredential("forged"), w.org, refused)
    assert refused.opened_with == [] and len(w.store.files) == 1 and len(w.rows.rows) == 1


def test_revoked_while_the_body_streams_keeps_neither_file_nor_row(w):
    bob = w.credential("bob")
    body = Body(b"half a file", while_streaming=lambda: w.directory.set_active(w.ids["bob"], False))
    with pytest.raises(NotAuthenticated):
        w.uploads.upload(bob, w.org, body)
    assert w.store.files == {} and w.rows.rows == {}


def test_too_large_keeps_nothing(w):
    small = w.use_cases(w.store, max_bytes=5)
    with pytest.raises(PayloadTooLarge):
        small.upload(w.credential("bob"), w.org, Body(b"more than five"))
    assert w.store.files == {} and w.rows.rows == {}


def test_attaching_a_sent_file_needs_write_access_checked_before_the_body(w):
    record = w.create("ada", RecordType.DECISION, "Pick a database", w.project("APP"))
    body = Body(b"benchmark")
    with pytest.raises(AccessDenied):  # Bob only views APP: refused before a byte is read
        w.uploads.attach_file(w.credential("bob"), w.org, record.display_id, body)
    with pytest.raises(NotFound):  # Cy cannot even read it
        w.uploads.attach_file(w.credential("cy"), w.org, record.display_id, body)
    assert body.opened_with == [] and w.store.files == {}

    attached = w.uploads.attach_file(w.credential("ada"), w.org, record.display_id, body)
    assert attached.record_id == record.id
    assert [u.id for u in w.uploads.attachments_of(w.credential("bob"), w.org, record.display_id)] == [attached.id]
    detached = w.uploads.detach(w.credential("ada"), w.org, record.display_id, attached.id)
    assert detached.record_id is None and w.uploads.attachments_of(w.credential("ada"), w.org, record.display_id) == []


def test_a_file_whose_attachment_fails_after_it_arrived_is_rolled_back_and_deleted(w):
    record = w.create("bob", RecordType.DECISION, "Eng only", w.group())
    leaves_eng = Body(b"design doc", while_streaming=lambda: w.directory.remove_group_member(w.eng, w.ids["bob"]))
    with pytest.raises(NotFound):  # no longer reads the group's record when the row is to be added
        w.uploads.attach_file(w.credential("bob"), w.org, record.display_id, leaves_eng)
    assert w.rows.rows == {} and w.store.files == {}  # the row was rolled back, the file deleted


def test_an_image_form_keeps_only_images_and_only_from_those_who_may_change_it(w):
    ada, bob = w.credential("ada"), w.credential("bob")
    with pytest.raises(InvalidInput, match="not a PNG"):
        w.uploads.receive_avatar(bob, w.org, Body(b"%PDF-1.4 not an image"))
    assert w.store.files == {} and w.rows.rows == {}

    avatar = w.uploads.receive_avatar(bob, w.org, Body(PNG, "me.png"))
    assert (avatar.purpose, avatar.subject_id) == (UploadPurpose.AVATAR, w.ids["bob"])
    shown, reader = w.uploads.avatar(ada, w.ids["bob"])  # Ada shares Acme with Bob
    with reader:
        assert shown.id == avatar.id and reader.read() == PNG
    with pytest.raises(NotFound):
        w.uploads.avatar(w.credential("oscar"), w.ids["bob"])

    logo = Body(PNG, "logo.png")
    with pytest.raises(AccessDenied):  # a member: refused before the image is read
        w.uploads.receive_organisation_logo(bob, w.org, logo)
    with pytest.raises(AccessDenied):  # a viewer of APP does not manage it
        w.uploads.receive_project_logo(bob, w.org, w.projects["APP"], logo)
    assert logo.opened_with == []
    org_logo = w.uploads.receive_organisation_logo(ada, w.org, logo)
    assert w.uploads.organisation_logo(bob, w.org)[0].id == org_logo.id
    assert w.uploads.set_organisation_logo(ada, w.org, None) is None
    with pytest.raises(NotFound):
        w.uploads.organisation_logo(bob, w.org)

    project_logo = w.uploads.receive_project_logo(ada, w.org, w.projects["OPS"], Body(PNG, "ops.png"))
    assert w.uploads.project_logo(bob, w.org, w.projects["OPS"])[0].id == project_logo.id
    with pytest.raises(NotFound):  # asked for through another organisation
        w.uploads.project_logo(w.credential("oscar"), w.other_org, w.projects["OPS"])


def test_deleting_removes_the_row_then_the_file_and_only_for_its_uploader_or_an_admin(w):
    record = w.create("ada", RecordType.DECISION, "Pick a database", w.org_scope)
    upload = w.uploads.attach_file(w.credential("bob"), w.org, record.display_id, Body(b"old draft"))
    with pytest.raises(AccessDenied):  # Cy reads it, but neither uploaded it nor administers Acme
        w.uploads.delete(w.credential("cy"), upload.id)
    with pytest.raises(NotFound):  # another organisation's owner does not even see it
        w.uploads.delete(w.credential("oscar"), upload.id)
    assert w.store.exists(upload.storage_name) and upload.id in w.rows.rows

    w.uploads.delete(w.credential("ada"), upload.id)  # Acme's owner
    assert not w.store.exists(upload.storage_name) and w.rows.rows == {}
    with pytest.raises(NotFound):
        w.uploads.get(w.credential("bob"), upload.id)


def test_a_server_without_an_upload_store_says_uploads_are_not_configured(w):
    off = w.use_cases(None)
    with pytest.raises(NotConfigured):
        off.upload(w.credential("bob"), w.org, Body(b"x"))
    with pytest.raises(NotConfigured):
        off.set_avatar(w.credential("bob"), None)
    framed = off.profile(w.credential("bob"), w.org, None)
    assert framed.content.uploads_enabled is False and framed.frame.user.id == w.ids["bob"]
    assert framed.content.tokens == []
    assert w.uploads.profile(w.credential("bob"), w.org, "APP").content.uploads_enabled is True
    with pytest.raises(NotFound):  # a project Bob cannot read
        w.uploads.profile(w.credential("bob"), w.org, "SEC")


def test_what_other_pages_show_member_avatars_managed_projects_and_a_records_files(w):
    avatar = w.uploads.receive_avatar(w.credential("bob"), w.org, Body(PNG, "me.png"))
    record = w.create("ada", RecordType.DECISION, "Pick a database", w.org_scope)
    attached = w.uploads.attach_file(w.credential("ada"), w.org, record.display_id, Body(b"notes"))
    with w.uploads.transactions.acting_as(w.credential("cy")) as acting:
        assert use_cases.member_avatars(acting, [w.ids["bob"], w.ids["ada"]]) == {w.ids["bob"]: avatar.id}
        assert [u.id for u in use_cases.record_files(acting, w.store, w.org, record.display_id)] == [attached.id]
        assert use_cases.record_files(acting, None, w.org, record.display_id) == []
        projects = list(w.directory.projects(w.org))
        assert use_cases.managed_project_ids(acting.principal, projects) == set()
    ada = w.directory.principal(w.ids["ada"])
    assert use_cases.managed_project_ids(ada, projects) == {p.id for p in projects}


def test_set_avatar_takes_only_the_callers_own_uploaded_image(w):
    png = w.uploads.upload(w.credential("bob"), w.org, Body(PNG, "me.png"))
    with pytest.raises(NotFound):  # someone else's unattached upload is not known to Ada
        w.uploads.set_avatar(w.credential("ada"), png.id)
    text = w.uploads.upload(w.credential("bob"), w.org, Body(b"plain text"))
    with pytest.raises(InvalidInput):  # checked by content
        w.uploads.set_avatar(w.credential("bob"), text.id)
    assert w.uploads.set_avatar(w.credential("bob"), png.id).purpose is UploadPurpose.AVATAR
    assert w.uploads.set_avatar(w.credential("bob"), None) is None  # cleared: a plain file of Bob's again
    assert w.uploads.get(w.credential("bob"), png.id).purpose is UploadPurpose.FILE
    assert w.store.files[png.storage_name] == PNG
