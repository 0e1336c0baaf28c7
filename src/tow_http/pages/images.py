"""Images and attachments that other areas' pages show (avatars, project logos, a record's files)."""

from __future__ import annotations

from tow_core import attachments
from tow_core.access import can_manage_project
from tow_core.identity import Project
from tow_core.records import DisplayId
from tow_core.uploads import UploadPurpose
from tow_http.context import Services, SignedIn, upload_desk


def member_avatars(signed_in: SignedIn, user_ids: list[int]) -> dict[int, int]:
    """User id → upload id of the avatars the member list shows."""
    return attachments.visible_images(signed_in.principal, signed_in.uploads, UploadPurpose.AVATAR, user_ids)


def managed_project_ids(signed_in: SignedIn, projects: list[Project]) -> set[int]:
    """Projects whose settings offer the logo form (the use case decides again when it is sent)."""
    return {p.id for p in projects if can_manage_project(signed_in.principal, p.access)}


def record_files(signed_in: SignedIn, services: Services, org_id: int, display_id: DisplayId) -> list:
    """The record's attachments for its page; empty when this server has no upload store."""
    if services.upload_store is None:
        return []
    return attachments.record_attachments(upload_desk(signed_in, services), org_id, display_id)
