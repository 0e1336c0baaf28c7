"""Doc pages (SPEC §2, §4): revisions, the page tree, recursive scope moves, breadcrumbs and delete.

Rules:
- Every save that changes a doc's title or body keeps the previous title and body as a revision (the
  version it was, when that version was saved, who replaced it and when), whatever API made the save
  (``knowledge.RecordHistory``). A doc's readers read its revisions, newest first.
- ``fields.parent_id`` names a doc of the same organisation that the caller can read (else 404,
  field ``parent_id``) and that is neither the doc itself nor one of its sub-pages (422).
- A sub-page lives in its parent's scope, so it is readable wherever its parent is: creating under a
  parent in another scope is refused (422, field ``scope``); moving a page under a new parent moves it,
  with its sub-pages, into the parent's scope (same checks as any scope move).
- A scope change is recursive (SPEC §2 "Moving scope is explicit"): the page and every sub-page below it
  move in the caller's one transaction, and only if the caller can write the old scope of *every* moved
  page and the new scope — otherwise nothing moves. Moving a sub-page alone into a scope other than its
  parent's detaches it: it becomes a top-level page of its new scope (as moving a page to another
  collection does in Outline).
- Delete (write access) removes the page and its revisions; references to it go too. A page with
  sub-pages is not deleted (409): move or delete them first, so nothing is orphaned.
- The tree and breadcrumbs show readable docs only; an ancestor the caller cannot read is shown as "…",
  never by its title or display ID.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from tow_core.access import Scope, ScopeKind, can_write_scope
from tow_core.audit import AuditAction
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tow_core.knowledge import (
    RecordChange,
    Workspace,
    audit_record,
    get_record,
    project_access_of,
    project_filter,
    resolve_scope,
    scope_label,
    update_record,
)
from tow_core.records import DisplayId, Record, RecordSummary, RecordType

HIDDEN = "…"  # what an ancestor the caller cannot read is called
MAX_REVISIONS_PAGE = 200


# --- core types and ports ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Revision:
    """A doc's title and body as they were at ``version``."""

    version: int
    title: str
    body: str
    saved_at: datetime  # when this version was saved
    replaced_by: int | None  # who saved over it
    replaced_at: datetime


@dataclass(frozen=True, slots=True)
class Ancestor:
    id: int
    summary: RecordSummary | None  # None: the caller cannot read it (show HIDDEN)


@dataclass(frozen=True, slots=True)
class TreeNode:
    summary: RecordSummary
    parent_id: int | None
    children: tuple[TreeNode, ...] = ()


@dataclass(frozen=True, slots=True)
class Branch:
    """One entry of one level of the doc tree (the sidebar's): a readable doc, and whether readable sub-pages
    sit below it (loaded when asked)."""

    summary: RecordSummary
    has_children: bool


@dataclass(frozen=True, slots=True)
class Crumb:
    kind: str  # organisation, project, section, doc
    title: str
    display_id: DisplayId | None = None


class DocRevisions(Protocol):
    def add(self, before: Record, *, replaced_by: int) -> None:
        """Keep ``before``'s title and body as the revision of its version."""
        ...

    def list(self, record_id: int, *, before_version: int | None, limit: int) -> list[Revision]:
        """Newest first; only versions below ``before_version`` when given."""
        ...


class RecordTree(Protocol):
    """Parent links (``fields.parent_id``) of docs and tickets, walked whoever may read the records:
    callers authorise, and summaries are filled in for readable records only."""

    def ancestors(self, principal_id: int, org_id: int, record_id: int) -> list[Ancestor]:
        """Parent first, up to the top."""
        ...

    def descendants_for_update(self, org_id: int, record_id: int) -> list[Record]:
        """Every record below ``record_id`` (children, their children, ...), locked for this transaction."""
        ...

    def has_children(self, org_id: int, record_id: int) -> bool: ...

    def readable_docs(self, principal_id: int, org_id: int, project_id: int | None) -> list[TreeNode]:
        """Readable docs (only those of one project's scope when ``project_id``), flat, by title."""
        ...

    def readable_doc_level(self, principal_id: int, org_id: int, project_id: int | None, parent_id: int | None,
                           limit: int | None) -> list[Branch]:
        """One level of the tree of ``readable_docs`` (``level_of`` says which), by title, at most ``limit``,
        read without the rest of the tree: every signed-in page shows the top in its sidebar."""
        ...

    def delete(self, org_id: int, record_id: int) -> None:
        """Delete the record with its revisions and references (the caller checked it has no children)."""
        ...


# --- the parent, shared with tickets -------------------------------------------------------------------


def checked_parent(ws: Workspace, tree: RecordTree, record: Record) -> Record | None:
    """``record``'s parent, locked until commit (it cannot be deleted or moved meanwhile): readable,
    of the same type, never the record itself or below it."""
    parent_id = record.fields.get("parent_id")
    if parent_id is None:
        return None
    found = ws.records.readable(ws.principal.user_id, ws.org_id, parent_id)
    parent = ws.records.for_update(ws.org_id, parent_id) if found is not None else None
    if parent is None:
        raise NotFound(f"parent {record.type.value} not found", field="parent_id")
    if parent.type is not record.type:
        raise InvalidInput(f"parent_id must name a {record.type.value}", field="parent_id")
    if parent.id == record.id or any(a.id == record.id for a in tree.ancestors(ws.principal.user_id, ws.org_id,
                                                                                parent.id)):
        raise InvalidInput(f"a {record.type.value} cannot sit under itself or under one of its own children",
                           field="parent_id")
    return parent


def _can_write(ws: Workspace, scope: Scope) -> bool:
    return can_write_scope(ws.principal, scope, project_access_of(ws, scope))


# --- the hooks every create and update of a doc runs (via record_history) ---------------------------


def on_created(ws: Workspace, tree: RecordTree, record: Record) -> None:
    parent = checked_parent(ws, tree, record)
    if parent is not None and parent.scope != record.scope:
        raise InvalidInput(f"a sub-page lives in its parent's scope: create it in {parent.display_id}'s scope "
                           f"({parent.scope.kind.value})", field="scope")


def on_changed(ws: Workspace, revisions: DocRevisions, tree: RecordTree, before: Record, after: Record) -> Record:
    """Keep the revision, place the page in its parent's scope (or detach it), and move its sub-pages
    along; raising undoes the whole save."""
    if (before.title, before.body) != (after.title, after.body):
        revisions.add(before, replaced_by=ws.principal.user_id)
    placed = _placed(ws, tree, before, after)
    if placed != after:
        placed = ws.records.save(placed, expected_version=after.version)
    if placed.scope != before.scope:
        _move_descendants(ws, tree, placed)
    return placed


def _placed(ws: Workspace, tree: RecordTree, before: Record, after: Record) -> Record:
    parent_id = after.fields.get("parent_id")
    if parent_id is None:
        return after
    if parent_id == before.fields.get("parent_id"):
        if after.scope == before.scope:
            return after
        parent = ws.records.for_update(ws.org_id, parent_id)
        if parent is not None and parent.scope == after.scope:
            return after
        return replace(after, fields={**after.fields, "parent_id": None})  # moved away: now a top-level page
    parent = checked_parent(ws, tree, after)
    assert parent is not None
    if parent.scope == after.scope:
        return after
    if after.scope != before.scope:
        raise InvalidInput("a sub-page lives in its parent's scope: give either a new parent or a new scope",
                           field="scope")
    if not _can_write(ws, parent.scope):
        raise AccessDenied(f"you cannot write in {parent.display_id}'s scope, so you cannot move a page under it")
    return replace(after, scope=parent.scope)


def _move_descendants(ws: Workspace, tree: RecordTree, root: Record) -> None:
    for page in tree.descendants_for_update(ws.org_id, root.id):
        if not _can_write(ws, page.scope):  # never names the page: the caller may not know it exists
            raise AccessDenied("a sub-page below this page is in a scope you cannot change, so nothing moved")
        moved = ws.records.save(replace(page, scope=root.scope), expected_version=page.version)
        audit_record(ws, AuditAction.RECORD_SCOPE_MOVED, moved, old=scope_label(page.scope),
                     new=scope_label(moved.scope), via=f"parent {root.display_id}")


# --- use cases ------------------------------------------------------------------------------------------


def readable_doc(ws: Workspace, display_id: DisplayId) -> Record:
    record = get_record(ws, display_id)  # NotFound unless readable
    if record.type is not RecordType.DOC:
        raise InvalidInput(f"{display_id} is a {record.type.value}, not a doc", field="display_id")
    return record


def list_revisions(ws: Workspace, revisions: DocRevisions, display_id: DisplayId, *,
                   before_version: int | None = None, limit: int = 50) -> list[Revision]:
    """The doc's earlier titles and bodies, newest first, for its readers."""
    doc = readable_doc(ws, display_id)
    if not 1 <= limit <= MAX_REVISIONS_PAGE:
        raise InvalidInput(f"limit must be from 1 to {MAX_REVISIONS_PAGE}", field="limit")
    return revisions.list(doc.id, before_version=before_version, limit=limit)


def move_scope(ws: Workspace, display_id: DisplayId, kind: str, ref: int | None, *, version: int | None = None
               ) -> Record:
    """Move the page and all its sub-pages to the scope ``(kind, ref)`` (see the module rules);
    ``version``, when given, refuses (409) if the page changed since the caller loaded it."""
    doc = readable_doc(ws, display_id)
    change = RecordChange(scope=resolve_scope(ws, kind, ref))
    return update_record(ws, display_id, expected_version=doc.version if version is None else version,
                         change=change)


def make_private(ws: Workspace, display_id: DisplayId, *, version: int | None = None) -> Record:
    """Move the page and its sub-pages into the caller's private scope (same rules as move_scope)."""
    return move_scope(ws, display_id, ScopeKind.USER.value, ws.principal.user_id, version=version)


def delete_doc(ws: Workspace, tree: RecordTree, display_id: DisplayId) -> None:
    doc = readable_doc(ws, display_id)
    locked = ws.records.for_update(ws.org_id, doc.id)  # held to commit: no sub-page can be added meanwhile
    assert locked is not None
    if not _can_write(ws, locked.scope):
        raise AccessDenied(f"you can read but not delete {display_id}")
    if tree.has_children(ws.org_id, locked.id):
        raise Conflict(f"{display_id} has sub-pages: move or delete them first")
    tree.delete(ws.org_id, locked.id)
    audit_record(ws, AuditAction.RECORD_DELETED, locked, scope=scope_label(locked.scope))


def doc_tree(ws: Workspace, tree: RecordTree, project_key: str | None) -> list[TreeNode]:
    """Readable docs as a forest: a page whose parent the caller cannot read (or that lies outside the
    chosen project) is shown at the top, so nothing about the hidden parent shows."""
    ws.require_member()
    nodes = tree.readable_docs(ws.principal.user_id, ws.org_id, project_filter(ws, project_key))
    by_parent: dict[int | None, list[TreeNode]] = {}
    ids = {n.summary.id for n in nodes}
    for node in nodes:
        by_parent.setdefault(node.parent_id if node.parent_id in ids else None, []).append(node)

    def grow(node: TreeNode, path: frozenset[int]) -> TreeNode:
        kids = [k for k in by_parent.get(node.summary.id, []) if k.summary.id not in path]
        return replace(node, children=tuple(grow(k, path | {k.summary.id}) for k in kids))

    return [grow(root, frozenset({root.summary.id})) for root in by_parent.get(None, [])]


def doc_branches(ws: Workspace, tree: RecordTree, project_key: str | None,
                 parent: DisplayId | None = None, *, limit: int | None = None) -> list[Branch]:
    """One level of ``doc_tree``: its top (``parent`` None) or the readable sub-pages of ``parent``, which
    must itself be a readable doc in the chosen project (else NotFound, as for an unknown doc), by title."""
    ws.require_member()
    project_id = project_filter(ws, project_key)
    parent_id = None
    if parent is not None:
        try:
            above = get_record(ws, parent)  # NotFound unless readable
        except NotFound:
            above = None
        in_project = above is not None and (project_id is None or (above.scope.kind is ScopeKind.PROJECT
                                                                   and above.scope.ref_id == project_id))
        if above is None or above.type is not RecordType.DOC or not in_project:
            raise NotFound(f"doc {parent} not found")
        parent_id = above.id
    return tree.readable_doc_level(ws.principal.user_id, ws.org_id, project_id, parent_id, limit)


def level_of(nodes: Sequence[TreeNode], parent_id: int | None) -> list[Branch]:
    """Of readable docs (flat, by title): the top — those whose parent is not among them — or those right below
    ``parent_id``; each with whether any of them sits below it."""
    ids = {n.summary.id for n in nodes}
    parents = {n.parent_id for n in nodes if n.parent_id in ids}
    if parent_id is None:
        level = [n for n in nodes if n.parent_id not in ids]
    else:
        level = [n for n in nodes if n.parent_id == parent_id]
    return [Branch(n.summary, n.summary.id in parents) for n in level]


def breadcrumbs(ws: Workspace, tree: RecordTree, display_id: DisplayId) -> list[Crumb]:
    """Organisation / [project] / Docs / ancestors… / the page; unreadable ancestors are HIDDEN."""
    doc = readable_doc(ws, display_id)
    organisation = ws.directory.organisation(ws.org_id)
    crumbs = [Crumb("organisation", organisation.name if organisation else "")]
    if doc.scope.kind is ScopeKind.PROJECT:
        project = ws.directory.project(doc.scope.ref_id)
        crumbs.append(Crumb("project", project.name if project else HIDDEN))
    crumbs.append(Crumb("section", "Docs"))
    for ancestor in reversed(tree.ancestors(ws.principal.user_id, ws.org_id, doc.id)):
        s = ancestor.summary
        crumbs.append(Crumb("doc", s.title, s.display_id) if s is not None else Crumb("doc", HIDDEN))
    crumbs.append(Crumb("doc", doc.title, doc.display_id))
    return crumbs
