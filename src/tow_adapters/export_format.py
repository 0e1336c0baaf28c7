"""The organisation export file format, version 1, as msgspec structs (docs/export-format.md).

Decoding a file with ``decode_organisation_export`` checks every type, enumeration, bound and unknown
key; the first problem is reported with its JSON path (``$.records[12].scope.kind``). Cross-references
(a grant naming a group, a record citing another) are checked by the importer, also by path.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from tow_core.errors import InvalidInput

Email = Annotated[str, Meta(min_length=3, max_length=320)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Key = Annotated[str, Meta(pattern=r"^[A-Z0-9]{2,10}$")]
DisplayIdText = Annotated[str, Meta(pattern=r"^[A-Z0-9]{2,10}-[1-9][0-9]{0,17}$")]
OrgRoleName = Literal["owner", "admin", "member"]
ProjectRoleName = Literal["viewer", "member", "lead", "admin"]


# Record fields holding a user id in the database and that user's email in a file (people in $.people): a
# ticket's assignee, a risk's owner, and who proposed and who approved a memory item's last reviewed change.
USER_ID_FIELDS = ("assignee_id", "owner_id", "proposed_by", "approved_by")


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class OrganisationIn(_Strict):
    name: Name
    workflow_mode: Literal["founder", "organization"]
    created_at: datetime
    require_second_reviewer: bool = False  # memory.require_second_reviewer; absent in files written before it


class PersonIn(_Strict):
    email: Email
    display_name: Name
    active: bool


class MemberIn(_Strict):
    user: Email
    role: OrgRoleName
    joined_at: datetime


class GroupIn(_Strict):
    name: Name
    created_at: datetime
    members: list[Email]


class GrantIn(_Strict):
    user: Email | None
    group: Name | None
    role: ProjectRoleName
    created_at: datetime


class ProjectIn(_Strict):
    key: Key
    name: Name
    description: str
    lead: Email | None
    visibility: Literal["open", "restricted"]
    status: Literal["active", "archived"]
    created_at: datetime
    grants: list[GrantIn]


class SequenceIn(_Strict):
    prefix: Key
    last_number: Annotated[int, Meta(ge=1)]


class ScopeIn(_Strict):
    kind: Literal["organisation", "group", "project", "user"]
    group: Name | None = None
    project: Key | None = None
    user: Email | None = None


class RevisionIn(_Strict):
    version: Annotated[int, Meta(ge=1)]
    title: str
    body: str
    saved_at: datetime
    replaced_by: Email | None
    replaced_at: datetime


class CommentIn(_Strict):
    author: Email | None
    body: Annotated[str, Meta(min_length=1, max_length=100_000)]
    created_at: datetime
    updated_at: datetime


class ActivityIn(_Strict):
    actor: Email | None
    at: datetime
    field: Annotated[str, Meta(min_length=1, max_length=100)]
    old_value: Any
    new_value: Any
    ai_applied: bool


class SourceIn(_Strict):
    record: DisplayIdText
    version: Annotated[int, Meta(ge=1)]


class LinkIn(_Strict):
    target: DisplayIdText
    kind: Literal["relates_to", "blocks", "duplicates"]
    created_by: Email | None
    created_at: datetime


class RecordIn(_Strict):
    display_id: DisplayIdText
    type: Literal["memory", "doc", "ticket", "decision", "risk", "snapshot"]
    scope: ScopeIn
    title: Annotated[str, Meta(min_length=1, max_length=500)]
    body: str
    status: Annotated[str, Meta(min_length=1, max_length=40)]
    author: Email | None
    created_at: datetime
    updated_at: datetime
    version: Annotated[int, Meta(ge=1)]
    fields: dict[str, Any]
    references: list[DisplayIdText]
    revisions: list[RevisionIn]
    comments: list[CommentIn]
    activity: list[ActivityIn]
    links: list[LinkIn]
    sources: list[SourceIn] = []  # a generated snapshot's pinned sources; absent in files written before them


class MemoryDiffIn(_Strict):
    scope: ScopeIn
    source: Literal["doc", "chat", "checkin", "manual"]
    source_display_id: DisplayIdText | None
    rationale: str
    author: Email | None
    operations: Annotated[list[dict[str, Any]], Meta(min_length=1)]
    status: Literal["pending", "approved", "rejected", "partially_applied"]
    reviewer: Email | None
    decided_at: datetime | None
    review_note: str
    outcomes: list[dict[str, Any]]
    created_at: datetime


class AttachmentIn(_Strict):
    record: DisplayIdText
    original_name: Annotated[str, Meta(min_length=1, max_length=255)]
    size_bytes: Annotated[int, Meta(ge=0)]
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    image_format: Literal["png", "jpeg", "gif", "webp"] | None
    uploader: Email | None
    created_at: datetime
    content_base64: str | None


class ExportHeader(_Strict):
    format: Literal["tow-export"]
    version: Literal[1]
    kind: Literal["organisation"]
    exported_at: datetime
    organisation: OrganisationIn


# The array members of an organisation export and the type of their items, in file order.
SECTIONS: dict[str, type] = {
    "people": PersonIn, "members": MemberIn, "groups": GroupIn, "projects": ProjectIn, "sequences": SequenceIn,
    "records": RecordIn, "memory_diffs": MemoryDiffIn, "attachments": AttachmentIn,
}
HEADER_KEYS = tuple(ExportHeader.__struct_fields__)

_PATH = re.compile(r" - at `(\$[^`]*)`$")


def decode_at(raw: bytes, type_: type, path: str) -> Any:
    """Decode one value found at ``path``; InvalidInput names the offending path inside it."""
    try:
        decoded = msgspec.json.decode(raw, type=type_, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _PATH.search(message)
        where = path + (match.group(1)[1:] if match else "")
        raise InvalidInput(f"{where}: {_PATH.sub('', message)}", field=where) from exc
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"{path}: not valid JSON ({exc})", field=path) from exc
    if b"\\u0000" in raw:  # only then can a decoded text hold NUL, which PostgreSQL cannot store
        _refuse_nul(msgspec.json.decode(raw), path)
    return decoded


def _refuse_nul(value: Any, path: str) -> None:
    if isinstance(value, str) and "\x00" in value:
        raise InvalidInput(f"{path}: text must not contain NUL (\\u0000)", field=path)
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, path)
            _refuse_nul(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(item, f"{path}[{index}]")


def decode_header(raw_members: dict[str, bytes]) -> ExportHeader:
    """The top-level scalar members, decoded together so that errors carry their ``$.`` path."""
    raw = b"{" + b",".join(json.dumps(k).encode() + b":" + v for k, v in raw_members.items()) + b"}"
    return decode_at(raw, ExportHeader, "$")
