"""Uploads (SPEC §5): upload a file, read and download it, attach and detach it, delete it, avatars and logos,
and the files sent with page forms. The rules are ``tow_core.attachments``.

A file is received in two short units of work with none held while its bytes arrive (a slow client must not
hold a pooled connection): the first checks the caller may send it — before a byte of the body is read — the
body is then streamed into the ``UploadStore``, and the second records the upload and puts it to use with the
caller loaded afresh (revoked meanwhile: NotAuthenticated). A file whose row does not commit is deleted again:
no row names it (a kill in between leaves an orphan for ``tow uploads verify``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, TypeVar

from tow_core import access_tokens, attachments
from tow_core.access import Principal
from tow_core.access_tokens import AccessToken
from tow_core.attachments import ReceivedFile, UploadDesk
from tow_core.errors import InvalidInput, NotConfigured, NotFound
from tow_core.identity import Project
from tow_core.notifications import DEFAULT_DIGEST, Delivery, Digest, NotificationKind
from tow_core.records import DisplayId
from tow_core.unit_of_work import Acting, Credential, Transactions
from tow_core.uploads import RasterImageInspector, Upload, UploadPurpose, UploadStore
from tow_core.use_cases.frame import Framed, frame_of
from tow_core.use_cases.notifications import notification_preferences

T = TypeVar("T")

# Opens the request body once the caller may send it, given the upload limit in bytes: (the client's file
# name, the file's bytes as they arrive). Called on the use case's thread, with no unit of work open.
FileBody = Callable[[int], tuple[str, Iterable[bytes]]]
# Refuses (NotFound / AccessDenied) before a byte of the body is read.
Check = Callable[[UploadDesk], None]
# Records the received file and puts it to use, in the unit of work that commits both.
Keep = Callable[[UploadDesk, str, ReceivedFile], T]

IMAGE_FIELD = "file"  # the page forms' file field, named when what was sent is not an image


@dataclass(frozen=True)
class ProfilePage:
    uploads_enabled: bool  # whether the profile image form is offered
    tokens: list[AccessToken]  # your unrevoked personal access tokens (the page's "API tokens" section)
    now: datetime  # which of them have expired
    notifications: Mapping[NotificationKind, Delivery] = field(default_factory=dict)  # where each kind goes
    digest: Digest = DEFAULT_DIGEST  # how the kinds set to email are emailed


def uploads_configured(store: UploadStore | None, images: RasterImageInspector | None
                       ) -> tuple[UploadStore, RasterImageInspector]:
    if store is None or images is None:
        raise NotConfigured("uploads are not configured")
    return store, images


def desk_of(acting: Acting, store: UploadStore) -> UploadDesk:
    s = acting.stores
    return UploadDesk(acting.principal, s.uploads, store, s.records, s.directory, acting.now)


# --- for other areas' pages (settings, a record's page), read in their own unit of work -----------------


def member_avatars(acting: Acting, user_ids: Iterable[int]) -> dict[int, int]:
    """User id → upload id of the avatars among ``user_ids`` the caller may see (a member list)."""
    return attachments.visible_images(acting.principal, acting.stores.uploads, UploadPurpose.AVATAR, user_ids)


def managed_project_ids(principal: Principal, projects: Iterable[Project]) -> set[int]:
    """Projects whose settings offer the logo form (``set_project_logo`` decides again when it is sent)."""
    return {p.id for p in projects if p.managed_by(principal)}


def record_files(acting: Acting, store: UploadStore | None, org_id: int, display_id: DisplayId) -> list[Upload]:
    """The record's attachments the caller may read; none when this server has no upload store."""
    if store is None:
        return []
    return list(attachments.record_attachments(desk_of(acting, store), org_id, display_id))


@dataclass(frozen=True)
class UploadUseCases:
    transactions: Transactions
    store: UploadStore | None  # None: uploads are not configured (NotConfigured when one is used)
    images: RasterImageInspector | None
    max_bytes: int  # uploads.upload_max_bytes: more is refused while it streams, and nothing is kept

    def _ports(self) -> tuple[UploadStore, RasterImageInspector]:
        return uploads_configured(self.store, self.images)

    @contextmanager
    def _desk(self, credential: Credential) -> Iterator[UploadDesk]:
        with self.transactions.acting_as(credential) as acting:
            yield desk_of(acting, self._ports()[0])

    # --- receiving a file: two short units of work, none while the body streams ----------------------

    def _receive(self, credential: Credential, org_id: int, body: FileBody, check: Check,
                 keep: Keep[T]) -> T:
        store, images = self._ports()
        with self._desk(credential) as desk:
            check(desk)
            principal = desk.principal
        name, chunks = body(self.max_bytes)
        received = attachments.receive_file(principal, store, images, org_id=org_id, chunks=chunks,
                                            max_bytes=self.max_bytes)
        try:
            with self._desk(credential) as desk:  # loaded afresh: revoked meanwhile is NotAuthenticated
                return keep(desk, name, received)
        except BaseException:
            store.delete(received.stored.storage_name)  # not committed: no row names it
            raise

    def upload(self, credential: Credential, org_id: int, body: FileBody) -> Upload:
        """A new unattached upload of the caller in ``org_id`` (NotFound for a non-member, before the body)."""
        def record(desk: UploadDesk, name: str, received: ReceivedFile) -> Upload:
            return attachments.record_upload(desk, org_id=org_id, received=received, original_name=name)
        return self._receive(credential, org_id, body, lambda desk: desk.require_member(org_id), record)

    def attach_file(self, credential: Credential, org_id: int, display_id: DisplayId, body: FileBody
                    ) -> Upload:
        """Upload a file and attach it to the record, which the caller must be able to write (checked first)."""
        def attach(desk: UploadDesk, name: str, received: ReceivedFile) -> Upload:
            upload = attachments.record_upload(desk, org_id=org_id, received=received, original_name=name)
            return attachments.attach(desk, org_id, display_id, upload.id)
        return self._receive(credential, org_id, body,
                             lambda desk: attachments.require_attach_rights(desk, org_id, display_id), attach)

    def _receive_image(self, credential: Credential, org_id: int, body: FileBody, check: Check,
                       apply: Callable[[UploadDesk, RasterImageInspector, int], Upload | None]) -> Upload | None:
        images = self._ports()[1]

        def keep(desk: UploadDesk, name: str, received: ReceivedFile) -> Upload | None:
            if received.image_format is None:  # say so before keeping a row for it
                raise InvalidInput("that file is not a PNG, JPEG, GIF or WebP image (judged by its content, "
                                   "not its name); choose an image", field=IMAGE_FIELD)
            upload = attachments.record_upload(desk, org_id=org_id, received=received, original_name=name)
            return apply(desk, images, upload.id)
        return self._receive(credential, org_id, body, check, keep)

    def receive_avatar(self, credential: Credential, org_id: int, body: FileBody) -> Upload | None:
        """Upload an image (in ``org_id``) and make it the caller's profile image."""
        return self._receive_image(credential, org_id, body, lambda desk: None, attachments.set_avatar)

    def receive_organisation_logo(self, credential: Credential, org_id: int, body: FileBody
                                  ) -> Upload | None:
        """Upload an image and make it the organisation logo: owners and admins (refused before the body)."""
        return self._receive_image(
            credential, org_id, body,
            lambda desk: attachments.require_organisation_logo_rights(desk.principal, org_id),
            lambda desk, images, upload_id: attachments.set_organisation_logo(desk, images, org_id, upload_id))

    def receive_project_logo(self, credential: Credential, org_id: int, project_id: int, body: FileBody
                             ) -> Upload | None:
        """Upload an image and make it the project's logo: its managers (refused before the body)."""
        return self._receive_image(
            credential, org_id, body,
            lambda desk: attachments.require_project_logo_rights(desk.directory, desk.principal, org_id,
                                                                 project_id),
            lambda desk, images, upload_id: attachments.set_project_logo(desk, images, org_id, project_id,
                                                                         upload_id))

    # --- reading -----------------------------------------------------------------------------------

    def get(self, credential: Credential, upload_id: int) -> Upload:
        with self._desk(credential) as desk:
            return attachments.readable_upload(desk, upload_id)

    def download(self, credential: Credential, upload_id: int) -> tuple[Upload, BinaryIO]:
        """The upload and an open reader of its file, if the caller may read it now; the caller closes it."""
        with self._desk(credential) as desk:
            return attachments.open_download(desk, upload_id)

    def attachments_of(self, credential: Credential, org_id: int, display_id: DisplayId) -> list[Upload]:
        with self._desk(credential) as desk:
            return list(attachments.record_attachments(desk, org_id, display_id))

    def _image(self, credential: Credential, purpose: UploadPurpose, subject_id: int,
               org_id: int | None = None) -> tuple[Upload, BinaryIO]:
        with self._desk(credential) as desk:
            current = attachments.current_image(desk, purpose, subject_id)
            if org_id is not None and current.organisation_id != org_id:
                raise NotFound("project not found")
            return attachments.open_download(desk, current.id)

    def avatar(self, credential: Credential, user_id: int) -> tuple[Upload, BinaryIO]:
        return self._image(credential, UploadPurpose.AVATAR, user_id)

    def organisation_logo(self, credential: Credential, org_id: int) -> tuple[Upload, BinaryIO]:
        return self._image(credential, UploadPurpose.ORGANISATION_LOGO, org_id)

    def project_logo(self, credential: Credential, org_id: int, project_id: int) -> tuple[Upload, BinaryIO]:
        """A project logo, through the organisation it belongs to (another organisation's: NotFound)."""
        return self._image(credential, UploadPurpose.PROJECT_LOGO, project_id, org_id)

    def profile(self, credential: Credential, org_id: int, project_key: str | None) -> Framed[ProfilePage]:
        with self.transactions.acting_as(credential) as acting:
            return Framed(frame_of(acting, org_id, project_key),
                          ProfilePage(uploads_enabled=self.store is not None,
                                      tokens=access_tokens.own_tokens(acting.stores.tokens, acting.principal),
                                      now=acting.now, notifications=notification_preferences(acting),
                                      digest=acting.stores.notifications.digest(acting.principal.user_id)))

    # --- changing ----------------------------------------------------------------------------------

    def attach(self, credential: Credential, org_id: int, display_id: DisplayId, upload_id: int) -> Upload:
        with self._desk(credential) as desk:
            return attachments.attach(desk, org_id, display_id, upload_id)

    def detach(self, credential: Credential, org_id: int, display_id: DisplayId, upload_id: int) -> Upload:
        with self._desk(credential) as desk:
            return attachments.detach(desk, org_id, display_id, upload_id)

    def delete(self, credential: Credential, upload_id: int) -> Upload:
        """Delete the upload's row, then — once that has committed — its file. Should removing the file fail,
        the deletion outbox the row's deletion filled has the job worker remove it; removing it before the
        commit could leave a row without its file."""
        with self._desk(credential) as desk:
            deleted = attachments.delete_upload(desk, upload_id)
        with suppress(OSError):  # the outbox has it (migration 0011)
            desk.store.delete(deleted.storage_name)
        return deleted

    def set_avatar(self, credential: Credential, upload_id: int | None) -> Upload | None:
        """Make the caller's own uploaded image their profile image; ``None`` clears it."""
        with self._desk(credential) as desk:
            return attachments.set_avatar(desk, self._ports()[1], upload_id)

    def set_organisation_logo(self, credential: Credential, org_id: int, upload_id: int | None
                              ) -> Upload | None:
        with self._desk(credential) as desk:
            return attachments.set_organisation_logo(desk, self._ports()[1], org_id, upload_id)

    def set_project_logo(self, credential: Credential, org_id: int, project_id: int, upload_id: int | None
                         ) -> Upload | None:
        with self._desk(credential) as desk:
            return attachments.set_project_logo(desk, self._ports()[1], org_id, project_id, upload_id)
