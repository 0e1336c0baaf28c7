"""Citations in a chat answer, checked by the server before the answer is saved (SPEC §6, issue 13).

How the model cites (the chat instructions say the same):
- a workspace record: ``[DOC-7]``, or with a quoted span ``[DOC-7 "the exact words"]`` (straight or curly
  double quotes) — the display ID of a record a tool returned in this run;
- a web source: ``[web:3]`` — the ``ref`` number a web tool gave the page or search result.

A record citation is kept only if the record (a) was returned by a tool in this run, (b) is readable by
the asker when the answer is saved — read again then through the asker's ``Workspace``, never from what
the tool saw — and (c) when a quote is given, contains it verbatim in its title or body once runs of
whitespace are collapsed on both sides. Otherwise it is dropped with the reason ``not_returned_by_tool``,
``not_readable`` or ``quote_not_found`` (checked in that order) and its marker is taken out of the answer
text, so no chip points to a record the asker cannot open or to words it does not say. A web citation is
kept when its ref was returned by a web tool in this run (else ``not_returned_by_tool``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from tow_core import knowledge
from tow_core.errors import InvalidInput, NotFound
from tow_core.knowledge import Workspace
from tow_core.records import DisplayId

_RECORD_MARKER = re.compile(
    r"\[(?P<id>(?=[A-Z0-9]*[A-Z])[A-Z0-9]{2,10}-[1-9][0-9]{0,17})"
    r"(?:\s+(?:\"(?P<quote>[^\"\]]*)\"|\u201c(?P<curly>[^\u201d\]]*)\u201d))?\s*\]"
)
_WEB_MARKER = re.compile(r"\[web:(?P<ref>[1-9][0-9]{0,5})\]", re.IGNORECASE)


class DropReason(StrEnum):
    NOT_RETURNED_BY_TOOL = "not_returned_by_tool"
    NOT_READABLE = "not_readable"
    QUOTE_NOT_FOUND = "quote_not_found"


@dataclass(frozen=True, slots=True)
class CitationMarker:
    """One citation as the model wrote it; ``marker`` is its exact text in the answer."""

    display_id: str
    quote: str | None
    marker: str


@dataclass(frozen=True, slots=True)
class Citation:
    """A kept workspace citation: the record as the asker reads it when the answer is saved."""

    display_id: str
    title: str
    quote: str | None = None


@dataclass(frozen=True, slots=True)
class DroppedCitation:
    display_id: str
    quote: str | None
    reason: DropReason


@dataclass(frozen=True, slots=True)
class WebSource:
    ref: int
    url: str
    title: str


@dataclass(frozen=True, slots=True)
class DroppedWebCitation:
    ref: int
    reason: DropReason


@dataclass(frozen=True, slots=True)
class VerifiedCitations:
    text: str  # the answer with the markers of dropped citations taken out
    citations: tuple[Citation, ...]
    dropped: tuple[DroppedCitation, ...]
    web_sources: tuple[WebSource, ...]
    dropped_web: tuple[DroppedWebCitation, ...]

    def dropped_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in (*self.dropped, *self.dropped_web):
            counts[item.reason.value] = counts.get(item.reason.value, 0) + 1
        return counts


def normalised(text: str) -> str:
    """Whitespace runs collapsed to one space, trimmed: how quotes and records are compared."""
    return " ".join(text.split())


def record_markers(text: str) -> list[CitationMarker]:
    """Every record citation in ``text``, in order of appearance (repeats included)."""
    markers = []
    for match in _RECORD_MARKER.finditer(text):
        quote = match.group("quote") if match.group("quote") is not None else match.group("curly")
        markers.append(CitationMarker(match.group("id"), quote if quote and quote.strip() else None, match.group(0)))
    return markers


def web_refs(text: str) -> list[tuple[int, str]]:
    return [(int(match.group("ref")), match.group(0)) for match in _WEB_MARKER.finditer(text)]


def verify_citations(ws: Workspace, text: str, *, returned_records: frozenset[str],
                     returned_web: Mapping[int, WebSource]) -> VerifiedCitations:
    """Check every citation in ``text`` against the rules above, reading each record now as ``ws``'s principal.
    Call it in the transaction that saves the answer, so (b) holds at the moment of saving."""
    kept: dict[tuple[str, str | None], Citation] = {}
    dropped: dict[tuple[str, str | None], DroppedCitation] = {}
    cleaned = text
    for marker in record_markers(text):
        key = (marker.display_id, marker.quote)
        if key not in kept and key not in dropped:
            verdict = _check(ws, marker, returned_records)
            if isinstance(verdict, Citation):
                kept[key] = verdict
            else:
                dropped[key] = DroppedCitation(marker.display_id, marker.quote, verdict)
        if key in dropped:
            cleaned = cleaned.replace(marker.marker, "")
    sources: dict[int, WebSource] = {}
    dropped_web: dict[int, DroppedWebCitation] = {}
    for ref, marker in web_refs(text):
        if ref in returned_web:
            sources.setdefault(ref, returned_web[ref])
        else:
            dropped_web.setdefault(ref, DroppedWebCitation(ref, DropReason.NOT_RETURNED_BY_TOOL))
            cleaned = cleaned.replace(marker, "")
    return VerifiedCitations(cleaned, tuple(kept.values()), tuple(dropped.values()), tuple(sources.values()),
                             tuple(dropped_web.values()))


def _check(ws: Workspace, marker: CitationMarker, returned: frozenset[str]) -> Citation | DropReason:
    if marker.display_id not in returned:
        return DropReason.NOT_RETURNED_BY_TOOL
    try:
        record = knowledge.get_record(ws, DisplayId.parse(marker.display_id))
    except (NotFound, InvalidInput):
        return DropReason.NOT_READABLE
    if marker.quote is not None and normalised(marker.quote) not in normalised(f"{record.title}\n{record.body}"):
        return DropReason.QUOTE_NOT_FOUND
    return Citation(str(record.display_id), record.title, marker.quote)
