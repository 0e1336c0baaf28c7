"""Exports and imports (SPEC §5; rules in ``tow_core.exports`` and ``tow_core.imports``): what the API, the
pages, the job worker and the command line call.

- ``ExportUseCases``: request, list, show and download one's own exports, and the exports page.
- ``ExportJobs``: the worker's side, each step in its own unit of work: write a queued export's file from
  one consistent snapshot and record it as ready; delete expired exports.
- ``ImportUseCases``: server admins restore an organisation export. The file streams in while no unit of
  work is open (a slow client must not hold a pooled connection): the caller is checked in one before
  the first byte is read, and again in the one that imports.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

from tow_core import accounts, imports
from tow_core import exports as export_rules
from tow_core.access import is_server_admin
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound, PayloadTooLarge
from tow_core.exports import ExportFiles, ExportRequest, ExportSource, OwnExport
from tow_core.imports import IMPORT_MAX_BYTES, ImportReport
from tow_core.jobs import Job, JobStatus
from tow_core.unit_of_work import Credential, Transactions
from tow_core.uploads import RasterImageInspector, UploadStore
from tow_core.use_cases.frame import Framed, frame_of

# --- exports ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportFile:
    """A download its requester may make: the file, opened in the unit of work that audited the download."""

    file: BinaryIO
    download_name: str
    size_bytes: int | None


@dataclass(frozen=True, slots=True)
class OrganisationExports:
    """The exports page: the caller's own exports of this organisation, newest first."""

    exports: list[OwnExport]

    @property
    def working(self) -> bool:
        """Whether one is still being prepared (the page then refreshes itself)."""
        return any(e.request.status in (JobStatus.QUEUED, JobStatus.RUNNING) for e in self.exports)


@dataclass(frozen=True)
class ExportUseCases:
    transactions: Transactions
    files: ExportFiles | None  # where finished exports are read from; None: downloads find no file
    retention: timedelta  # how long a finished export is kept (``exports.retention_hours``)

    def request(self, credential: Credential, org_id: int, kind: str, *,
                include_attachment_contents: bool = False) -> OwnExport:
        """Queue an export (``member`` or ``organisation``) as a background job."""
        with self.transactions.acting_as(credential) as acting:
            request = export_rules.request_export(
                acting.stores.directory, acting.stores.exports, acting.stores.jobs, acting.principal, org_id=org_id,
                kind=export_rules.parse_kind(kind), now=acting.now, retention=self.retention,
                include_attachment_contents=include_attachment_contents)
            return OwnExport(request, None)

    def mine(self, credential: Credential) -> list[OwnExport]:
        with self.transactions.acting_as(credential) as acting:
            return list(export_rules.list_own_exports(acting.stores.directory, acting.stores.exports,
                                                      acting.principal))

    def get(self, credential: Credential, export_id: int) -> OwnExport:
        with self.transactions.acting_as(credential) as acting:
            return export_rules.own_export(acting.stores.directory, acting.stores.exports, acting.principal,
                                           export_id)

    def download(self, credential: Credential, export_id: int) -> ExportFile:
        """The caller's completed export, opened for streaming. A refused download (access shrank) raises its
        NotFound only after the unit of work that audited the refusal committed."""
        with self.transactions.acting_as(credential) as acting:
            download = export_rules.export_for_download(acting.stores.directory, acting.stores.exports,
                                                        acting.principal, export_id=export_id)
            if download.refused is None:
                return self._open(download.request)
        raise download.refused

    def _open(self, export: ExportRequest) -> ExportFile:
        if self.files is None or export.file_name is None:
            raise NotFound("export file not found")
        return ExportFile(self.files.open(export.file_name), export.download_name, export.size_bytes)

    def page(self, credential: Credential, org_id: int, project_key: str | None
             ) -> Framed[OrganisationExports]:
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            mine = export_rules.list_own_exports(acting.stores.directory, acting.stores.exports, acting.principal)
            return Framed(frame, OrganisationExports([e for e in mine if e.request.organisation_id == org_id]))


ExportSnapshot = Callable[[datetime], AbstractContextManager[ExportSource]]  # one consistent read, as of then


@dataclass(frozen=True)
class ExportJobs:
    """What the job worker runs for exports; no one is signed in."""

    transactions: Transactions
    snapshot: ExportSnapshot
    files: ExportFiles
    retention: timedelta

    def run(self, job: Job) -> None:
        """Streams the job's export to its file, then records it as ready (the job completes right after).
        Idempotent: an export already swept, or already written under a lost lease, is left alone."""
        with self.transactions.unattended() as unattended:
            request = unattended.stores.exports.by_job(job.id)
        if request is None or request.file_name is not None:
            return
        with self.snapshot(self.transactions.clock()) as source:
            written = export_rules.produce_export(request, source, self.files)
        with self.transactions.unattended() as unattended:
            now = unattended.now
            unattended.stores.exports.mark_ready(request.id, file_name=written.file_name,
                                                 size_bytes=written.size_bytes, scopes=written.scopes, now=now,
                                                 expires_at=now + self.retention)

    def sweep(self, now: datetime) -> int:
        """Deletes the exports whose retention has passed (file, then row); returns how many."""
        with self.transactions.unattended() as unattended:
            return export_rules.sweep_expired(unattended.stores.exports, self.files, now=now)


# --- imports ------------------------------------------------------------------------------------------

_SPOOL_IN_MEMORY_BYTES = 8 * 1024 * 1024


def spooled_file() -> AbstractContextManager[BinaryIO]:
    """Where an arriving import file waits: memory up to 8 MiB, then a temporary file on disk (the import
    reads it more than once, never all of it into memory)."""
    return tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY_BYTES, prefix="tow-import-")


@dataclass(frozen=True, slots=True)
class ImportForm:
    """The import page's form: where "back" goes (the first of the admin's organisations, if any)."""

    home_org_id: int | None


@dataclass(frozen=True, slots=True)
class ImportAttempt:
    """An import from the page: what was restored, or why nothing was (a malformed or tampered file, the
    name taken) — an answer to show beside the form, not a failure of the page."""

    form: ImportForm
    report: ImportReport | None
    refused: InvalidInput | Conflict | None = None


@dataclass(frozen=True)
class ImportUseCases:
    transactions: Transactions
    upload_store: UploadStore | None  # where restored attachment contents go
    images: RasterImageInspector | None
    spool: Callable[[], AbstractContextManager[BinaryIO]] = spooled_file

    def import_organisation(self, credential: Credential, chunks: Iterable[bytes]) -> ImportReport:
        """The API's import: AccessDenied unless a server admin, checked before the first chunk is read;
        at most ``IMPORT_MAX_BYTES``."""
        with self.transactions.acting_as(credential) as acting:
            if not is_server_admin(acting.principal):
                raise AccessDenied("only server admins import organisations")
        with self.spool() as file:
            _copy(chunks, file)
            return self._restore(credential, file)

    def form(self, credential: Credential) -> ImportForm:
        """The import page, which does not exist for anyone but server admins (like the server settings)."""
        with self.transactions.acting_as(credential) as acting:
            if not is_server_admin(acting.principal):
                raise NotFound("no such page")
            organisations = accounts.own_organisations(acting.stores.directory, acting.principal)
            return ImportForm(organisations[0][0].id if organisations else None)

    def import_upload(self, credential: Credential, chunks: Iterable[bytes]) -> ImportAttempt:
        """The page's import: ``form``'s check before the first chunk is read (``chunks`` may check the
        request as it starts); a file the import refuses is returned, with nothing of it kept."""
        form = self.form(credential)
        with self.spool() as file:
            _copy(chunks, file)
            try:
                report = self._restore(credential, file)
            except (InvalidInput, Conflict) as refused:  # its unit of work rolled back
                return ImportAttempt(form, None, refused)
        return ImportAttempt(form, report)

    def _restore(self, credential: Credential, file: BinaryIO) -> ImportReport:
        with self.transactions.acting_as(credential) as acting:  # revoked or demoted meanwhile: refused
            return imports.import_organisation(acting.stores.directory, acting.stores.organisation_import,
                                               acting.principal, file=file, upload_store=self.upload_store,
                                               images=self.images)


def _copy(chunks: Iterable[bytes], file: BinaryIO) -> None:
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > IMPORT_MAX_BYTES:
            raise PayloadTooLarge(f"an import file is at most {IMPORT_MAX_BYTES} bytes")
        file.write(chunk)
    file.seek(0)
