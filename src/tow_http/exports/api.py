"""Exports and imports over HTTP (SPEC §5): request, list, download; server admins import."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO, Literal

import msgspec
from anyio import from_thread, to_thread
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED

from tow_core.exports import OwnExport
from tow_core.imports import IMPORT_MAX_BYTES
from tow_core.jobs import JobStatus
from tow_core.unit_of_work import Credential
from tow_core.use_cases.exports import ExportUseCases, ImportUseCases
from tow_http.shapes import Strict

_CHUNK_BYTES = 64 * 1024


class ExportCreate(Strict):
    kind: Literal["member", "organisation"] = "member"
    include_attachment_contents: bool = False  # base64 in the file; metadata is always included


class ExportOut(msgspec.Struct):
    id: int
    organisation_id: int
    kind: str
    status: str
    error: str | None
    size_bytes: int | None
    created_at: datetime
    completed_at: datetime | None
    expires_at: datetime
    include_attachment_contents: bool
    download_url: str | None
    # Why you can no longer download it (your access shrank since it was made); null while you can.
    refused: str | None = None


class ExportListOut(msgspec.Struct):
    items: list[ExportOut]


class ImportOut(msgspec.Struct):
    organisation_id: int
    organisation_name: str
    counts: dict[str, int]


def export_out(own: OwnExport) -> ExportOut:
    request = own.request
    ready = request.file_name is not None and own.refusal is None
    # The job's own error text is for operators (it may name internals); requesters get what to do.
    error = ("the export failed; request a new one, or ask an administrator to check the server log "
             f"(job {request.job_id})") if request.status is JobStatus.FAILED else None
    return ExportOut(request.id, request.organisation_id, request.kind.value, request.status.value, error,
                     request.size_bytes, request.created_at, request.completed_at, request.expires_at,
                     request.include_attachment_contents, f"/api/exports/{request.id}/download" if ready else None,
                     None if own.refusal is None else own.refusal.message)


@post("/organisations/{org_id:int}/exports", status_code=HTTP_202_ACCEPTED, sync_to_thread=True,
      summary="Request an export (a background job)",
      description="`kind: member` (any member): every record and memory diff you can read — including your "
      "private records — with history. `kind: organisation` (owners/admins): members, groups, projects, grants "
      "and every non-private record with history, memory diffs and attachments. Attachment metadata is always "
      "included; `include_attachment_contents: true` also embeds each file (base64, files up to 32 MiB). "
      "Poll `GET /api/exports/{id}` "
      "until `status` is `completed`, then download. Files are deleted after `exports.retention_hours`. "
      "The file can be downloaded only while you can still read everything it holds: once your access shrinks "
      "(removed from the organisation, no longer owner/admin, left a group, lost a project grant, a project "
      "became restricted) it is refused and you request a new one. Format: docs/export-format.md.")
def request_export(org_id: int, data: JSONBody[ExportCreate], caller: NamedDependency[Credential],
                   exports: NamedDependency[ExportUseCases]) -> ExportOut:
    return export_out(exports.request(caller, org_id, data.kind,
                                      include_attachment_contents=data.include_attachment_contents))


@get("/exports", sync_to_thread=True, summary="Your exports, newest first",
     description="Only exports you requested; anyone else's are never listed. An export you can no longer "
     "download because your access shrank since it was made has `download_url: null` and `refused` saying why.")
def list_exports(caller: NamedDependency[Credential], exports: NamedDependency[ExportUseCases]
                 ) -> ExportListOut:
    return ExportListOut([export_out(r) for r in exports.mine(caller)])


@get("/exports/{export_id:int}", sync_to_thread=True, summary="One of your exports",
     description="404 for exports you did not request. `refused` (with `download_url: null`) says why you can "
     "no longer download it: your access shrank since it was made; request a new one.")
def show_export(export_id: int, caller: NamedDependency[Credential],
                exports: NamedDependency[ExportUseCases]) -> ExportOut:
    return export_out(exports.get(caller, export_id))


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    with file:
        while chunk := file.read(_CHUNK_BYTES):
            yield chunk


@get("/exports/{export_id:int}/download", sync_to_thread=True, summary="Download one of your exports",
     description="Streams the JSON file as an attachment. Only its requester can download it (others get 404), "
     "409 while it is not completed. 404 naming the reason once the requester can no longer read everything the "
     "file holds — removed from the organisation, no longer owner/admin (organisation export), left a group, "
     "lost a project grant, a project became restricted — checked on every download against the access of that "
     "moment: request a new export. Every download and every refused download is in the audit log.")
def download_export(export_id: int, caller: NamedDependency[Credential],
                    exports: NamedDependency[ExportUseCases]) -> Response:
    export = exports.download(caller, export_id)  # a refusal is raised after its audit entry committed
    return Stream(
        _chunks(export.file),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{export.download_name}"',
            "Cache-Control": "private, no-store",
            "Content-Length": str(export.size_bytes),
        },
    )


def _body(request: Request) -> Iterator[bytes]:
    """The request body, read from the event loop on demand by the worker thread the import runs on (the use
    case bounds it: ``IMPORT_MAX_BYTES``). Not ``multipart.pull_body``: that module imports the pages."""
    stream = request.stream()
    while True:
        try:
            chunk = from_thread.run(stream.__anext__)
        except StopAsyncIteration:
            return
        yield chunk


@post("/server/imports", status_code=HTTP_201_CREATED, request_max_body_size=IMPORT_MAX_BYTES,
      summary="Import an organisation export (server admins)",
      description="The request body is an organisation export file (docs/export-format.md). Restores the "
      "organisation — members, groups, projects, grants, records with their display IDs and history — in one "
      "transaction, and answers with counts. Server admins only: the organisation does not exist yet, so it has "
      "no owner. Refused (422, `field` = the first offending JSON path, nothing kept) when the file is malformed "
      "or tampered with; 409 when an organisation of that name exists. People are matched by email or created "
      "without a password (see README, 'Exports and import'). Also: `tow import FILE`.")
async def import_organisation(request: Request, caller: NamedDependency[Credential],
                              imports: NamedDependency[ImportUseCases]) -> ImportOut:
    # No transaction while the body arrives: the use case checks the caller before a byte is read, spools
    # the body (read from a worker thread) and imports in a second, short unit of work.
    report = await to_thread.run_sync(imports.import_organisation, caller, _body(request))
    return ImportOut(report.organisation_id, report.organisation_name, dict(report.counts))


exports_router = Router(path="/api", route_handlers=[request_export, list_exports, show_export, download_export,
                                                     import_organisation], tags=["exports"])
