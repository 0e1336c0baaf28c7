"""A doc's versions as pages (SPEC §4 "revisions", issue 18): one version's text, the line diff between two
versions, and restoring an earlier one.

Rules:
- A version is read exactly as the doc is: a doc the caller cannot read is NotFound whichever version is
  asked, and so is a version the doc never had (or that was not kept: a save that changed neither title
  nor body keeps no revision, so a status change leaves a gap in the numbers).
- The current version is the doc itself; every earlier one comes from ``docs.DocRevisions``.
- A diff compares two versions line by line (``difflib``): each line is kept, added or removed, and a run
  of more than ``2 * CONTEXT`` unchanged lines between changes is folded to its count. Lines are plain text;
  the page escapes them.
- Restore saves the old title and body over the doc through ``knowledge.update_record`` with the version the
  caller loaded, so it is a normal edit: write access needed, 409 when someone saved since, the replaced
  text kept as a revision, audited like any save, and the history keeps everything. Restoring a version
  whose title and body are the doc's current ones is refused (422): it would change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from difflib import SequenceMatcher
from enum import StrEnum

from tow_core.access import can_write_scope
from tow_core.docs import DocRevisions, readable_doc
from tow_core.errors import InvalidInput, NotFound
from tow_core.knowledge import RecordChange, Workspace, project_access_of, update_record
from tow_core.records import DisplayId, Record

CONTEXT = 3  # unchanged lines shown on each side of a change


@dataclass(frozen=True, slots=True)
class VersionText:
    """A doc's title and body at ``version``; ``current`` when that is the doc as it is now."""

    version: int
    title: str
    body: str
    saved_at: datetime
    current: bool


class LineKind(StrEnum):
    KEPT = "kept"
    ADDED = "added"
    REMOVED = "removed"
    FOLDED = "folded"  # ``count`` unchanged lines not shown


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: LineKind
    text: str = ""
    count: int = 1


@dataclass(frozen=True, slots=True)
class VersionDiff:
    old: VersionText
    new: VersionText
    lines: tuple[DiffLine, ...]  # the bodies
    added: int
    removed: int

    @property
    def title_changed(self) -> bool:
        return self.old.title != self.new.title


def version_of(ws: Workspace, revisions: DocRevisions, display_id: DisplayId, version: int) -> tuple[Record,
                                                                                                     VersionText]:
    """The readable doc and its text at ``version`` (NotFound as in the module rules)."""
    doc = readable_doc(ws, display_id)
    if version == doc.version:
        return doc, VersionText(doc.version, doc.title, doc.body, doc.updated_at, current=True)
    found = revisions.list(doc.id, before_version=version + 1, limit=1) if 1 <= version < doc.version else []
    if not found or found[0].version != version:
        raise NotFound(f"{display_id} has no version {version}")
    kept = found[0]
    return doc, VersionText(kept.version, kept.title, kept.body, kept.saved_at, current=False)


def compare(ws: Workspace, revisions: DocRevisions, display_id: DisplayId, old: int, new: int | None
            ) -> tuple[Record, VersionDiff]:
    """What changed from version ``old`` to version ``new`` (the current one when None)."""
    doc, before = version_of(ws, revisions, display_id, old)
    after = version_of(ws, revisions, display_id, new)[1] if new is not None and new != doc.version else \
        VersionText(doc.version, doc.title, doc.body, doc.updated_at, current=True)
    lines = tuple(line_diff(before.body, after.body))
    return doc, VersionDiff(before, after, lines, sum(line.kind is LineKind.ADDED for line in lines),
                            sum(line.kind is LineKind.REMOVED for line in lines))


def line_diff(old: str, new: str) -> list[DiffLine]:
    """``old`` → ``new`` line by line, long unchanged runs folded (see the module rules)."""
    a, b = old.splitlines(), new.splitlines()
    out: list[DiffLine] = []
    opcodes = SequenceMatcher(None, a, b).get_opcodes()  # autojunk, as difflib.unified_diff: fast on long docs
    for n, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            out.extend(_kept(a[i1:i2], first=n == 0, last=n == len(opcodes) - 1))
            continue
        out.extend(DiffLine(LineKind.REMOVED, line) for line in a[i1:i2])
        out.extend(DiffLine(LineKind.ADDED, line) for line in b[j1:j2])
    return out


def _kept(lines: list[str], *, first: bool, last: bool) -> list[DiffLine]:
    head = 0 if first else CONTEXT  # context after the change before, before the change after
    tail = 0 if last else CONTEXT
    if len(lines) <= head + tail + 1:
        return [DiffLine(LineKind.KEPT, line) for line in lines]
    folded = DiffLine(LineKind.FOLDED, count=len(lines) - head - tail)
    return ([DiffLine(LineKind.KEPT, line) for line in lines[:head]] + [folded]
            + [DiffLine(LineKind.KEPT, line) for line in lines[len(lines) - tail:]])


def can_restore(ws: Workspace, doc: Record) -> bool:
    """Whether the caller may write the doc, so a Restore button is worth showing (``restore`` checks again)."""
    return can_write_scope(ws.principal, doc.scope, project_access_of(ws, doc.scope))


def restore(ws: Workspace, revisions: DocRevisions, display_id: DisplayId, version: int, *, expected_version: int
            ) -> Record:
    """Save version ``version``'s title and body as the doc's next version (see the module rules)."""
    doc, text = version_of(ws, revisions, display_id, version)
    if (text.title, text.body) == (doc.title, doc.body):
        raise InvalidInput(f"version {version} has the current title and text: restoring it would change nothing",
                           field="version")
    return update_record(ws, display_id, expected_version=expected_version,
                         change=RecordChange(title=text.title, body=text.body))
