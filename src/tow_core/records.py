"""Knowledge records (SPEC §4): the common shape, display IDs, lifecycles and type-specific fields.

Every record belongs to one organisation, carries exactly one scope (SPEC §2), has an author,
timestamps, a version for optimistic concurrency, and a display ID — a type prefix plus a
per-organisation sequence number (``MEM-12``, ``DOC-7``, ``DEC-3``, ``RSK-5``, ``SNP-2``; tickets use
their project's key, ``APP-42``, or ``TKT-9`` outside projects). Bodies are Markdown; any display ID
written in a title or body becomes a reference (see ``references_in``).

Type-specific fields live in ``Record.fields`` and are validated here, by type, so that the storage
can keep them in one column and the HTTP layer only maps shapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from tow_core.access import Scope
from tow_core.errors import Conflict, InvalidInput


class RecordType(StrEnum):
    MEMORY = "memory"
    DOC = "doc"
    TICKET = "ticket"
    DECISION = "decision"
    RISK = "risk"
    SNAPSHOT = "snapshot"


# Fixed prefixes; tickets take their project's key instead (or TICKET_PREFIX outside projects).
PREFIXES: Mapping[RecordType, str] = MappingProxyType({
    RecordType.MEMORY: "MEM",
    RecordType.DOC: "DOC",
    RecordType.DECISION: "DEC",
    RecordType.RISK: "RSK",
    RecordType.SNAPSHOT: "SNP",
})
TICKET_PREFIX = "TKT"
RESERVED_PREFIXES = frozenset({*PREFIXES.values(), TICKET_PREFIX})

# A display ID in running text: an upper-case prefix (2–10 letters/digits with at least one letter,
# like project keys: "2FA" yes, "2026" no, so dates are not references), a dash and a number, not glued
# to surrounding words (so "COVID-19x" or "ab-APP-1" do not match).
DISPLAY_ID_PATTERN = re.compile(
    r"(?<![A-Za-z0-9_-])((?=[A-Z0-9]*[A-Z])[A-Z0-9]{2,10})-([1-9][0-9]{0,17})(?![A-Za-z0-9_])"
)

# A display ID's prefix with its dash and no number yet ("DOC-", "app-"): what the editor's reference
# completion asks the lookup for, meaning "records of that prefix, newest first".
BARE_PREFIX_PATTERN = re.compile(r"((?=[A-Z0-9]*[A-Z])[A-Z0-9]{2,10})-")


@dataclass(frozen=True, slots=True, order=True)
class DisplayId:
    prefix: str
    number: int

    def __str__(self) -> str:
        return f"{self.prefix}-{self.number}"

    @classmethod
    def parse(cls, text: str) -> DisplayId:
        match = DISPLAY_ID_PATTERN.fullmatch(text.strip())
        if not match:
            raise InvalidInput(f"{text!r} is not a display ID like DOC-7 or APP-42", field="display_id")
        return cls(match.group(1), int(match.group(2)))


def references_in(*texts: str) -> list[DisplayId]:
    """Every distinct display ID written in ``texts``, in order of first appearance."""
    seen: dict[DisplayId, None] = {}
    for text in texts:
        for match in DISPLAY_ID_PATTERN.finditer(text or ""):
            seen.setdefault(DisplayId(match.group(1), int(match.group(2))), None)
    return list(seen)


# --- lifecycles -----------------------------------------------------------------------------------

# status -> statuses it may move to (SPEC §4). The first status of each type is its initial one.
TRANSITIONS: Mapping[RecordType, Mapping[str, frozenset[str]]] = MappingProxyType({
    RecordType.MEMORY: MappingProxyType({
        "active": frozenset({"superseded", "archived"}),
        "superseded": frozenset(),  # history: readable, never silently changed back
        "archived": frozenset({"active"}),
    }),
    RecordType.DOC: MappingProxyType({
        "active": frozenset({"archived"}),
        "archived": frozenset({"active"}),
    }),
    RecordType.TICKET: MappingProxyType({
        status: frozenset({"backlog", "todo", "in_progress", "blocked", "in_review", "done", "canceled", "archived"})
        - {status}
        for status in ("backlog", "todo", "in_progress", "blocked", "in_review", "done", "canceled", "archived")
    }),
    RecordType.DECISION: MappingProxyType({
        "proposed": frozenset({"active"}),
        "active": frozenset({"superseded"}),
        "superseded": frozenset(),
    }),
    RecordType.RISK: MappingProxyType({
        "active": frozenset({"mitigated", "archived"}),
        "mitigated": frozenset({"active", "archived"}),
        "archived": frozenset({"active"}),
    }),
    RecordType.SNAPSHOT: MappingProxyType({
        "generating": frozenset({"pending_review", "failed"}),
        "pending_review": frozenset({"active"}),
        "active": frozenset(),  # superseded only by activating a newer one of the same type and scope
        "superseded": frozenset(),
        "failed": frozenset(),
    }),
})


def initial_status(record_type: RecordType) -> str:
    return next(iter(TRANSITIONS[record_type]))


def check_transition(record_type: RecordType, current: str, new: str) -> None:
    """Raise Conflict unless ``current`` → ``new`` is a move the record's lifecycle allows."""
    statuses = TRANSITIONS[record_type]
    if new not in statuses:
        allowed = ", ".join(statuses)
        raise InvalidInput(f"status must be one of {allowed}", field="status")
    if new != current and new not in statuses[current]:
        raise Conflict(f"a {record_type.value} cannot go from {current} to {new}", field="status")


# --- type-specific fields -------------------------------------------------------------------------

MEMORY_TYPES = ("priority", "constraint", "non_goal", "assumption", "decision", "commitment", "risk", "blocker",
                "learning", "status", "fact")
TICKET_TYPES = ("task", "bug", "story", "epic", "subtask")
SNAPSHOT_TYPES = ("current_company_state", "daily_summary", "weekly_review", "cto_state", "strategy_state")


def _choice(options: tuple[str, ...]) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if value not in options:
            raise InvalidInput(f"{name} must be one of {', '.join(options)}", field=name)
        return value
    return check


def _number(low: float, high: float, *, integer: bool) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            kind = "an integer" if integer else "a number"
            raise InvalidInput(f"{name} must be {kind} from {low:g} to {high:g}", field=name)
        return value
    return check


def _text(max_length: int = 20_000) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if not isinstance(value, str) or len(value) > max_length:
            raise InvalidInput(f"{name} must be text of at most {max_length} characters", field=name)
        return value
    return check


def _labels(name: str, value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v.strip()) <= 64 for v in value):
        raise InvalidInput(f"{name} must be a list of short texts", field=name)
    if len(value) > 50:
        raise InvalidInput(f"{name} has more than 50 entries", field=name)
    return sorted({v.strip() for v in value})


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda name, value: None if value is None else check(name, value)


def _iso_date(name: str, value: Any) -> Any:
    try:
        return date.fromisoformat(value).isoformat()
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be a date like 2026-12-31", field=name) from exc


def _iso_datetime(name: str, value: Any) -> Any:
    try:
        return datetime.fromisoformat(value).isoformat()
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be a date-time like 2026-12-31T09:00:00+00:00", field=name) from exc


def _user_id(name: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{name} must be a user id", field=name)
    return value


def _display_ids(name: str, value: Any) -> Any:
    if not isinstance(value, list):
        raise InvalidInput(f"{name} must be a list of display IDs", field=name)
    return [str(DisplayId.parse(v)) if isinstance(v, str) else _fail(name) for v in value]


def _fail(name: str) -> Any:
    raise InvalidInput(f"{name} must be a list of display IDs", field=name)


# A memory item's review provenance (SPEC §4: the approver is recorded apart from the author): written only
# when a memory diff is approved (``tow_core.memory_review``); a direct write that changes them is refused.
REVIEW_FIELDS = frozenset({"proposed_by", "approved_by", "memory_diff_id"})


class Names(StrEnum):
    """What a field's ids must name (SPEC §2 "every ID is checked"); ``knowledge`` checks each id a write
    adds, where it can see the organisation and the writer."""

    MEMBER = "member"  # a user id: a member of the record's organisation
    READABLE_RECORDS = "readable_records"  # display IDs: each a record the writer can read there


@dataclass(frozen=True, slots=True)
class FieldSpec:
    check: Callable[[str, Any], Any]
    default: Any = None
    required: bool = False
    names: Names | None = None


FIELD_SPECS: Mapping[RecordType, Mapping[str, FieldSpec]] = MappingProxyType({
    RecordType.MEMORY: MappingProxyType({
        "memory_type": FieldSpec(_choice(MEMORY_TYPES), required=True),
        "confidence": FieldSpec(_number(0, 1, integer=False), 1.0),
        "importance": FieldSpec(_number(1, 5, integer=True), 3),
        "tags": FieldSpec(_labels, ()),
        "source_references": FieldSpec(_display_ids, (), names=Names.READABLE_RECORDS),
        "valid_from": FieldSpec(_optional(_iso_datetime)),
        "valid_until": FieldSpec(_optional(_iso_datetime)),
        "superseded_by": FieldSpec(_optional(_text(40))),
        # Set by approving a memory diff (REVIEW_FIELDS), never by a direct write: who proposed the item's last
        # reviewed change, who approved it, and the diff.
        "proposed_by": FieldSpec(_optional(_user_id)),
        "approved_by": FieldSpec(_optional(_user_id)),
        "memory_diff_id": FieldSpec(_optional(_user_id)),
    }),
    RecordType.DOC: MappingProxyType({
        "parent_id": FieldSpec(_optional(_user_id)),  # a record id; checked for readability by the use case
        "tags": FieldSpec(_labels, ()),
    }),
    RecordType.TICKET: MappingProxyType({
        "ticket_type": FieldSpec(_choice(TICKET_TYPES), "task"),
        "priority": FieldSpec(_number(1, 4, integer=True), 3),
        "assignee_id": FieldSpec(_optional(_user_id), names=Names.MEMBER),
        "labels": FieldSpec(_labels, ()),
        "due_date": FieldSpec(_optional(_iso_date)),
        "parent_id": FieldSpec(_optional(_user_id)),
    }),
    RecordType.DECISION: MappingProxyType({
        "context": FieldSpec(_text(), ""),
        "decision": FieldSpec(_text(), ""),
        "consequences": FieldSpec(_text(), ""),
        "alternatives": FieldSpec(_text(), ""),
    }),
    RecordType.RISK: MappingProxyType({
        "severity": FieldSpec(_number(1, 5, integer=True), 3),
        "likelihood": FieldSpec(_number(1, 5, integer=True), 3),
        "mitigation": FieldSpec(_text(), ""),
        "owner_id": FieldSpec(_optional(_user_id), names=Names.MEMBER),
    }),
    RecordType.SNAPSHOT: MappingProxyType({
        "snapshot_type": FieldSpec(_choice(SNAPSHOT_TYPES), required=True),
        "generated_by": FieldSpec(_optional(_text(200))),
    }),
})


def validated_fields(record_type: RecordType, given: Mapping[str, Any], current: Mapping[str, Any] | None = None
                     ) -> dict[str, Any]:
    """Merge ``given`` over ``current`` (or the defaults) and validate every field of the type.

    Unknown fields are refused by name; required fields must be present on creation.
    """
    specs = FIELD_SPECS[record_type]
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise InvalidInput(f"{unknown[0]} is not a field of a {record_type.value}", field=unknown[0])
    merged: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given:
            value = given[name]
        elif current is not None and name in current:
            value = current[name]
        elif spec.required:
            raise InvalidInput(f"{name} is required for a {record_type.value}", field=name)
        else:
            value = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        merged[name] = spec.check(name, value)  # None only where the check allows it (_optional)
    return merged


# --- the record ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    id: int
    organisation_id: int
    type: RecordType
    display_id: DisplayId
    scope: Scope
    title: str
    body: str
    status: str
    author_id: int | None
    created_at: datetime
    updated_at: datetime
    version: int
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordSummary:
    """What a reference, backlink or lookup shows: enough to cite, never the body."""

    id: int
    type: RecordType
    display_id: DisplayId
    title: str
    status: str
    scope: Scope


# --- the store port ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewRecord:
    organisation_id: int
    type: RecordType
    prefix: str
    scope: Scope
    title: str
    body: str
    status: str
    author_id: int | None
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RecordQuery:
    """Filters every list/search/count path applies *inside* the visibility-filtered statement."""

    types: frozenset[RecordType] = frozenset()  # empty: every type
    statuses: frozenset[str] = frozenset()  # empty: every status
    project_id: int | None = None  # None: "All projects" (everything readable); else only that project's scope
    writable: bool = False  # only records the principal may also write (the same rule table, WRITE_RULES)
    assignee_id: int | None = None  # only tickets assigned to this user


@dataclass(frozen=True, slots=True)
class SearchHit:
    summary: RecordSummary
    snippet: str  # plain text; the highlighted words are wrapped in HIGHLIGHT_START / HIGHLIGHT_END
    rank: float


# Control characters that never survive into stored text (clean_text strips them), so they can mark
# highlights unambiguously; the HTTP layer escapes the snippet and turns them into <mark> tags.
HIGHLIGHT_START = "\x02"
HIGHLIGHT_END = "\x03"


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_cursor: str | None  # opaque; pass back to get the following page


class RecordStore(Protocol):
    """Records in storage. Every method named ``*_readable`` filters by the one visibility predicate
    inside its query, for ``principal_id``: never a superset, never a short page."""

    def allocate_number(self, org_id: int, prefix: str) -> int:
        """Next number of ``prefix`` in the organisation: no gaps, no duplicates, even when raced
        (the allocation is part of the caller's transaction)."""
        ...

    def add(self, new: NewRecord, number: int) -> Record: ...

    def readable(self, principal_id: int, org_id: int, record_id: int) -> Record | None: ...

    def readable_by_display_id(self, principal_id: int, org_id: int, display_id: DisplayId) -> Record | None: ...

    def readers_among(self, org_id: int, record_id: int, user_ids: Sequence[int], *,
                      write: bool = False) -> frozenset[int]:
        """Which of ``user_ids`` read (``write``: write) the record now — the same predicate as ``readable``,
        asked for all of them in one statement (who a mention or a review request may notify)."""
        ...

    def for_update(self, org_id: int, record_id: int) -> Record | None:
        """The record locked for this transaction, whoever may read it: the caller authorises."""
        ...

    def save(self, record: Record, *, expected_version: int) -> Record:
        """Store ``record``'s mutable parts (scope, title, body, status, fields) and bump the version;
        Conflict (naming the current version) when the stored version is not ``expected_version``."""
        ...

    def list_readable(self, principal_id: int, org_id: int, query: RecordQuery, *, cursor: str | None,
                      limit: int) -> Page[Record]:
        """Newest first (updated_at, then id)."""
        ...

    def count_readable(self, principal_id: int, org_id: int, query: RecordQuery) -> int: ...

    def search_readable(self, principal_id: int, org_id: int, text: str, query: RecordQuery, *,
                        cursor: str | None, limit: int) -> Page[SearchHit]:
        """PostgreSQL full-text search, title weighted over body, best first."""
        ...

    def active_snapshots_for_update(self, org_id: int, snapshot_type: str, scope: Scope) -> list[Record]:
        """Active snapshots of one snapshot type in exactly ``scope``, locked (for supersede on activation)."""
        ...

    def set_references(self, org_id: int, record_id: int, targets: list[DisplayId]) -> None:
        """Replace the record's outgoing references (display IDs that name no record are kept out)."""
        ...

    def references_readable(self, principal_id: int, org_id: int, record_id: int) -> list[RecordSummary]: ...

    def backlinks_readable(self, principal_id: int, org_id: int, record_id: int) -> list[RecordSummary]:
        """Records that cite ``record_id`` and that the principal can read (caller checks the target)."""
        ...

    def lookup_readable(self, principal_id: int, org_id: int, text: str, *, limit: int) -> list[RecordSummary]:
        """A display ID (exact), a bare prefix with its dash (``DOC-``: that prefix's records, highest number
        first) or a title prefix (case-insensitive), readable records only; matches of the first two kinds
        come before title matches."""
        ...
