"""Exports (SPEC §5): the data people take out of TOW, as confidential as the records themselves.

Rules:
- any member may request *their* export (kind ``member``): every record and memory diff the one
  visibility predicate lets them read — which includes their own private records — with history;
- owners and admins may request the *organisation* export (kind ``organisation``): members, groups,
  projects, grants and every non-private record with its history, memory diffs and attachments;
- an export runs as a background job and streams to a file (``write_document``: one item at a time,
  never the whole document in memory), renamed into place only when complete;
- only the requester lists or downloads it — anyone else gets "not found" — and only while they could
  still read everything it holds (SPEC §2 "immediate revocation", exports included). The file records
  the scopes of every row it holds (``ExportRequest.scopes``), read in the same snapshot as its content;
  each download checks every one of them with the one read policy (``can_read_scope``) against the
  principal loaded for that request. A requester removed from the organisation or deactivated, an
  admin demoted (organisation export), or one who left a group, lost a project grant (direct or via a
  group) or whose open project became restricted — so that any scope the file holds is no longer
  readable — is refused (``Refusal``, "not found" with the reason, and audited); access that grew
  changes nothing. Their own exports stay listed, with the reason instead of a download link;
- it is deleted, file and row, ``retention_hours`` after it completed (``sweep_expired``);
- requests, downloads and refused downloads are written to the audit log in the same transaction.

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

from tow_core.access import Principal, ProjectAccess, Scope, ScopeKind, can_administer_org, can_read_scope
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tow_core.identity import AuditTrail, Directory, Organisation, ProjectGrants, User
from tow_core.jobs import JobQueue, JobStatus, NewJob
from tow_core.progress import Progress, no_progress

FORMAT = "tow-export"
VERSION = 1
EXPORT_JOB = "export"


class ExportKind(StrEnum):
    MEMBER = "member"
    ORGANISATION = "organisation"


@dataclass(frozen=True, slots=True)
class ExportSubject:
    """What one export file holds: the organisation export, or what ``reader`` may read in it (member export)."""

    organisation_id: int
    kind: ExportKind
    reader: int | None  # the member whose export it is; for an organisation export who asked (None: the operator)
    include_attachment_contents: bool = False


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
    # The scope of every record and memory diff the file holds, read in the file's own snapshot; None
    # until the file is written (and for files written before TOW recorded them).
    scopes: frozenset[Scope] | None = None

    @property
    def subject(self) -> ExportSubject:
        return ExportSubject(self.organisation_id, self.kind, self.requested_by, self.include_attachment_contents)

    @property
    def download_name(self) -> str:
        return f"tow-{self.kind.value}-export-{self.organisation_id}-{self.id}.json"

    def refusal(self, principal: Principal, projects: Mapping[int, ProjectAccess]) -> Refusal | None:
        """Why its requester may no longer download it, or None while they may. ``projects``: the
        organisation's projects by id, as they are now (visibility included)."""
        org_id = self.organisation_id
        if not principal.is_active or org_id not in principal.org_roles:
            return Refusal.LEFT_ORGANISATION
        if self.kind is ExportKind.ORGANISATION and not can_administer_org(principal, org_id):
            return Refusal.NO_LONGER_MANAGER
        if self.file_name is None:  # nothing written yet: the file will record what it holds
            return None
        if self.scopes is None:
            return Refusal.NOT_RECORDED
        if not all(_still_reads(principal, scope, projects) for scope in self.scopes):
            return Refusal.ACCESS_SHRANK
        return None


class Refusal(StrEnum):
    """Why an export's requester may no longer download it; the value is what the audit log records."""

    LEFT_ORGANISATION = "left_organisation"
    NO_LONGER_MANAGER = "no_longer_owner_or_admin"
    ACCESS_SHRANK = "access_shrank"
    NOT_RECORDED = "access_not_recorded"

    @property
    def message(self) -> str:
        return f"{_REFUSAL_REASONS[self]}; request a new one"


_REFUSAL_REASONS = {
    Refusal.LEFT_ORGANISATION: "you are no longer a member of this organisation",
    Refusal.NO_LONGER_MANAGER: "an organisation export is for its owners and admins, and you no longer are one",
    Refusal.ACCESS_SHRANK: "your access changed since this export was made: it holds records you can no longer "
                           "read",
    Refusal.NOT_RECORDED: "this export was made before TOW recorded what each export holds, so it cannot show "
                          "that you may still read all of it",
}


def _still_reads(principal: Principal, scope: Scope, projects: Mapping[int, ProjectAccess]) -> bool:
    if scope.kind is not ScopeKind.PROJECT:
        return can_read_scope(principal, scope)
    project = projects.get(scope.ref_id)
    return project is not None and can_read_scope(principal, scope, project)


class ExportStore(Protocol):
    """Export requests, on the caller's transaction."""

    def add(self, *, org_id: int, requested_by: int, kind: ExportKind, job_id: int, now: datetime,
            expires_at: datetime, include_attachment_contents: bool) -> ExportRequest: ...
    def get(self, export_id: int) -> ExportRequest | None: ...
    def by_job(self, job_id: int) -> ExportRequest | None: ...
    def of_requester(self, user_id: int, *, limit: int) -> list[ExportRequest]: ...
    def mark_ready(self, export_id: int, *, file_name: str, size_bytes: int, scopes: frozenset[Scope],
                   now: datetime, expires_at: datetime) -> None: ...
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

    def header(self, subject: ExportSubject) -> Mapping[str, Any]: ...
    def sections(self, subject: ExportSubject) -> Iterator[Section]: ...
    def scopes(self, subject: ExportSubject) -> frozenset[Scope]:
        """The scope of every record and memory diff ``sections`` yields (the same rows)."""
        ...
    def count(self, subject: ExportSubject) -> int:
        """How many items ``sections`` yields, all sections together (for a progress display)."""
        ...


@dataclass(frozen=True, slots=True)
class WrittenExport:
    file_name: str
    size_bytes: int
    scopes: frozenset[Scope]  # read in the same snapshot as the content


# --- requesting, listing, downloading --------------------------------------------------------------


def _require_member(principal: Principal, org_id: int) -> None:
    if not principal.is_active or org_id not in principal.org_roles:
        raise NotFound("organisation not found")


def request_export(directory: AuditTrail, exports: ExportStore, jobs: JobQueue, principal: Principal, *,
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


@dataclass(frozen=True, slots=True)
class OwnExport:
    """One of the caller's exports, and why they may no longer download it (None while they may)."""

    request: ExportRequest
    refusal: Refusal | None


def _projects(directory: ProjectGrants, org_id: int) -> dict[int, ProjectAccess]:
    return {p.id: p.access for p in directory.projects(org_id)}


def own_export(directory: Directory, exports: ExportStore, principal: Principal, export_id: int) -> OwnExport:
    """The caller's own export; anyone else's is not found."""
    request = exports.get(export_id)
    if request is None or request.requested_by != principal.user_id:
        raise NotFound("export not found")
    return OwnExport(request, request.refusal(principal, _projects(directory, request.organisation_id)))


def list_own_exports(directory: Directory, exports: ExportStore, principal: Principal, *, limit: int = 100
                     ) -> list[OwnExport]:
    requests = exports.of_requester(principal.user_id, limit=limit)
    projects = {org_id: _projects(directory, org_id) for org_id in {r.organisation_id for r in requests}}
    return [OwnExport(r, r.refusal(principal, projects[r.organisation_id])) for r in requests]


@dataclass(frozen=True, slots=True)
class Download:
    """A download the caller may make, or the error it is refused with. The refusal is returned, not
    raised, so that its audit entry commits with the caller's transaction."""

    request: ExportRequest
    refused: NotFound | None = None


def export_for_download(directory: Directory, exports: ExportStore, principal: Principal, *,
                        export_id: int) -> Download:
    """The caller's completed export, with the download — or its refusal — audited in the same transaction."""
    own = own_export(directory, exports, principal, export_id)
    request = own.request
    if own.refusal is not None:
        _audit(directory, principal, request, AuditAction.EXPORT_DOWNLOAD_REFUSED, reason=own.refusal.value)
        return Download(request, NotFound(f"export {request.id}: {own.refusal.message}"))
    if request.status is not JobStatus.COMPLETED or request.file_name is None:
        raise Conflict(f"export {export_id} is {request.status.value}, not ready for download")
    _audit(directory, principal, request, AuditAction.EXPORT_DOWNLOADED, size_bytes=request.size_bytes)
    return Download(request)


def _audit(directory: AuditTrail, principal: Principal, request: ExportRequest, action: AuditAction,
           **details: Any) -> None:
    directory.audit(AuditEntry(request.organisation_id, principal.user_id, action, f"export:{request.id}",
                               {"kind": request.kind.value, **details}))


# --- the operator's `tow export` ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperatorExport:
    """What `tow export` was asked for, resolved: the organisation, and the member of a member export."""

    subject: ExportSubject
    organisation: Organisation
    member: User | None


def _organisation_for_operator(directory: Directory, value: str) -> Organisation:
    text = value.strip()
    if text.isdigit() and (by_id := directory.organisation(int(text))) is not None:
        return by_id
    named = directory.organisations_named(text)
    if len(named) > 1:
        ids = ", ".join(str(o.id) for o in named)
        raise Conflict(f"{len(named)} organisations are named {text!r}: give the id of one ({ids})",
                       field="organisation")
    if not named:
        raise NotFound(f"no organisation has the id or name {text!r}", field="organisation")
    return named[0]


def operator_export(directory: Directory, *, organisation: str, member_email: str | None,
                    include_attachment_contents: bool = False) -> OperatorExport:
    """The shell is trusted (like `tow import`): any organisation (by id or name), or what one of its active
    members may read — the member export the API gives that member."""
    org = _organisation_for_operator(directory, organisation)
    if member_email is None:
        subject = ExportSubject(org.id, ExportKind.ORGANISATION, None, include_attachment_contents)
        return OperatorExport(subject, org, None)
    email = member_email.strip().lower()
    user = directory.user_by_email(email)
    principal = directory.principal(user.id) if user is not None else None
    if user is None or principal is None:
        raise NotFound(f"no account has the email {email!r}", field="member")
    if org.id not in principal.org_roles:
        raise NotFound(f"{email} is not a member of organisation {org.name!r}", field="member")
    if not principal.is_active:
        raise Conflict(f"{email} is deactivated and reads nothing, so there is no member export of theirs; "
                       "export the organisation instead", field="member")
    return OperatorExport(ExportSubject(org.id, ExportKind.MEMBER, user.id, include_attachment_contents), org, user)


def audit_operator_export(directory: AuditTrail, export: OperatorExport, *, items: int) -> None:
    """An export the operator wrote is audited like any other, without an actor (as `tow import` is)."""
    subject = export.subject
    target = f"user:{export.member.id}" if export.member else f"organisation:{subject.organisation_id}"
    directory.audit(AuditEntry(subject.organisation_id, None, AuditAction.EXPORT_WRITTEN, target,
                               {"kind": subject.kind.value, "attachment_contents": subject.include_attachment_contents,
                                "items": items, "by": "operator"}))


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


def write_export(subject: ExportSubject, source: ExportSource, out: TextIO, progress: Progress = no_progress, *,
                 stage: str = "exporting") -> int:
    """The one way an export file is written (the job worker's and `tow export`'s): the format header,
    then ``source``'s sections. Reports every item written to ``progress``; returns how many there were."""
    total = source.count(subject) if progress is not no_progress else None
    written = 0

    def counted(items: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        nonlocal written
        for item in items:
            yield item
            written += 1
            progress(stage, written, total, "items")

    progress(stage, 0, total, "items")
    sections = ((name, counted(items)) for name, items in source.sections(subject))
    write_document({"format": FORMAT, "version": VERSION, **source.header(subject)}, sections, out)
    return written


def produce_export(request: ExportRequest, source: ExportSource, files: ExportFiles) -> WrittenExport:
    """Stream the export to a new file; returns its name, size and the scopes of what it holds."""
    name = new_file_name(request)
    subject = request.subject
    scopes = source.scopes(subject)
    with files.writing(name) as out:
        write_export(subject, source, out)
    return WrittenExport(name, files.size(name), scopes)


def sweep_expired(exports: ExportStore, files: ExportFiles, *, now: datetime, limit: int = 500) -> int:
    """Delete exports (file, then row) whose retention has passed; returns how many."""
    expired = exports.expired(now, limit=limit)
    for request in expired:
        if request.file_name is not None:
            files.delete(request.file_name)
        exports.delete(request.id)
    return len(expired)
