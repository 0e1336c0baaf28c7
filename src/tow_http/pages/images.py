"""Images and attachments that other areas' pages show (avatars, project logos, a record's files).

Transitional (issue 12): the rules are ``tow_core.use_cases.uploads`` (``member_avatars``,
``managed_project_ids``, ``record_files``), which a page's use case calls with its ``Acting``; these take
the request bag of pages not moved to a use case yet."""

from __future__ import annotations

from dataclasses import fields

from tow_core.identity import Project
from tow_core.records import DisplayId
from tow_core.unit_of_work import Acting, Stores
from tow_core.uploads import Upload
from tow_core.use_cases import uploads
from tow_http.context import Services, SignedIn


def _acting(signed_in: SignedIn) -> Acting:
    return Acting(Stores(**{f.name: getattr(signed_in, f.name) for f in fields(Stores)}), signed_in.principal,
                  signed_in.session, signed_in.now)


def member_avatars(signed_in: SignedIn, user_ids: list[int]) -> dict[int, int]:
    """User id → upload id of the avatars the member list shows."""
    return uploads.member_avatars(_acting(signed_in), user_ids)


def managed_project_ids(signed_in: SignedIn, projects: list[Project]) -> set[int]:
    """Projects whose settings offer the logo form (the use case decides again when it is sent)."""
    return uploads.managed_project_ids(signed_in.principal, projects)


def record_files(signed_in: SignedIn, services: Services, org_id: int, display_id: DisplayId) -> list[Upload]:
    """The record's attachments for its page; empty when this server has no upload store."""
    return uploads.record_files(_acting(signed_in), services.upload_store, org_id, display_id)
