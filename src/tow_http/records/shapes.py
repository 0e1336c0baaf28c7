"""The records area's JSON shapes and their mappers, shared by its API and pages."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response
from litestar.params import QueryParameter

from tow_core.errors import InvalidInput
from tow_core.records import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    Record,
    RecordSummary,
    RecordType,
    SearchHit,
)
from tow_core.semantic_search import SearchMode
from tow_http.shapes import Body, Fields, ScopeIn, ScopeOut, Strict, Title, Version, scope_out

Types = Annotated[list[RecordType] | None, QueryParameter(name="type", description="repeat to allow several")]
Statuses = Annotated[list[str] | None, QueryParameter(name="status", description="repeat to allow several")]
Mode = Annotated[
    SearchMode | None,
    QueryParameter(name="mode", description="keyword | semantic | hybrid (default: hybrid with AI configured, "
                   "else keyword)"),
]
ProjectKey = Annotated[
    str | None, QueryParameter(name="project", description="a project key: only that project's records")
]


class RecordIn(Strict):
    type: RecordType
    scope: ScopeIn
    title: Title
    body: Body = ""
    fields: Fields = msgspec.field(default_factory=dict)


class RecordPatch(Strict):
    version: Version | msgspec.UnsetType = msgspec.UNSET
    title: Title | msgspec.UnsetType = msgspec.UNSET
    body: Body | msgspec.UnsetType = msgspec.UNSET
    status: str | msgspec.UnsetType = msgspec.UNSET
    fields: Fields | msgspec.UnsetType = msgspec.UNSET
    scope: ScopeIn | msgspec.UnsetType = msgspec.UNSET


class RecordOut(msgspec.Struct):
    id: int
    display_id: str
    type: str
    organisation_id: int
    scope: ScopeOut
    title: str
    body: str
    status: str
    author_id: int | None
    created_at: datetime
    updated_at: datetime
    version: int
    fields: dict[str, Any]


class SummaryOut(msgspec.Struct):
    display_id: str
    type: str
    title: str
    status: str
    scope: ScopeOut


class RecordPageOut(msgspec.Struct):
    items: list[RecordOut]
    next_cursor: str | None


class CountOut(msgspec.Struct):
    count: int


class SearchHitOut(msgspec.Struct):
    display_id: str
    type: str
    title: str
    status: str
    scope: ScopeOut
    snippet_html: str
    rank: float


class SearchPageOut(msgspec.Struct):
    mode: str  # the mode that answered
    items: list[SearchHitOut]
    next_cursor: str | None
    fallback_reason: str | None = None  # why semantic/hybrid was answered by keyword search
    hint: str | None = None  # why nothing could match: the query held only stop words or punctuation


def record_out(record: Record) -> RecordOut:
    return RecordOut(
        record.id, str(record.display_id), record.type.value, record.organisation_id, scope_out(record.scope),
        record.title, record.body, record.status, record.author_id, record.created_at, record.updated_at,
        record.version, dict(record.fields),
    )


def summary_out(summary: RecordSummary) -> SummaryOut:
    return SummaryOut(str(summary.display_id), summary.type.value, summary.title, summary.status,
                      scope_out(summary.scope))


def snippet_html(snippet: str) -> str:
    """Escape user text first, then turn the store's highlight markers into <mark> tags."""
    return html.escape(snippet).replace(HIGHLIGHT_START, "<mark>").replace(HIGHLIGHT_END, "</mark>")


def hit_out(hit: SearchHit) -> SearchHitOut:
    s = hit.summary
    return SearchHitOut(str(s.display_id), s.type.value, s.title, s.status, scope_out(s.scope),
                        snippet_html(hit.snippet), hit.rank)


def expected_version(request: Request, data: RecordPatch) -> int:
    """The version the editor loaded: ``If-Match: "3"`` or ``"version": 3`` in the body."""
    header = request.headers.get("if-match")
    if header:
        try:
            return int(header.removeprefix("W/").strip('"'))
        except ValueError as exc:
            raise InvalidInput("If-Match must be the record's version, e.g. \"3\"", field="If-Match") from exc
    if data.version is msgspec.UNSET:
        raise InvalidInput("send the version you loaded (body `version` or If-Match) so edits never "
                           "overwrite each other silently", field="version")
    return data.version


def with_etag(record: Record, status_code: int = 200) -> Response[RecordOut]:
    return Response(record_out(record), status_code=status_code, headers={"ETag": f'"{record.version}"'})
