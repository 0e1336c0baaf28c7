"""Doc pages over HTTP: revisions, the page tree, breadcrumbs, recursive scope moves and delete (SPEC §4).

Creating, editing, archiving (status ``archived``) and restoring docs go through ``/records``; the
revision, tree and scope rules hold there too (``tow_core.docs``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from tow_core.docs import Crumb, Revision, TreeNode
from tow_core.errors import InvalidInput
from tow_core.records import DisplayId
from tow_core.unit_of_work import Credential
from tow_core.use_cases.docs import DocUseCases
from tow_http.records.api import BASE
from tow_http.records.shapes import ProjectKey, RecordOut, with_etag
from tow_http.shapes import ScopeIn, ScopeOut, Strict, Version, scope_out

RevisionLimit = Annotated[int, QueryParameter(name="limit", ge=1, le=200, description="page size (1–200)")]
BeforeVersion = Annotated[
    int | None, QueryParameter(name="before_version", description="only revisions older than this version")
]


class MoveScopeIn(Strict):
    scope: ScopeIn
    version: Version | None = None


class RevisionOut(msgspec.Struct):
    version: int
    title: str
    body: str
    saved_at: datetime
    replaced_by: int | None
    replaced_at: datetime


class TreeNodeOut(msgspec.Struct):
    display_id: str
    title: str
    status: str
    scope: ScopeOut
    children: list[TreeNodeOut]


class CrumbOut(msgspec.Struct):
    kind: str
    title: str
    display_id: str | None


class BreadcrumbsOut(msgspec.Struct):
    items: list[CrumbOut]
    text: str


def revision_out(revision: Revision) -> RevisionOut:
    return RevisionOut(revision.version, revision.title, revision.body, revision.saved_at, revision.replaced_by,
                       revision.replaced_at)


def tree_out(node: TreeNode) -> TreeNodeOut:
    s = node.summary
    return TreeNodeOut(str(s.display_id), s.title, s.status, scope_out(s.scope), [tree_out(c) for c in node.children])


def crumb_out(crumb: Crumb) -> CrumbOut:
    return CrumbOut(crumb.kind, crumb.title, str(crumb.display_id) if crumb.display_id else None)


def optional_version(request: Request, body_version: int | None = None) -> int | None:
    """``If-Match: "3"`` or a body ``version``: when given, the move is refused (409) if the doc changed."""
    header = request.headers.get("if-match")
    if not header:
        return body_version
    try:
        return int(header.removeprefix("W/").strip('"'))
    except ValueError as exc:
        raise InvalidInput("If-Match must be the doc's version, e.g. \"3\"", field="If-Match") from exc


@get(
    f"{BASE}/records/{{display_id:str}}/revisions",
    summary="A doc's earlier versions",
    description="Every save that changed the title or body kept the previous title and body: newest first, "
    "with the version it was, when it was saved, and who replaced it when. 404 unless you can read the doc.",
    sync_to_thread=True,
)
def list_revisions(
    org_id: int, display_id: str, caller: NamedDependency[Credential], docs: NamedDependency[DocUseCases],
    before_version: BeforeVersion = None, limit: RevisionLimit = 50,
) -> list[RevisionOut]:
    revisions = docs.revisions(caller, org_id, DisplayId.parse(display_id), before_version=before_version, limit=limit)
    return [revision_out(r) for r in revisions]


@get(
    f"{BASE}/docs/tree",
    summary="The doc tree you can read",
    description="Top-level pages with their sub-pages, by title; `project=KEY` limits it to that project's docs. "
    "Only docs you can read appear.",
    sync_to_thread=True,
)
def doc_tree(org_id: int, caller: NamedDependency[Credential], docs: NamedDependency[DocUseCases],
             project: ProjectKey = None) -> list[TreeNodeOut]:
    return [tree_out(n) for n in docs.tree(caller, org_id, project)]


@get(
    f"{BASE}/docs/{{display_id:str}}/breadcrumbs",
    summary="Where a doc sits",
    description="Organisation / [project] / Docs / parent pages / the page. A parent you cannot read shows as "
    "\"…\", never by its title.",
    sync_to_thread=True,
)
def doc_breadcrumbs(org_id: int, display_id: str, caller: NamedDependency[Credential],
                    docs: NamedDependency[DocUseCases]) -> BreadcrumbsOut:
    crumbs = docs.breadcrumbs(caller, org_id, DisplayId.parse(display_id))
    return BreadcrumbsOut([crumb_out(c) for c in crumbs], " / ".join(c.title for c in crumbs))


@post(
    f"{BASE}/docs/{{display_id:str}}/move-scope",
    summary="Move a doc and all its sub-pages to another scope",
    description="One transaction: you need write access to the old scope of every page that moves and to the new "
    "scope, else nothing moves. A sub-page moved alone becomes a top-level page of its new scope. Send `version` "
    "(or If-Match) to refuse the move if the doc changed since you loaded it.",
    status_code=200,
    sync_to_thread=True,
)
def move_scope(
    org_id: int, display_id: str, data: JSONBody[MoveScopeIn], request: Request,
    caller: NamedDependency[Credential], docs: NamedDependency[DocUseCases],
) -> Response[RecordOut]:
    record = docs.move_scope(caller, org_id, DisplayId.parse(display_id), data.scope.kind, data.scope.id,
                             version=optional_version(request, data.version))
    return with_etag(record)


@post(
    f"{BASE}/docs/{{display_id:str}}/make-private",
    summary="Make a doc and its sub-pages private to you",
    description="Moves them into your private scope (readable by you alone), with the same rules as move-scope.",
    status_code=200,
    sync_to_thread=True,
)
def make_private(org_id: int, display_id: str, request: Request, caller: NamedDependency[Credential],
                 docs: NamedDependency[DocUseCases]) -> Response[RecordOut]:
    record = docs.make_private(caller, org_id, DisplayId.parse(display_id), version=optional_version(request))
    return with_etag(record)


@delete(
    f"{BASE}/docs/{{display_id:str}}",
    summary="Delete a doc",
    description="Removes the doc and its revisions for good (archive it instead to keep it). Needs write access; "
    "a doc with sub-pages is refused (409): move or delete them first.",
    sync_to_thread=True,
)
def delete_doc(org_id: int, display_id: str, caller: NamedDependency[Credential],
               docs: NamedDependency[DocUseCases]) -> None:
    docs.delete(caller, org_id, DisplayId.parse(display_id))


docs_router = Router(
    path="/api",
    route_handlers=[list_revisions, doc_tree, doc_breadcrumbs, move_scope, make_private, delete_doc],
    tags=["docs"],
)
