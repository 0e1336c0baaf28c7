"""The ``UploadRecords`` port's behaviour (SPEC §5 attachment permissions), against its in-memory fake
(``InMemoryUploadRecords``) and ``PgUploadRecords`` on a real PostgreSQL: rows stored and read back,
attachments readable exactly when their record is, avatars and logos by who may see their subject,
other files by their uploader, server admins everything, inactive users nothing — and what the schema
refuses.

The world is built through the ``Directory`` and ``RecordStore`` ports. On PostgreSQL each test runs in one
transaction that is rolled back. The random-world differential for these rules is test_uploads_leak.py.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import replace

import pytest

from tests.fake_records import InMemoryRecordStore
from tests.fake_uploads import InMemoryUploadRecords
from tests.fakes import InMemoryDirectory
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.records import PgRecordStore
from tow_adapters.postgres.uploads import PgUploadRecords
from tow_core.access import OrgRole, ProjectRole, Scope, Visibility
from tow_core.errors import Conflict, InvalidInput, NotFound
from tow_core.identity import Project, ProjectStatus, WorkflowMode
from tow_core.records import NewRecord, RecordType
from tow_core.uploads import NewUpload, UploadPurpose

MISSING = 10**12
AVATAR, ORG_LOGO, PROJECT_LOGO = UploadPurpose.AVATAR, UploadPurpose.ORGANISATION_LOGO, UploadPurpose.PROJECT_LOGO


@pytest.fixture(scope="module")
def uploads_engine(embedded_postgres):
    embedded_postgres.ensure_database("upload_records_contract")
    engine = create_engine(embedded_postgres.url("upload_records_contract"), PoolOptions(pool_size=2, max_overflow=1))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()


class Org:
    """Acme: an admin, alice (granted the restricted project APP), bob (not), an outsider, a server admin
    who is no member, and carol, a member of another organisation only. One record per scope kind."""

    def __init__(self, directory, records, uploads) -> None:
        self.directory, self.records, self.uploads = directory, records, uploads
        self._names = itertools.count(1)
        self.id = self.organisation("acme")
        self.other = self.organisation("other")
        self.admin, self.alice, self.bob, self.outsider, self.carol = (
            self.user(name) for name in ("admin", "alice", "bob", "out", "carol"))
        self.root = directory.add_user(f"root-{time.monotonic_ns()}@example.com", "root", None, server_admin=True).id
        for user, role in ((self.admin, OrgRole.ADMIN), (self.alice, OrgRole.MEMBER), (self.bob, OrgRole.MEMBER)):
            directory.set_membership(self.id, user, role)
        directory.set_membership(self.other, self.carol, OrgRole.OWNER)
        self.app = directory.add_project(Project(0, self.id, "APP", "App", "", None, Visibility.RESTRICTED,
                                                 ProjectStatus.ACTIVE)).id
        directory.put_grant(self.app, user_id=self.alice, group_id=None, role=ProjectRole.VIEWER)
        self.shared = self.record("Shared", Scope.organisation(self.id))
        self.in_app = self.record("In APP", Scope.project(self.id, self.app))
        self.bobs = self.record("Bob's", Scope.private(self.id, self.bob))
        self.everyone = (self.admin, self.alice, self.bob, self.outsider, self.carol, self.root)

    def organisation(self, name: str) -> int:
        return self.directory.add_organisation(name, WorkflowMode.ORGANIZATION).id

    def user(self, name: str) -> int:
        return self.directory.add_user(f"{name}-{time.monotonic_ns()}@example.com", name, None,
                                       server_admin=False).id

    def record(self, title: str, scope: Scope) -> int:
        new = NewRecord(self.id, RecordType.DOC, "DOC", scope, title, "", "active", self.admin, {})
        return self.records.add(new, self.records.allocate_number(self.id, "DOC")).id

    def new(self, uploader: int, *, image_format: str | None = None, org_id: int | None = None, **changes
            ) -> NewUpload:
        n = next(self._names)
        new = NewUpload(org_id or self.id, uploader, f"{n:032x}", f"file {n}.png", n, hashlib.sha256(b"%d" % n)
                        .hexdigest(), image_format)
        return replace(new, **changes)

    def upload(self, uploader: int, **kw):
        return self.uploads.add(self.new(uploader, **kw))

    def readers(self, upload_id: int) -> set[int]:
        return {u for u in self.everyone if self.uploads.readable(u, upload_id) is not None}


@pytest.fixture(params=["fake", "postgres"])
def org(request) -> Org:
    if request.param == "fake":
        directory = InMemoryDirectory()
        records = InMemoryRecordStore(directory)
        return Org(directory, records, InMemoryUploadRecords(directory, records))
    conn = request.getfixturevalue("uploads_engine").connect()
    transaction = conn.begin()
    request.addfinalizer(conn.close)
    request.addfinalizer(transaction.rollback)
    return Org(PgDirectory(conn), PgRecordStore(conn), PgUploadRecords(conn))


# --- rows ------------------------------------------------------------------------------------------------


def test_an_upload_row_is_stored_and_read_back_as_an_unattached_file(org):
    new = org.new(org.bob, image_format="png")
    upload = org.uploads.add(new)
    assert (upload.organisation_id, upload.uploader_id, upload.storage_name, upload.original_name, upload.size_bytes,
            upload.sha256, upload.image_format) == (new.organisation_id, new.uploader_id, new.storage_name,
                                                    new.original_name, new.size_bytes, new.sha256, "png")
    assert (upload.purpose, upload.subject_id, upload.record_id) == (UploadPurpose.FILE, None, None)
    assert upload.created_at.tzinfo is not None and upload.media_type == "image/png"
    assert org.uploads.readable(org.bob, upload.id) == upload == org.uploads.for_update(upload.id)
    other = org.upload(org.alice)
    assert org.uploads.storage_names() == {upload.storage_name, other.storage_name}
    org.uploads.delete(upload.id)
    org.uploads.delete(upload.id)  # already gone: nothing to do
    assert org.uploads.for_update(upload.id) is None and org.uploads.storage_names() == {other.storage_name}
    assert org.uploads.readable(org.root, MISSING) is None and org.uploads.for_update(MISSING) is None


@pytest.mark.parametrize("bad", ["storage-name", "sha256", "empty-name", "long-name", "negative-size",
                                 "image-format", "missing-organisation", "missing-uploader"])
def test_add_refuses_what_the_schema_refuses_and_keeps_nothing(org, bad):
    changes = {"storage-name": {"storage_name": "../../etc/passwd"}, "sha256": {"sha256": "F" * 64},
               "empty-name": {"original_name": ""}, "long-name": {"original_name": "x" * 256},
               "negative-size": {"size_bytes": -1}, "image-format": {"image_format": "svg"},
               "missing-organisation": {"org_id": MISSING}, "missing-uploader": {"uploader": MISSING}}[bad]
    uploader = changes.pop("uploader", org.bob)
    with pytest.raises(InvalidInput):
        org.uploads.add(org.new(uploader, **changes))
    assert org.uploads.storage_names() == set()


def test_a_storage_name_names_one_row(org):
    first = org.upload(org.bob)
    with pytest.raises(Conflict):
        org.uploads.add(org.new(org.alice, storage_name=first.storage_name))
    assert org.uploads.storage_names() == {first.storage_name}


# --- who reads what --------------------------------------------------------------------------------------


def test_an_unattached_file_is_read_by_its_uploader_and_server_admins_only(org):
    upload = org.upload(org.bob)
    assert org.readers(upload.id) == {org.bob, org.root}  # not even the organisation's admin
    org.directory.set_active(org.bob, False)
    org.directory.set_active(org.root, False)
    assert org.readers(upload.id) == set()  # inactive users read nothing


def test_an_attachment_is_read_exactly_when_its_record_is(org):
    upload = org.upload(org.bob)
    attached = org.uploads.attach(upload.id, org.in_app)
    assert attached == replace(upload, record_id=org.in_app) == org.uploads.for_update(upload.id)
    assert org.readers(upload.id) == {org.admin, org.alice, org.root}  # the uploader cannot read APP: not he
    private = org.uploads.attach(org.upload(org.alice).id, org.bobs)
    assert org.readers(private.id) == {org.bob, org.root}
    later = org.uploads.attach(org.upload(org.admin).id, org.in_app)
    assert org.uploads.attachments_readable(org.alice, org.in_app) == [attached, later]  # oldest first
    assert org.uploads.attachments_readable(org.bob, org.in_app) == []
    assert org.uploads.attachments_readable(org.root, org.bobs) == [private]
    org.directory.delete_grant(org.directory.grants(org.app)[0].id)
    assert org.uploads.attachments_readable(org.alice, org.in_app) == []  # revoked: hidden at once
    detached = org.uploads.attach(upload.id, None)
    assert detached.record_id is None and org.readers(upload.id) == {org.bob, org.root}


def test_attaching_names_an_existing_upload_and_record_and_only_plain_files(org):
    upload = org.upload(org.bob, image_format="png")
    with pytest.raises(NotFound):
        org.uploads.attach(MISSING, org.shared)
    with pytest.raises(InvalidInput):
        org.uploads.attach(upload.id, MISSING)
    avatar = org.uploads.set_purpose(upload.id, AVATAR, org.bob)
    with pytest.raises(InvalidInput):  # images of a subject are never attached
        org.uploads.attach(upload.id, org.shared)
    assert org.uploads.for_update(upload.id) == avatar


def test_an_avatar_is_seen_by_its_user_and_everyone_sharing_an_organisation(org):
    avatar = org.uploads.set_purpose(org.upload(org.bob, image_format="png").id, AVATAR, org.bob)
    assert (avatar.purpose, avatar.subject_id) == (AVATAR, org.bob)
    assert org.readers(avatar.id) == {org.bob, org.admin, org.alice, org.root}  # not carol, not the outsider
    assert org.uploads.current_image(AVATAR, org.bob) == avatar and org.uploads.current_image(AVATAR, org.alice) is None
    assert org.uploads.readable_images(org.alice, {AVATAR: [org.bob, org.alice, MISSING]})[AVATAR] == {
        org.bob: avatar.id}
    assert org.uploads.readable_images(org.carol, {AVATAR: [org.bob]})[AVATAR] == {}
    assert org.uploads.readable_images(org.alice, {AVATAR: []})[AVATAR] == {}
    org.directory.set_membership(org.other, org.bob, OrgRole.MEMBER)
    assert org.uploads.readable_images(org.carol, {AVATAR: [org.bob]})[AVATAR] == {org.bob: avatar.id}


def test_logos_are_seen_by_readers_of_their_organisation_or_project(org):
    org_logo = org.uploads.set_purpose(org.upload(org.admin, image_format="png").id, ORG_LOGO, org.id)
    app_logo = org.uploads.set_purpose(org.upload(org.admin, image_format="webp").id, PROJECT_LOGO, org.app)
    assert org.readers(org_logo.id) == {org.admin, org.alice, org.bob, org.root}
    assert org.readers(app_logo.id) == {org.admin, org.alice, org.root}
    assert org.uploads.readable_images(org.bob, {PROJECT_LOGO: [org.app]})[PROJECT_LOGO] == {}
    assert org.uploads.readable_images(org.alice, {PROJECT_LOGO: [org.app]})[PROJECT_LOGO] == {
        org.app: app_logo.id}
    assert org.uploads.readable_images(org.bob, {ORG_LOGO: [org.id, org.other]})[ORG_LOGO] == {org.id: org_logo.id}
    avatar = org.uploads.set_purpose(org.upload(org.bob, image_format="png").id, AVATAR, org.bob)
    several = org.uploads.readable_images(org.alice, {AVATAR: [org.bob], PROJECT_LOGO: [org.app],
                                                      ORG_LOGO: [org.id]})  # one read for a page's frame
    assert several == {AVATAR: {org.bob: avatar.id}, PROJECT_LOGO: {org.app: app_logo.id},
                       ORG_LOGO: {org.id: org_logo.id}}
    assert org.uploads.readable_images(org.alice, {AVATAR: [org.app]}) == {AVATAR: {}}  # a project id: no avatar
    foreign = org.uploads.set_purpose(org.upload(org.admin, image_format="png").id, ORG_LOGO, org.other)
    assert org.readers(foreign.id) == {org.root}  # a logo names its own organisation, or nobody member sees it


def test_one_image_per_subject_and_only_verified_images_depict_one(org):
    first = org.uploads.set_purpose(org.upload(org.bob, image_format="png").id, AVATAR, org.bob)
    second = org.upload(org.bob, image_format="gif")
    with pytest.raises(Conflict):
        org.uploads.set_purpose(second.id, AVATAR, org.bob)
    assert org.uploads.current_image(AVATAR, org.bob) == first
    assert org.uploads.set_purpose(second.id, AVATAR, org.alice).subject_id == org.alice  # another subject
    plain = org.upload(org.bob)  # not a verified image
    for purpose, subject in ((AVATAR, org.carol), (ORG_LOGO, None), (UploadPurpose.FILE, org.bob)):
        with pytest.raises(InvalidInput):
            org.uploads.set_purpose(plain.id, purpose, subject)
    with pytest.raises(NotFound):
        org.uploads.set_purpose(MISSING, AVATAR, org.carol)
    back = org.uploads.set_purpose(first.id, UploadPurpose.FILE, None)
    assert (back.purpose, back.subject_id) == (UploadPurpose.FILE, None) and org.readers(first.id) == {org.bob,
                                                                                                       org.root}
