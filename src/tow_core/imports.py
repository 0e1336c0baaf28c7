"""Importing an organisation export (SPEC §5): restore an organisation into a deployment where it does
not exist yet, preserving display IDs and sequences, scopes, grants and history.

Rules:
- only server admins import through the API (the organisation does not exist yet, so it has no owner
  who could); the ``tow import`` command is the operator's and needs no account;
- everything happens in one transaction: a malformed or tampered file is refused with the first
  offending JSON path and leaves nothing behind;
- an organisation whose name is already taken (case-insensitively) is refused: an import never merges;
- people are matched by email to existing accounts, or created without a usable password (they get in
  through ``tow users set-password`` or a new invite; see README "Exports and import");
- attachments are restored with their contents (checked against size, SHA-256 and image format);
  one exported without contents (metadata only) cannot be restored and is counted as skipped;
- the import is written to the audit log of the new organisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from tow_core.access import Principal, is_server_admin
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import AccessDenied
from tow_core.identity import AuditTrail
from tow_core.progress import Progress, no_progress
from tow_core.uploads import RasterImageInspector, UploadStore

IMPORT_CHECK_STAGE = "checking the file"  # progress stages (``tow_core.progress``) of an import
IMPORT_STAGE = "importing"

# The largest request body the import API accepts. The import streams the file (memory holds one
# batch of records, not the file), so this bounds the temporary copy on disk, not memory.
IMPORT_MAX_BYTES = 4 * 1024 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImportReport:
    organisation_id: int
    organisation_name: str
    counts: Mapping[str, int]  # "people_created", "people_matched", "members", "records", ...


class OrganisationImport(Protocol):
    """Restores one organisation export on the caller's transaction, reading ``file`` (seekable) as a
    stream, possibly more than once."""

    def restore(self, file: BinaryIO, *, upload_store: UploadStore | None,
                images: RasterImageInspector | None, progress: Progress = no_progress) -> ImportReport:
        """``progress``: bytes checked (``IMPORT_CHECK_STAGE``), then items imported (``IMPORT_STAGE``)."""
        ...


def import_organisation(directory: AuditTrail, importer: OrganisationImport, principal: Principal | None, *,
                        file: BinaryIO, upload_store: UploadStore | None = None,
                        images: RasterImageInspector | None = None, progress: Progress = no_progress
                        ) -> ImportReport:
    """Restore ``file``; ``principal`` is None for the operator's command line. Attachment contents go
    to ``upload_store`` (checked against their size, SHA-256 and claimed image format)."""
    if principal is not None and not is_server_admin(principal):
        raise AccessDenied("only server admins import organisations")
    report = importer.restore(file, upload_store=upload_store, images=images, progress=progress)
    directory.audit(AuditEntry(report.organisation_id, principal.user_id if principal else None,
                               AuditAction.ORGANISATION_IMPORTED, f"organisation:{report.organisation_id}",
                               dict(report.counts)))
    return report
