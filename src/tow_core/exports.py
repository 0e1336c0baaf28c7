"""Exports (SPEC §5): the data people take out of TOW, as confidential as the records themselves.

Rules:
- any member may request *their* export (kind ``member``): every record and memory diff the one
  visibility predicate lets them read — which includes their own private records — with history;
- owners and admins may request the *organisation* export (kind ``organisation``): members, groups,
  projects, grants and every non-private record with its history, memory diffs and attachments;
- an export runs as a background job and streams to a file (``write_document``: one item at a time,
  never the whole document in memory), renamed into place only when complete;
- only the requester lists or downloads it — anyone else gets "not found" — and only while they still
  hold the access the export needed (a member removed from the organisation, or an admin demoted,
  can no longer download what they exported before);
- it is deleted, file and row, ``retention_hours`` after it completed (``sweep_expired``);
- requests and downloads are written to the audit log in the same transaction.

The file format is documented in docs/export-format.md; ``FORMAT`` and ``VERSION`` head every file.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, BinaryIO, Protocol, TextIO

from tow_core.access import Principal, can_administer_org
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tow_core.identity import Directory
from tow_core.jobs import JobQueue, JobStatus, NewJob

FORMAT = "tow-export"
VERSION = 1
EXPORT_JOB = "export"


class ExportKind(StrEnum):
    MEMBER = "member"
    ORGANISATION = "organisation"


@dataclass(frozen=True, slots=True)
class ExportRequest:
    id: int
    organisation_id: int
    requested_by: int
    kind: ExportKind
    job_id: int
    status: JobStatus
    error: str | None
    file_name: str | None
    size_bytes: int | None
    created_at: datetime
    completed_at: datetime | None
    expires_at: datetime
    include_attachment_contents: bool = False

    @property
    def download_name(self) -> str:
        return f"tow-{self.kind.value}-export-{self.organisation_id}-{self.id}.json"


class ExportStore(Protocol):
    """Export requests, on the caller's transaction."""

    def add(self, *, org_id: int, requested_by: int, kind: ExportKind, job_id: int, now: datetime,
            expires_at: datetime, include_attachment_contents: bool) -> ExportRequest: ...
    def get(self, export_id: int) -> ExportRequest | None: ...
    def by_job(self, job_id: int) -> ExportRequest | None: ...
    def of_requester(self, user_id: int, *, limit: int) -> list[ExportRequest]: ...
    def mark_ready(self, export_id: int, *, file_name: str, size_bytes: int, now: datetime,
                   expires_at: datetime) -> None: ...
    def expired(self, now: datetime, *, limit: int) -> list[ExportRequest]: ...
    def delete(self, export_id: int) -> None: ...


class ExportFiles(Protocol):
    """Where export files live. ``writing`` makes the file visible only when the block succeeds."""

    def writing(self, name: str) -> AbstractContextManager[TextIO]: ...
    def open(self, name: str) -> BinaryIO: ...
    def size(self, name: str) -> int: ...
    def delete(self, name: str) -> None: ...


Section = tuple[str, Iterable[Mapping[str, Any]]]


class ExportSource(Protocol):
    """The export's content, read in one consistent snapshot, one item at a time."""

    def header(self, request: ExportRequest) -> Mapping[str, Any]: ...
    def sections(self, request: ExportRequest) -> Iterator[Section]: ...


# --- requesting, listing, downloading --------------------------------------------------------------


def _require_member(principal: Principal, org_id: int) -> None:
    if not principal.is_active or org_id not in principal.org_roles:
        raise NotFound("organisation not found")


def request_export(directory: Directory, exports: ExportStore, jobs: JobQueue, principal: Principal, *,
                   org_id: int, kind: ExportKind, now: datetime, retention: timedelta,
                   include_attachment_contents: bool = False) -> ExportRequest:
    """Queue an export: members their own, owners/admins also the organisation's; attachment contents
    (base64 in the file) only when asked for, metadata always."""
    _require_member(principal, org_id)
    if kind is ExportKind.ORGANISATION and not can_administer_org(principal, org_id):
        raise AccessDenied("only organisation owners and admins export the whole organisation", field="kind")
    job_id = jobs.enqueue(NewJob(EXPORT_JOB, {}, principal.user_id, org_id), now=now)
    request = exports.add(org_id=org_id, requested_by=principal.user_id, kind=kind, job_id=job_id, now=now,
                          expires_at=now + retention, include_attachment_contents=include_attachment_contents)
    directory.audit(AuditEntry(org_id, principal.user_id, AuditAction.EXPORT_REQUESTED, f"export:{request.id}",
                               {"kind": kind.value, "attachment_contents": include_attachment_contents}))
    return request


def parse_kind(value: str) -> ExportKind:
    try:
        return ExportKind(value)
    except ValueError as exc:
        raise InvalidInput("kind must be member or organisation", field="kind") from exc


def still_entitled(principal: Principal, request: ExportRequest) -> bool:
    """The requester still holds the access the export needed."""
    if not principal.is_active or request.organisation_id not in principal.org_roles:
        return False
    return request.kind is ExportKind.MEMBER or can_administer_org(principal, request.organisation_id)


def own_export(exports: ExportStore, principal: Principal, export_id: int) -> ExportRequest:
    """The caller's own export; anyone else's, or one they are no longer entitled to, is not found."""
    request = exports.get(export_id)
    if request is None or request.requested_by != principal.user_id or not still_entitled(principal, request):
        raise NotFound("export not found")
    return request


def list_own_exports(exports: ExportStore, principal: Principal, *, limit: int = 100) -> list[ExportRequest]:
    return exports.of_requester(principal.user_id, limit=limit)


def export_for_download(directory: Directory, exports: ExportStore, principal: Principal, *,
                        export_id: int) -> ExportRequest:
    """The caller's completed export, with the download audited in the same transaction."""
    request = own_export(exports, principal, export_id)
    if request.status is not JobStatus.COMPLETED or request.file_name is None:
        raise Conflict(f"export {export_id} is {request.status.value}, not ready for download")
    directory.audit(AuditEntry(request.organisation_id, principal.user_id, AuditAction.EXPORT_DOWNLOADED,
                               f"export:{request.id}", {"kind": request.kind.value, "size_bytes": request.size_bytes}))
    return request


# --- producing and expiring -----------------------------------------------------------------------


def new_file_name(request: ExportRequest) -> str:
    """Server-chosen and unguessable: the name never carries anything a client supplied."""
    return f"export-{request.id}-{secrets.token_hex(8)}.json"


def write_document(header: Mapping[str, Any], sections: Iterable[Section], out: TextIO) -> None:
    """Write the export JSON incrementally: the header's keys, then each section as an array written
    item by item, so memory holds one item at a time whatever the organisation's size."""
    out.write("{\n")
    first = True
    for key, value in header.items():
        out.write(("" if first else ",\n") + f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
        first = False
    for name, items in sections:
        out.write(("" if first else ",\n") + f"{json.dumps(name)}: [")
        first = False
        separator = "\n"
        for item in items:
            out.write(separator + json.dumps(item, ensure_ascii=False, default=_json_default))
            separator = ",\n"
        out.write("\n]" if separator != "\n" else "]")
    out.write("\n}\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def produce_export(request: ExportRequest, source: ExportSource, files: ExportFiles) -> tuple[str, int]:
    """Stream the export to a new file; returns its name and size."""
    name = new_file_name(request)
    with files.writing(name) as out:
        write_document({"format": FORMAT, "version": VERSION, **source.header(request)},
                       source.sections(request), out)
    return name, files.size(name)


def sweep_expired(exports: ExportStore, files: ExportFiles, *, now: datetime, limit: int = 500) -> int:
    """Delete exports (file, then row) whose retention has passed; returns how many."""
    expired = exports.expired(now, limit=limit)
    for request in expired:
        if request.file_name is not None:
            files.delete(request.file_name)
        exports.delete(request.id)
    return len(expired)
