"""The knowledge pages' use cases: a record list or board, one record with everything its page shows, the
search page, and the forms only pages send (rules in ``tow_core.knowledge``, ``docs``, ``tickets``,
``attachments`` and ``semantic_search``). Each page reads its frame and content in one unit of work."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tow_core import administration, attachments, docs, knowledge, tickets
from tow_core.access import can_write_scope
from tow_core.ai import EmbeddingModel
from tow_core.attachments import UploadDesk
from tow_core.docs import Crumb, Revision, TreeNode
from tow_core.errors import InvalidInput
from tow_core.records import DisplayId, Record, RecordQuery, RecordSummary, RecordType
from tow_core.semantic_search import SearchMode, SearchResult
from tow_core.snapshots import Provenance
from tow_core.tickets import ActivityEntry, Comment, Link
from tow_core.unit_of_work import Acting, Credential, Transactions
from tow_core.uploads import Upload, UploadStore
from tow_core.use_cases.extraction import ExtractionPolicy, after_doc_write
from tow_core.use_cases.frame import Framed, frame_of, picked_project
from tow_core.use_cases.records import ScopeChoice, create_in, search_in
from tow_core.use_cases.snapshots import snapshot_provenance

PRIVATE = "user"  # a form's private-scope choice: the signed-in person's own scope


@dataclass(frozen=True)
class RecordList:
    records: tuple[Record, ...]
    next_cursor: str | None
    tree: list[TreeNode]  # docs only: the doc tree of the picked project (or all)
    people: dict[int, str]  # member id → display name
    ai_configured: bool = False  # the snapshots page offers generating a draft only then
    uploads_enabled: bool = False  # the new-record editor says "save first" for a pasted image only then


@dataclass(frozen=True)
class RecordView:
    record: Record
    people: dict[int, str]
    backlinks: list[RecordSummary]
    references: list[RecordSummary]
    files: list[Upload]  # empty when this server has no upload store
    uploads_enabled: bool
    crumbs: list[Crumb] | None = None  # docs
    revisions: list[Revision] | None = None  # docs
    comments: list[Comment] | None = None  # tickets
    activity: list[ActivityEntry] | None = None  # tickets
    links: list[Link] | None = None  # tickets
    extraction_enabled: bool = False  # docs: AI is configured, so the page offers "Extract memory"
    provenance: Provenance | None = None  # snapshots: pinned sources (changed since?) and the generating run
    writable: bool = False  # the caller writes its scope: the page offers deleting a doc only then
    watching: bool = False  # the caller watches it (comments on it notify them): the page offers (un)watching


@dataclass(frozen=True)
class CommentView:
    """One comment as the ticket page shows it (the live page appends it)."""

    comment: Comment
    author_name: str | None  # None: no longer a member of the organisation
    viewer_id: int  # the page offers editing and deleting to the comment's author
    project_key: str | None  # the picked project, one the viewer reads: the comment's links keep it


@dataclass(frozen=True)
class SearchView:
    result: SearchResult | None  # None: nothing asked yet, or the query could not be searched (``problem``)
    ai_configured: bool
    problem: str | None = None  # why the query was not searched (only stop words, too long ...): shown on the page


def people_of(acting: Acting, org_id: int) -> dict[int, str]:
    """Member id → display name, for pages that name people."""
    members = administration.list_members(acting.stores.directory, acting.principal, org_id=org_id)
    return {m.user_id: m.display_name for m in members}


def _own(acting: Acting, scope: ScopeChoice) -> ScopeChoice:
    kind, ref = scope
    return (kind, acting.principal.user_id) if kind == PRIVATE else (kind, ref)


@dataclass(frozen=True)
class RecordPageUseCases:
    transactions: Transactions
    upload_store: UploadStore | None = None  # None: this server takes no uploads (the page shows no files)
    embedding_model: EmbeddingModel | None = None  # None: AI not configured; search answers keyword results
    extraction: ExtractionPolicy = ExtractionPolicy()  # saving a doc queues a memory extraction (when AI is on)

    def record_list(self, credential: Credential, org_id: int, project_key: str | None,
                    record_type: RecordType, *, status: str | None, cursor: str | None, limit: int
                    ) -> Framed[RecordList]:
        """One type's records (newest first, of the picked project if any, with ``status`` if given)."""
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            ws = acting.workspace(org_id)
            query = RecordQuery(frozenset({record_type}), frozenset({status}) if status else frozenset(),
                                frame.project.id if frame.project else None)
            page = knowledge.list_records(ws, query, cursor=cursor, limit=limit)
            tree = docs.doc_tree(ws, acting.stores.history.tree, frame.project.key if frame.project else None) \
                if record_type is RecordType.DOC else []
            return Framed(frame, RecordList(page.items, page.next_cursor, list(tree), people_of(acting, org_id),
                                            self.embedding_model is not None, self.upload_store is not None))

    def record(self, credential: Credential, org_id: int, display_id: DisplayId, project_key: str | None
               ) -> Framed[RecordView]:
        """A readable record with its citations, files, and a doc's crumbs and revisions, a ticket's
        comments, activity and links, or a snapshot's sources and generating run."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            record = knowledge.get_record(ws, display_id)
            frame = frame_of(acting, org_id, project_key)
            people = people_of(acting, org_id)
            files = [] if self.upload_store is None else list(attachments.record_attachments(
                UploadDesk(acting.principal, acting.stores.uploads, self.upload_store, acting.stores.records,
                           acting.stores.directory, acting.now), org_id, record.display_id))
            did, history = record.display_id, acting.stores.history
            extras: dict[str, Any] = {}
            if record.type is RecordType.DOC:
                extras["crumbs"] = list(docs.breadcrumbs(ws, history.tree, did))
                extras["revisions"] = list(docs.list_revisions(ws, history.revisions, did, limit=20))
            if record.type is RecordType.TICKET:
                extras["comments"] = list(tickets.list_comments(ws, history.comments, did))
                extras["activity"] = list(tickets.activity_log(ws, history.activity, did))
                extras["links"] = list(tickets.list_links(ws, history.links, did))
            if record.type is RecordType.SNAPSHOT:
                extras["provenance"] = snapshot_provenance(acting, ws, record)
            view = RecordView(record, people, list(knowledge.backlinks(ws, did)), list(knowledge.references(ws, did)),
                              files, self.upload_store is not None, **extras,
                              extraction_enabled=self.extraction.enabled and record.type is RecordType.DOC,
                              watching=acting.stores.notifications.is_watching(record.id, acting.principal.user_id),
                              writable=can_write_scope(ws.principal, record.scope,
                                                       knowledge.project_access_of(ws, record.scope)))
            return Framed(frame, view)

    def comment(self, credential: Credential, org_id: int, display_id: DisplayId, comment_id: int,
                project_key: str | None) -> CommentView:
        """One comment of a ticket the caller reads, as its page lists it (``tickets.readable_comment``: NotFound
        for anything else, as for an unknown project)."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            comment = tickets.readable_comment(ws, acting.stores.history.comments, display_id, comment_id)
            picked = picked_project(administration.list_projects(acting.stores.directory, acting.principal,
                                                                 org_id=org_id), project_key)
            author = people_of(acting, org_id).get(comment.author_id) if comment.author_id is not None else None
            return CommentView(comment, author, acting.principal.user_id, picked.key if picked else None)

    def create(self, credential: Credential, org_id: int, *, record_type: RecordType, scope: ScopeChoice,
               title: str, body: str, fields: Mapping[str, Any]) -> Record:
        """The create form: as ``RecordUseCases.create``; the scope ``("user", None)`` is the caller's own."""
        with self.transactions.acting_as(credential) as acting:
            record = create_in(acting.workspace(org_id), record_type=record_type, scope=_own(acting, scope),
                               title=title, body=body, fields=fields)
            after_doc_write(acting, self.extraction, None, record)
            return record

    def save(self, credential: Credential, org_id: int, display_id: DisplayId, *, version: int, title: str,
             body: str, fields_for: Callable[[RecordType], Mapping[str, Any] | None]) -> Record:
        """The edit form: title, body and the type-specific fields the form decodes for the record's type
        (``fields_for``; None leaves them as they are)."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            current = knowledge.get_record(ws, display_id)
            change = knowledge.RecordChange(title=title, body=body, fields=fields_for(current.type))
            saved = knowledge.update_record(ws, display_id, expected_version=version, change=change)
            after_doc_write(acting, self.extraction, current, saved)
            return saved

    def move_doc(self, credential: Credential, org_id: int, display_id: DisplayId, scope: ScopeChoice, *,
                 version: int) -> Record:
        """Move a doc (with its sub-pages) to another scope; the private choice makes it private to the caller."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            kind, ref = _own(acting, scope)
            if kind == PRIVATE:
                return docs.make_private(ws, display_id, version=version)
            return docs.move_scope(ws, display_id, kind, ref, version=version)

    def allow_preview(self, credential: Credential, org_id: int) -> None:
        """For what only members get and nothing is read for (the editor's preview): NotFound otherwise."""
        with self.transactions.acting_as(credential) as acting:
            acting.workspace(org_id)

    def search(self, credential: Credential, org_id: int, project_key: str | None, text: str, *,
               mode: SearchMode | None, cursor: str | None) -> Framed[SearchView]:
        """The search page: nothing searched for a blank query; else as ``RecordUseCases.search`` over the
        picked project (20 hits)."""
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            result, problem = None, None
            if text.strip():
                query = RecordQuery(project_id=frame.project.id if frame.project else None)
                try:
                    result = search_in(acting, acting.workspace(org_id), self.embedding_model, text, query,
                                       mode=mode, cursor=cursor, limit=20)
                except InvalidInput as refused:  # the page keeps the query and says what to change
                    problem = refused.message
            return Framed(frame, SearchView(result, self.embedding_model is not None, problem))
