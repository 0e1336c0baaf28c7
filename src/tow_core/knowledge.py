"""Use cases over knowledge records (SPEC §2, §4, §7): create, read, update, list, search, cite.

Rules:
- Reads go through the store's ``*_readable`` methods, which apply the one visibility predicate in
  SQL; a record the caller cannot read is "not found" (404), never "forbidden".
- Writes are decided by the pure policy (``can_write_scope``) on the record's scope. Moving a record
  to another scope needs write access to both the old and the new scope. A scope names objects of
  the record's organisation only: a group, project or user elsewhere is "not found", an organisation
  scope whose id is not the record's organisation is refused (422, ``scope_id``).
- Fields naming ids (``records.Names``) are checked for every id a create or update adds: a person
  field (a risk's ``owner_id``, a ticket's ``assignee_id``) names a member of the organisation (422
  naming the field); each of a memory item's ``source_references`` is a record the writer can read in
  the organisation (422 naming the field, the same answer for one that does not exist, so nothing is
  learned). Ids kept from before are not checked again (a former member may stay a risk's owner).
- Tickets are numbered with their project's key (``APP-42``) or ``TKT`` outside projects; every other
  type with its fixed prefix. Numbers are per organisation and gap-free.
- Updates carry the version the editor loaded; a stale version is a Conflict naming the current one,
  so two editors never silently overwrite each other.
- Lifecycle moves follow ``records.TRANSITIONS``; a snapshot's body is editable only before it is
  activated.
- Display IDs written in a title or body become references; each is shown only to readers of both ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from tow_core.access import (
    Principal,
    ProjectAccess,
    Scope,
    ScopeKind,
    can_read_project,
    can_read_scope,
    can_write_scope,
)
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import AccessDenied, InvalidInput, NotFound
from tow_core.identity import Directory
from tow_core.records import (
    FIELD_SPECS,
    PREFIXES,
    REVIEW_FIELDS,
    TICKET_PREFIX,
    DisplayId,
    Names,
    NewRecord,
    Page,
    Record,
    RecordQuery,
    RecordStore,
    RecordSummary,
    RecordType,
    SearchHit,
    check_transition,
    initial_status,
    references_in,
    validated_fields,
)

MAX_TITLE = 500
MAX_BODY = 1_000_000
MAX_PAGE = 200
_CONTROL = {c: None for c in range(32) if chr(c) not in "\n\t"}


@dataclass(frozen=True, slots=True)
class Workspace:
    """What every use case here needs: the caller, inside one organisation, in one transaction."""

    records: RecordStore
    directory: Directory
    principal: Principal
    org_id: int
    history: RecordHistory | None = None  # None: records alone, no doc/ticket history or tree rules

    @classmethod
    def for_member(cls, records: RecordStore, directory: Directory, principal: Principal, org_id: int, *,
                   history: RecordHistory | None = None) -> Workspace:
        """The caller's workspace in ``org_id``; NotFound unless they are an active member of it (SPEC §2:
        deny by default, without revealing that the organisation exists). Every front door gets its
        workspace here, so no handler checks membership itself."""
        workspace = cls(records, directory, principal, org_id, history=history)
        workspace.require_member()
        return workspace

    def require_member(self) -> None:
        if not self.principal.is_active or self.org_id not in self.principal.org_roles:
            raise NotFound("organisation not found")


class RecordHistory(Protocol):
    """What docs and tickets keep and check on every create and update, whatever API made it
    (``tow_core.record_history``): doc revisions, the ticket activity log, and rules that span several
    records (a parent, a doc's sub-pages). Runs in the saving transaction after the store wrote the
    record, so raising undoes the whole change."""

    def created(self, ws: Workspace, record: Record) -> None: ...

    def changed(self, ws: Workspace, before: Record, after: Record) -> Record:
        """``after`` as finally stored: a doc may have moved into its parent's scope, sub-pages with it."""
        ...


def clean_text(value: str, field: str, *, max_length: int, required: bool = False) -> str:
    """Strip control characters (they also mark search highlights) and enforce the length."""
    cleaned = value.translate(_CONTROL)
    if required and not cleaned.strip():
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(cleaned) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters", field=field)
    return cleaned.strip() if required else cleaned


def resolve_scope(ws: Workspace, kind: str, ref: int | None) -> tuple[Scope, ProjectAccess | None]:
    """Turn ``(kind, ref)`` from a request into a Scope of this organisation, checking every id."""
    try:
        scope_kind = ScopeKind(kind)
    except ValueError as exc:
        raise InvalidInput("scope must be organisation, group, project or user", field="scope") from exc
    if scope_kind is ScopeKind.ORGANISATION:
        if ref is not None and ref != ws.org_id:
            raise InvalidInput(f"an organisation scope's id must be this organisation's ({ws.org_id}), or left out",
                               field="scope_id")
        return Scope.organisation(ws.org_id), None
    if ref is None:
        raise InvalidInput(f"a {scope_kind.value} scope needs its id", field="scope_id")
    if scope_kind is ScopeKind.GROUP:
        group = ws.directory.group(ref)
        if group is None or group.organisation_id != ws.org_id:
            raise NotFound("group not found")
        return Scope.group(ws.org_id, ref), None
    if scope_kind is ScopeKind.PROJECT:
        project = ws.directory.project(ref)
        visible = project is not None and project.organisation_id == ws.org_id
        if not visible or not can_read_project(ws.principal, project.access):
            raise NotFound("project not found")
        return Scope.project(ws.org_id, ref), project.access
    if ref != ws.principal.user_id:  # private scopes belong to their owner alone
        raise NotFound("user not found")
    return Scope.private(ws.org_id, ref), None


def project_access_of(ws: Workspace, scope: Scope) -> ProjectAccess | None:
    if scope.kind is not ScopeKind.PROJECT:
        return None
    project = ws.directory.project(scope.ref_id)
    return project.access if project is not None else None


def check_named_ids(ws: Workspace, record_type: RecordType, fields: Mapping[str, Any],
                    previous: Mapping[str, Any]) -> None:
    """Every id that ``fields`` (all or some of a record's fields) adds to ``previous`` names what its
    field says (``records.Names``) — else InvalidInput naming the field."""
    for name, spec in FIELD_SPECS[record_type].items():
        if spec.names is Names.MEMBER:
            _check_member(ws, name, fields.get(name), previous.get(name))
        elif spec.names is Names.READABLE_RECORDS:
            _check_readable(ws, name, fields.get(name) or (), previous.get(name) or ())


def _check_member(ws: Workspace, name: str, user_id: Any, before: Any) -> None:
    if user_id is None or user_id == before:
        return
    if not any(m.user_id == user_id for m in ws.directory.members(ws.org_id)):
        raise InvalidInput(f"{name} must name a member of the organisation", field=name)


def _check_readable(ws: Workspace, name: str, display_ids: Any, before: Any) -> None:
    kept = {str(DisplayId.parse(d)) for d in before}
    for text in display_ids:
        display_id = DisplayId.parse(text)
        if str(display_id) in kept:
            continue
        # One answer for a record that does not exist and one the writer cannot read (SPEC §2).
        if ws.records.readable_by_display_id(ws.principal.user_id, ws.org_id, display_id) is None:
            raise InvalidInput(f"{name}: {display_id} is not a record you can read in this organisation",
                               field=name)


def _no_review_fields(fields: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    changed = sorted(name for name in REVIEW_FIELDS & set(fields) if fields[name] != current.get(name))
    if changed:
        raise InvalidInput(f"{changed[0]} is recorded when a memory diff is approved; it cannot be set directly",
                           field=changed[0])


def _require_write(ws: Workspace, scope: Scope, project: ProjectAccess | None, what: str) -> None:
    if not can_write_scope(ws.principal, scope, project):
        raise AccessDenied(f"you can read but not change {what}")


def _prefix(ws: Workspace, record_type: RecordType, scope: Scope) -> str:
    if record_type is not RecordType.TICKET:
        return PREFIXES[record_type]
    if scope.kind is ScopeKind.PROJECT:
        project = ws.directory.project(scope.ref_id)
        assert project is not None
        return project.key
    return TICKET_PREFIX


def create_record(
    ws: Workspace, *, record_type: RecordType, scope: Scope, project: ProjectAccess | None, title: str,
    body: str = "", fields: Mapping[str, Any] | None = None, generating: bool = False,
    review: Mapping[str, Any] | None = None,
) -> Record:
    """Create a record in a scope the caller can write; its display ID comes from the organisation's
    sequence for the type's prefix. Snapshots written by a person start in review (pending_review); one a
    run is about to write (``generating``) starts in generating (``tow_core.snapshots``).
    ``review``: a memory item's review provenance (``REVIEW_FIELDS``), given only by an approval."""
    ws.require_member()
    _no_review_fields(fields or {}, {})
    fields = {**(fields or {}), **(review or {})}
    if not can_write_scope(ws.principal, scope, project):
        if not can_read_scope(ws.principal, scope, project):
            raise NotFound("scope not found")
        raise AccessDenied("you can read this scope but not write in it")
    status = initial_status(record_type)
    if record_type is RecordType.SNAPSHOT:
        status = "generating" if generating else "pending_review"
    new = NewRecord(
        organisation_id=ws.org_id,
        type=record_type,
        prefix=_prefix(ws, record_type, scope),
        scope=scope,
        title=clean_text(title, "title", max_length=MAX_TITLE, required=True),
        body=clean_text(body, "body", max_length=MAX_BODY),
        status=status,
        author_id=ws.principal.user_id,
        fields=validated_fields(record_type, fields or {}),
    )
    check_named_ids(ws, record_type, new.fields, {})
    record = ws.records.add(new, ws.records.allocate_number(ws.org_id, new.prefix))
    ws.records.set_references(ws.org_id, record.id, references_in(record.title, record.body))
    if ws.history is not None:
        ws.history.created(ws, record)
    return record


def get_record(ws: Workspace, display_id: DisplayId) -> Record:
    ws.require_member()
    record = ws.records.readable_by_display_id(ws.principal.user_id, ws.org_id, display_id)
    if record is None:
        raise NotFound(f"{display_id} not found")
    return record


@dataclass(frozen=True, slots=True)
class RecordChange:
    """A partial update: None means "leave as it is"."""

    title: str | None = None
    body: str | None = None
    status: str | None = None
    fields: Mapping[str, Any] | None = None
    scope: tuple[Scope, ProjectAccess | None] | None = None
    review: Mapping[str, Any] | None = None  # REVIEW_FIELDS, given only by approving a memory diff


def update_record(ws: Workspace, display_id: DisplayId, *, expected_version: int, change: RecordChange) -> Record:
    """Apply ``change`` if the caller may write the record (and, for a scope move, the new scope) and
    nobody saved it since ``expected_version``."""
    current = get_record(ws, display_id)  # NotFound unless readable
    locked = ws.records.for_update(ws.org_id, current.id)
    assert locked is not None
    _require_write(ws, locked.scope, project_access_of(ws, locked.scope), str(display_id))
    updated = locked
    if change.scope is not None and change.scope[0] != locked.scope:
        new_scope, new_project = change.scope
        _require_write(ws, new_scope, new_project, "the destination scope")
        if locked.type is RecordType.TICKET and _prefix(ws, locked.type, new_scope) != locked.display_id.prefix:
            raise InvalidInput("a ticket keeps its project's key: move it within its project", field="scope")
        updated = replace(updated, scope=new_scope)
    if change.status is not None:
        check_transition(locked.type, locked.status, change.status)
        updated = replace(updated, status=change.status)
    edits_text = change.body is not None or change.title is not None
    if edits_text and locked.type is RecordType.SNAPSHOT and locked.status not in ("generating", "pending_review"):
        raise InvalidInput("a snapshot's text can only be edited before it is activated", field="body")
    if change.title is not None:
        updated = replace(updated, title=clean_text(change.title, "title", max_length=MAX_TITLE, required=True))
    if change.body is not None:
        updated = replace(updated, body=clean_text(change.body, "body", max_length=MAX_BODY))
    if change.fields is not None:
        _no_review_fields(change.fields, locked.fields)
    if change.fields is not None or change.review:
        given = {**(change.fields or {}), **(change.review or {})}
        updated = replace(updated, fields=validated_fields(locked.type, given, locked.fields))
        check_named_ids(ws, locked.type, updated.fields, locked.fields)
    activating = locked.type is RecordType.SNAPSHOT and change.status == "active" and locked.status != "active"
    # One active snapshot per (snapshot type, scope): activating one, or moving/retyping an active one,
    # supersedes the active one it would otherwise sit beside.
    placement = (updated.scope, updated.fields.get("snapshot_type"))
    relocated = placement != (locked.scope, locked.fields.get("snapshot_type"))
    takes_over = updated.type is RecordType.SNAPSHOT and updated.status == "active" and (activating or relocated)
    superseded = _supersede_active_snapshots(ws, updated) if takes_over else []
    saved = ws.records.save(updated, expected_version=expected_version)
    if saved.scope != locked.scope:
        audit_record(ws, AuditAction.RECORD_SCOPE_MOVED, saved, old=scope_label(locked.scope),
                     new=scope_label(saved.scope))
    if activating:
        audit_record(ws, AuditAction.SNAPSHOT_ACTIVATED, saved, superseded=superseded)
    if change.title is not None or change.body is not None:
        ws.records.set_references(ws.org_id, saved.id, references_in(saved.title, saved.body))
    if ws.history is not None:
        saved = ws.history.changed(ws, locked, saved)
    return saved


def _supersede_active_snapshots(ws: Workspace, activating: Record) -> list[str]:
    """Activating a snapshot supersedes the active one of the same snapshot type and scope (SPEC §4);
    returns the display IDs it superseded."""
    snapshot_type = activating.fields["snapshot_type"]
    superseded = []
    for previous in ws.records.active_snapshots_for_update(ws.org_id, snapshot_type, activating.scope):
        if previous.id != activating.id:
            ws.records.save(replace(previous, status="superseded"), expected_version=previous.version)
            superseded.append(str(previous.display_id))
    return superseded


def scope_label(scope: Scope) -> str:
    return f"{scope.kind.value}:{scope.ref_id}"


def audit_record(ws: Workspace, action: AuditAction, record: Record, **details: object) -> None:
    """An audit entry about a record: its display ID and type, never its text."""
    ws.directory.audit(AuditEntry(ws.org_id, ws.principal.user_id, action, str(record.display_id),
                                  {"type": record.type.value, **details}))


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be from 1 to {MAX_PAGE}", field="limit")
    return limit


def list_records(ws: Workspace, query: RecordQuery, *, cursor: str | None, limit: int) -> Page[Record]:
    ws.require_member()
    return ws.records.list_readable(ws.principal.user_id, ws.org_id, query, cursor=cursor, limit=_limit(limit))


def count_records(ws: Workspace, query: RecordQuery) -> int:
    ws.require_member()
    return ws.records.count_readable(ws.principal.user_id, ws.org_id, query)


def search_records(ws: Workspace, text: str, query: RecordQuery, *, cursor: str | None, limit: int
                   ) -> Page[SearchHit]:
    ws.require_member()
    return keyword_search(ws, search_text(text), query, cursor=cursor, limit=limit)


def search_text(text: str) -> str:
    """A search query as searched: control characters stripped, trimmed, 1–500 characters (InvalidInput on ``q``)."""
    return clean_text(text, "q", max_length=500, required=True)


def keyword_search(ws: Workspace, text: str, query: RecordQuery, *, cursor: str | None, limit: int
                   ) -> Page[SearchHit]:
    """Full-text search of what the caller reads, for a member's workspace (``Workspace.for_member``) and a
    query already cleaned by ``search_text``: neither is checked again."""
    return ws.records.search_readable(ws.principal.user_id, ws.org_id, text, query, cursor=cursor,
                                      limit=_limit(limit))


def backlinks(ws: Workspace, display_id: DisplayId) -> list[RecordSummary]:
    """Records citing ``display_id`` — only those the caller can read, and only if it can read the target."""
    record = get_record(ws, display_id)
    return ws.records.backlinks_readable(ws.principal.user_id, ws.org_id, record.id)


def references(ws: Workspace, display_id: DisplayId) -> list[RecordSummary]:
    record = get_record(ws, display_id)
    return ws.records.references_readable(ws.principal.user_id, ws.org_id, record.id)


def lookup(ws: Workspace, text: str, *, limit: int = 20) -> list[RecordSummary]:
    """Resolve a display ID or a title prefix to records the caller can read."""
    ws.require_member()
    text = clean_text(text, "q", max_length=200, required=True)
    return ws.records.lookup_readable(ws.principal.user_id, ws.org_id, text, limit=_limit(limit))


def project_filter(ws: Workspace, project_key: str | None) -> int | None:
    """The project id for "?project=KEY", only when the caller can read it (else not found)."""
    if project_key is None:
        return None
    for project in ws.directory.projects(ws.org_id):
        if project.key == project_key and can_read_project(ws.principal, project.access):
            return project.id
    raise NotFound(f"project {project_key} not found")
