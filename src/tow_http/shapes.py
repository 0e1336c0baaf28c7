"""msgspec response shapes shared by several routers, and the small mappers from core types."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar.params import QueryParameter

from tow_core import accounts
from tow_core.access import Scope, ScopeKind
from tow_core.identity import Directory
from tow_core.knowledge import MAX_BODY, MAX_TITLE
from tow_core.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from tow_core.records import MEMORY_TYPES, SNAPSHOT_TYPES, TICKET_TYPES


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for request bodies: unknown fields are an error naming the field."""


# --- constrained inputs ---------------------------------------------------------------------------
# The rules the core applies to text, stated where the body is decoded so that the OpenAPI document says
# them and a violation is a 400 naming the field. Patterns are written for every regex dialect that reads
# them (Python's re here, ECMA-262 for JSON Schema): `\s` is not the same set in both (ECMA-262 leaves out
# U+001C–U+001F and U+0085, which str.strip() removes, and adds U+FEFF, which it keeps), so whitespace is the
# very characters str.isspace() names; and no `$`, which Python also matches before a final newline.
_SPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # U+3000 is the last
END = r"(?![\s\S])"
NOT_BLANK = f"[^{_SPACE}]"  # something str.strip() leaves
# Ids and versions are PostgreSQL bigints, but no sequence gets near 2**53: the bound clients can rely on is the
# one every JSON number reader holds exactly (JavaScript's Number.MAX_SAFE_INTEGER); larger bounds are compared
# as floats by JSON Schema validators, so 2**63 - 1 and 2**63 + 191 look the same to them.
MAX_SAFE_INTEGER = 2**53 - 1

Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INTEGER)]
Version = Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INTEGER, description="the version you loaded")]
# identity.clean_name: not only whitespace, at most 200 characters
Name = Annotated[str, msgspec.Meta(max_length=200, pattern=NOT_BLANK,
                                   description="1–200 characters, not only spaces")]
# identity.normalise_email: one @, a dot in the domain, no spaces; at most 320 characters
Email = Annotated[str, msgspec.Meta(max_length=320, pattern=f"^[^@{_SPACE}]{{1,64}}@[^@{_SPACE}]+[.][^@{_SPACE}]+{END}",
                                    description="an email address, e.g. ada@example.com")]
# passwords.check_password_policy (NIST SP 800-63B: length, not composition)
Password = Annotated[str, msgspec.Meta(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH,
                                       pattern=NOT_BLANK,
                                       description=f"{MIN_PASSWORD_LENGTH}–{MAX_PASSWORD_LENGTH} characters, "
                                                   "not only spaces")]
# knowledge.clean_text(required=True) drops control characters, then something must be left
VISIBLE = f"[^{_SPACE}\\x00-\\x1f]"
Title = Annotated[str, msgspec.Meta(max_length=MAX_TITLE, pattern=VISIBLE,
                                    description=f"1–{MAX_TITLE} characters, not only spaces")]
Body = Annotated[str, msgspec.Meta(max_length=MAX_BODY)]
# records.DisplayId.parse: a project key or type prefix, a dash, a number (DOC-7, APP-42)
DISPLAY_ID = f"^(?=[A-Z0-9]*[A-Z])[A-Z0-9]{{2,10}}-[1-9][0-9]{{0,17}}{END}"
DisplayIdText = Annotated[str, msgspec.Meta(pattern=DISPLAY_ID, description="a display ID, e.g. DOC-7 or APP-42")]


class MembershipOut(msgspec.Struct):
    organisation_id: int
    organisation_name: str
    role: str
    workflow_mode: str


class MeOut(msgspec.Struct):
    id: int
    email: str
    display_name: str
    is_server_admin: bool
    active_organisation_id: int | None
    memberships: list[MembershipOut]


def me_out(directory: Directory, user_id: int, active_organisation_id: int | None) -> MeOut:
    """The "me" answer for ``user_id`` (signed in or just registered), read through ``accounts``."""
    return me_of(accounts.overview(directory, user_id, active_organisation_id))


def me_of(account: accounts.AccountOverview) -> MeOut:
    """The "me" answer for an account overview a use case read (``tow_core.accounts.overview``)."""
    memberships = [
        MembershipOut(org.id, org.name, role.value, org.workflow_mode.value) for org, role in account.memberships
    ]
    user = account.user
    return MeOut(user.id, user.email, user.display_name, user.is_server_admin, account.active_organisation_id,
                 memberships)


# --- shared by several areas: scopes and paging -------------------------------------------------


Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=200, description="page size (1–200)")]


Cursor = Annotated[str | None, QueryParameter(name="cursor", description="from the previous page's next_cursor")]


class ScopeIn(Strict):
    kind: ScopeKind
    id: Id | None = None  # required for every kind but organisation


def _fields_schema(*types: str) -> dict[str, Any]:
    """The JSON Schema of `fields` for these record types (records.FIELD_SPECS): which names a record takes
    depends on its type, so a name of another type is a 422 naming it; each value's own bounds are here."""
    def one_of(*values: str) -> dict[str, Any]:
        return {"type": "string", "enum": list(values)}

    def integer(low: int, high: int = MAX_SAFE_INTEGER) -> dict[str, Any]:
        return {"type": "integer", "minimum": low, "maximum": high}

    def nullable(schema: dict[str, Any]) -> dict[str, Any]:
        return {"oneOf": [schema, {"type": "null"}]}

    labels = {"type": "array", "maxItems": 50, "items": {"type": "string", "maxLength": 64, "pattern": NOT_BLANK}}
    text = {"type": "string", "maxLength": 20_000}
    by_type = {
        "memory": {"memory_type": one_of(*MEMORY_TYPES), "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                   "importance": integer(1, 5), "tags": labels,
                   "source_references": {"type": "array", "items": {"type": "string", "pattern": DISPLAY_ID}},
                   "valid_from": nullable({"type": "string", "format": "date-time"}),
                   "valid_until": nullable({"type": "string", "format": "date-time"}),
                   "superseded_by": nullable({"type": "string", "maxLength": 40})},
        "doc": {"parent_id": nullable(integer(1)), "tags": labels},
        "ticket": {"ticket_type": one_of(*TICKET_TYPES), "priority": integer(1, 4), "assignee_id": nullable(integer(1)),
                   "labels": labels, "due_date": nullable({"type": "string", "format": "date"}),
                   "parent_id": nullable(integer(1))},
        "decision": {name: text for name in ("context", "decision", "consequences", "alternatives")},
        "risk": {"severity": integer(1, 5), "likelihood": integer(1, 5), "mitigation": text,
                 "owner_id": nullable(integer(1))},
        "snapshot": {"snapshot_type": one_of(*SNAPSHOT_TYPES),
                     "generated_by": nullable({"type": "string", "maxLength": 200})},
    }
    properties = {name: schema for kind in types for name, schema in by_type[kind].items()}
    return {"properties": properties, "additionalProperties": False}


def memory_fields() -> dict[str, Any]:
    return _fields_schema("memory")


FIELDS_DESCRIPTION = ("Type-specific fields: memory (memory_type required), doc, ticket, decision, risk, snapshot "
                      "(snapshot_type required); see SPEC §4.")
Fields = Annotated[dict[str, Any], msgspec.Meta(description=FIELDS_DESCRIPTION, extra_json_schema={
    "extra": _fields_schema("memory", "doc", "ticket", "decision", "risk", "snapshot")})]


class ScopeOut(msgspec.Struct):
    kind: str
    id: int


def scope_out(scope: Scope) -> ScopeOut:
    return ScopeOut(scope.kind.value, scope.ref_id)
