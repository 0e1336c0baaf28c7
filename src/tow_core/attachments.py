"""Use cases over uploads (SPEC §5): upload, read, download, attach, detach, delete, avatars and logos.

Rules:
- Uploading needs membership of the organisation the upload is made in, checked before the first byte
  is read and again when the row is added. The bytes are written and made durable (``receive_file``,
  outside any transaction) before the row is added (``record_upload``); if adding the row fails, the
  file is removed again.
- Reading (metadata, download, a record's attachment list) goes through ``UploadRecords.*_readable``,
  which decides visibility in SQL; anything the caller may not read is "not found" (404).
- Attaching an upload to a record, or detaching it, needs write access to that record (and, when
  moving it from one record to another, to both) and that the caller can read the upload. Only plain
  files are attached, and only to a record of the upload's own organisation.
- Deleting an upload: its uploader, an owner/admin of its organisation, or a server admin — and only
  one who can read it. The row goes in the transaction; the caller removes the file after commit.
- A deleted record takes its attachments with it (rows removed with the record): nothing attached to
  it stays readable; the files become orphans for ``tow uploads verify --repair``.
- Avatars, organisation logos and project logos must verify as raster images by content. A user sets
  only their own avatar from their own upload; an organisation logo needs owner/admin; a project logo
  needs project manage permission. Replacing or clearing one turns the previous image back into a plain
  unattached file of its uploader (nothing is deleted implicitly).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from tow_core.access import (
    Principal,
    can_administer_org,
    can_read_project,
    can_write_scope,
    is_server_admin,
)
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import AccessDenied, InvalidInput, NotFound
from tow_core.identity import Directory, ProjectGrants
from tow_core.records import DisplayId, Record, RecordStore
from tow_core.uploads import (
    NewUpload,
    RasterImageInspector,
    StoredFile,
    Upload,
    UploadPurpose,
    UploadRecords,
    UploadStore,
    sanitise_filename,
)


@dataclass(frozen=True, slots=True)
class UploadDesk:
    """What every use case here needs: the caller, the ports, in one transaction."""

    principal: Principal
    uploads: UploadRecords
    store: UploadStore
    records: RecordStore
    directory: Directory
    now: datetime

    def require_member(self, org_id: int) -> None:
        if not self.principal.is_active or org_id not in self.principal.org_roles:
            raise NotFound("organisation not found")

    def audit(self, upload: Upload, action: AuditAction, **details: object) -> None:
        self.directory.audit(AuditEntry(upload.organisation_id, self.principal.user_id, action,
                                        f"upload:{upload.id}", details))


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """A file durably in the store, not yet recorded: what ``record_upload`` turns into a row."""

    stored: StoredFile
    image_format: str | None


def receive_file(principal: Principal, store: UploadStore, images: RasterImageInspector, *, org_id: int,
                 chunks: Iterable[bytes], max_bytes: int) -> ReceivedFile:
    """Stream ``chunks`` (at most ``max_bytes``) into the store, for a member of ``org_id``. Needs no
    transaction: the HTTP layer holds no database connection while a slow client uploads."""
    if not principal.is_active or org_id not in principal.org_roles:
        raise NotFound("organisation not found")  # before reading a single byte
    stored = store.put(chunks, max_bytes=max_bytes)
    try:
        with store.open(stored.storage_name) as content:
            return ReceivedFile(stored, images.raster_format(content))
    except BaseException:
        store.delete(stored.storage_name)
        raise


def record_upload(desk: UploadDesk, *, org_id: int, received: ReceivedFile, original_name: str) -> Upload:
    """Add the row of a received file as an unattached upload of the caller (membership checked again:
    it may have been revoked while the file streamed). If this fails, the file is removed; if the
    transaction then fails to commit, the caller removes it (a file without a row is harmless, the
    reverse is not — and a kill between the two leaves an orphan for ``tow uploads verify``)."""
    try:
        desk.require_member(org_id)
        stored = received.stored
        return desk.uploads.add(NewUpload(org_id, desk.principal.user_id, stored.storage_name,
                                          sanitise_filename(original_name), stored.size_bytes, stored.sha256,
                                          received.image_format))
    except BaseException:
        desk.store.delete(received.stored.storage_name)
        raise


def upload_file(desk: UploadDesk, images: RasterImageInspector, *, org_id: int, chunks: Iterable[bytes],
                original_name: str, max_bytes: int) -> Upload:
    """``receive_file`` then ``record_upload``, in the caller's transaction (scripts, tests, imports)."""
    received = receive_file(desk.principal, desk.store, images, org_id=org_id, chunks=chunks, max_bytes=max_bytes)
    return record_upload(desk, org_id=org_id, received=received, original_name=original_name)


def readable_upload(desk: UploadDesk, upload_id: int) -> Upload:
    upload = desk.uploads.readable(desk.principal.user_id, upload_id)
    if upload is None or not desk.principal.is_active:
        raise NotFound("upload not found")
    return upload


def open_download(desk: UploadDesk, upload_id: int) -> tuple[Upload, BinaryIO]:
    """The upload and an open reader, if the caller may read it now (checked on every download)."""
    upload = readable_upload(desk, upload_id)
    return upload, desk.store.open(upload.storage_name)


def _readable_record(desk: UploadDesk, org_id: int, display_id: DisplayId) -> Record:
    desk.require_member(org_id)
    record = desk.records.readable_by_display_id(desk.principal.user_id, org_id, display_id)
    if record is None:
        raise NotFound(f"{display_id} not found")
    return record


def _require_record_write(desk: UploadDesk, record: Record) -> None:
    project = desk.directory.project(record.scope.ref_id) if record.scope.kind.value == "project" else None
    if not can_write_scope(desk.principal, record.scope, project.access if project else None):
        raise AccessDenied(f"you can read but not change {record.display_id}")


def _locked_readable(desk: UploadDesk, upload_id: int) -> Upload:
    readable_upload(desk, upload_id)
    locked = desk.uploads.for_update(upload_id)
    if locked is None:
        raise NotFound("upload not found")
    return locked


def require_attach_rights(desk: UploadDesk, org_id: int, display_id: DisplayId) -> None:
    """Who may attach a file to the record: a member who can write it (404 unless they can read it). Also
    checked before a page streams a file to attach; ``attach`` checks again when the row is changed."""
    _require_record_write(desk, _readable_record(desk, org_id, display_id))


def record_attachments(desk: UploadDesk, org_id: int, display_id: DisplayId) -> list[Upload]:
    """The record's attachments, if the caller can read the record (404 otherwise)."""
    record = _readable_record(desk, org_id, display_id)
    return desk.uploads.attachments_readable(desk.principal.user_id, record.id)


def attach(desk: UploadDesk, org_id: int, display_id: DisplayId, upload_id: int) -> Upload:
    """Attach the upload to the record; needs write access to the record (and to the record it was
    attached to before, if any)."""
    record = _readable_record(desk, org_id, display_id)
    upload = _locked_readable(desk, upload_id)
    if upload.organisation_id != org_id:
        raise NotFound("upload not found")  # ids of another organisation are not known here
    if upload.purpose is not UploadPurpose.FILE:
        raise InvalidInput(f"this upload is a {upload.purpose.value}; only plain files are attached",
                           field="upload_id")
    _require_record_write(desk, record)
    if upload.record_id not in (None, record.id):
        previous = desk.records.readable(desk.principal.user_id, org_id, upload.record_id)
        if previous is None:
            raise NotFound("upload not found")
        _require_record_write(desk, previous)
    attached = desk.uploads.attach(upload.id, record.id)
    desk.audit(attached, AuditAction.UPLOAD_ATTACHED, record=str(record.display_id))
    return attached


def detach(desk: UploadDesk, org_id: int, display_id: DisplayId, upload_id: int) -> Upload:
    """Detach the upload from the record (write access to the record); it becomes its uploader's."""
    record = _readable_record(desk, org_id, display_id)
    upload = _locked_readable(desk, upload_id)
    if upload.record_id != record.id:
        raise NotFound(f"upload {upload_id} is not attached to {display_id}")
    _require_record_write(desk, record)
    detached = desk.uploads.attach(upload.id, None)
    desk.audit(detached, AuditAction.UPLOAD_DETACHED, record=str(record.display_id))
    return detached


def delete_upload(desk: UploadDesk, upload_id: int) -> Upload:
    """Delete the row (uploader, organisation owners/admins, server admins); the caller removes the
    file once the transaction has committed (a file without a row is harmless, the reverse is not)."""
    upload = _locked_readable(desk, upload_id)
    p = desk.principal
    if not (upload.uploader_id == p.user_id or can_administer_org(p, upload.organisation_id)
            or is_server_admin(p)):
        raise AccessDenied("only its uploader or an administrator may delete an upload")
    desk.uploads.delete(upload.id)
    desk.audit(upload, AuditAction.UPLOAD_DELETED, name=upload.original_name,
               record_id=upload.record_id, sha256=upload.sha256)
    return upload


# --- avatars and logos --------------------------------------------------------------------------------


def _verified_image(desk: UploadDesk, images: RasterImageInspector, upload_id: int) -> Upload:
    """The caller's own unattached plain file, re-verified now as a raster image by its content."""
    upload = _locked_readable(desk, upload_id)
    if upload.uploader_id != desk.principal.user_id:
        raise AccessDenied("use an image you uploaded yourself")
    if upload.purpose is not UploadPurpose.FILE or upload.record_id is not None:
        raise InvalidInput("the upload is already in use; upload the image again", field="upload_id")
    with desk.store.open(upload.storage_name) as content:
        if images.raster_format(content) is None:
            raise InvalidInput("the upload is not a PNG, JPEG, GIF or WebP image (checked by content)",
                               field="upload_id")
    return upload


def _replace_image(desk: UploadDesk, upload: Upload | None, purpose: UploadPurpose, subject_id: int) -> Upload | None:
    previous = desk.uploads.current_image(purpose, subject_id)
    if previous is not None:
        desk.uploads.set_purpose(previous.id, UploadPurpose.FILE, None)
    if upload is None:
        return None
    return desk.uploads.set_purpose(upload.id, purpose, subject_id)


def require_organisation_logo_rights(principal: Principal, org_id: int) -> None:
    """Who may change the organisation logo (also checked before a page streams an image)."""
    if not principal.is_active or org_id not in principal.org_roles:
        raise NotFound("organisation not found")
    if not can_administer_org(principal, org_id):
        raise AccessDenied("only organisation owners and admins change the logo")


def require_project_logo_rights(directory: ProjectGrants, principal: Principal, org_id: int, project_id: int) -> None:
    """Who may change a project logo (also checked before a page streams an image)."""
    if not principal.is_active or org_id not in principal.org_roles:
        raise NotFound("organisation not found")
    project = directory.project(project_id)
    if project is None or project.organisation_id != org_id or not can_read_project(principal, project.access):
        raise NotFound("project not found")
    if not project.managed_by(principal):
        raise AccessDenied("changing the project logo needs the project's manage permission")


def set_avatar(desk: UploadDesk, images: RasterImageInspector, upload_id: int | None) -> Upload | None:
    """Set (or with ``None`` clear) the caller's profile image."""
    upload = None if upload_id is None else _verified_image(desk, images, upload_id)
    return _replace_image(desk, upload, UploadPurpose.AVATAR, desk.principal.user_id)


def set_organisation_logo(desk: UploadDesk, images: RasterImageInspector, org_id: int,
                          upload_id: int | None) -> Upload | None:
    """Set or clear the organisation's logo: owners and admins only."""
    require_organisation_logo_rights(desk.principal, org_id)
    upload = None if upload_id is None else _verified_image(desk, images, upload_id)
    if upload is not None and upload.organisation_id != org_id:
        raise NotFound("upload not found")
    return _replace_image(desk, upload, UploadPurpose.ORGANISATION_LOGO, org_id)


def set_project_logo(desk: UploadDesk, images: RasterImageInspector, org_id: int, project_id: int,
                     upload_id: int | None) -> Upload | None:
    """Set or clear a project's logo: needs the project's manage permission."""
    require_project_logo_rights(desk.directory, desk.principal, org_id, project_id)
    upload = None if upload_id is None else _verified_image(desk, images, upload_id)
    if upload is not None and upload.organisation_id != org_id:
        raise NotFound("upload not found")
    return _replace_image(desk, upload, UploadPurpose.PROJECT_LOGO, project_id)


def current_image(desk: UploadDesk, purpose: UploadPurpose, subject_id: int) -> Upload:
    """The subject's avatar or logo, if the caller may read it. "None set" and "hidden from you" are the
    same 404, so nobody learns whether a stranger has a profile image."""
    current = desk.uploads.current_image(purpose, subject_id)
    readable = None if current is None else desk.uploads.readable(desk.principal.user_id, current.id)
    if readable is None or not desk.principal.is_active:
        raise NotFound(f"no {purpose.value.replace('_', ' ')} found")
    return readable


def visible_images(principal: Principal, uploads: UploadRecords, purpose: UploadPurpose,
                   subject_ids: Iterable[int]) -> dict[int, int]:
    """Subject id → upload id of each avatar/logo among ``subject_ids`` the caller may read (for pages
    showing them; "none set" and "hidden from you" are both simply absent)."""
    return visible_images_of(principal, uploads, {purpose: subject_ids})[purpose]


def visible_images_of(principal: Principal, uploads: UploadRecords, wanted: Mapping[UploadPurpose, Iterable[int]]
                      ) -> dict[UploadPurpose, dict[int, int]]:
    """``visible_images`` for several purposes in one read (a page's frame: avatar, logo, project logos)."""
    if not principal.is_active:
        return {purpose: {} for purpose in wanted}
    return uploads.readable_images(principal.user_id, wanted)
