"""Knowledge records: create, read, update, list, count, search (keyword, semantic, hybrid), citations and
lookup (rules in ``tow_core.knowledge`` and ``tow_core.semantic_search``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tow_core import knowledge, semantic_search
from tow_core.ai import EmbeddingModel
from tow_core.knowledge import RecordChange, Workspace
from tow_core.records import DisplayId, Page, Record, RecordQuery, RecordSummary, RecordType
from tow_core.semantic_search import SearchMode, SearchResult
from tow_core.unit_of_work import Acting, Credential, Transactions
from tow_core.use_cases.extraction import ExtractionPolicy, after_doc_write

ScopeChoice = tuple[str, int | None]  # (organisation | group | project | user, its id) as a request names it


def record_query(ws: Workspace, types: Iterable[RecordType] | None, statuses: Iterable[str] | None,
                 project: str | None) -> RecordQuery:
    """The list/search filters; ``project`` is a key the caller reads (else NotFound)."""
    return RecordQuery(frozenset(types or ()), frozenset(statuses or ()), knowledge.project_filter(ws, project))


def create_in(ws: Workspace, *, record_type: RecordType, scope: ScopeChoice, title: str, body: str,
              fields: Mapping[str, Any]) -> Record:
    resolved, project = knowledge.resolve_scope(ws, *scope)
    return knowledge.create_record(ws, record_type=record_type, scope=resolved, project=project, title=title,
                                   body=body, fields=fields)


def search_in(acting: Acting, ws: Workspace, embedder: EmbeddingModel | None, text: str, query: RecordQuery, *,
              mode: SearchMode | None, cursor: str | None, limit: int) -> SearchResult:
    """One search in the unit of work: membership was checked when ``ws`` was resolved, the query is cleaned
    once inside ``semantic_search.search``; the hits are read before the unit of work ends."""
    return semantic_search.search(ws, text, query, mode=mode, cursor=cursor, limit=limit, embedder=embedder,
                                  index=acting.stores.semantic)


@dataclass(frozen=True)
class RecordUseCases:
    transactions: Transactions
    embedding_model: EmbeddingModel | None = None  # None: AI not configured; search answers keyword results
    extraction: ExtractionPolicy = ExtractionPolicy()  # saving a doc queues a memory extraction (when AI is on)

    def create(self, credential: Credential, org_id: int, *, record_type: RecordType, scope: ScopeChoice,
               title: str, body: str = "", fields: Mapping[str, Any] | None = None) -> Record:
        with self.transactions.acting_as(credential) as acting:
            record = create_in(acting.workspace(org_id), record_type=record_type, scope=scope, title=title,
                               body=body, fields=fields or {})
            after_doc_write(acting, self.extraction, None, record)
            return record

    def list_records(self, credential: Credential, org_id: int, *, types: Iterable[RecordType] | None = None,
             statuses: Iterable[str] | None = None, project: str | None = None, cursor: str | None = None,
             limit: int = 50) -> Page[Record]:
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            return knowledge.list_records(ws, record_query(ws, types, statuses, project), cursor=cursor, limit=limit)

    def count(self, credential: Credential, org_id: int, *, types: Iterable[RecordType] | None = None,
              statuses: Iterable[str] | None = None, project: str | None = None) -> int:
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            return knowledge.count_records(ws, record_query(ws, types, statuses, project))

    def get(self, credential: Credential, org_id: int, display_id: DisplayId) -> Record:
        with self.transactions.acting_as(credential) as acting:
            return knowledge.get_record(acting.workspace(org_id), display_id)

    def update(self, credential: Credential, org_id: int, display_id: DisplayId, *, version: int,
               title: str | None = None, body: str | None = None, status: str | None = None,
               fields: Mapping[str, Any] | None = None, scope: ScopeChoice | None = None) -> Record:
        """A partial update (None: leave as it is) at the version the editor loaded."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            moved = None if scope is None else knowledge.resolve_scope(ws, *scope)
            change = RecordChange(title=title, body=body, status=status, fields=fields, scope=moved)
            before = knowledge.get_record(ws, display_id) if title is not None or body is not None else None
            saved = knowledge.update_record(ws, display_id, expected_version=version, change=change)
            if before is not None:
                after_doc_write(acting, self.extraction, before, saved)
            return saved

    def backlinks(self, credential: Credential, org_id: int, display_id: DisplayId) -> list[RecordSummary]:
        with self.transactions.acting_as(credential) as acting:
            return list(knowledge.backlinks(acting.workspace(org_id), display_id))

    def references(self, credential: Credential, org_id: int, display_id: DisplayId) -> list[RecordSummary]:
        with self.transactions.acting_as(credential) as acting:
            return list(knowledge.references(acting.workspace(org_id), display_id))

    def search(self, credential: Credential, org_id: int, text: str, *,
               types: Iterable[RecordType] | None = None, statuses: Iterable[str] | None = None,
               project: str | None = None, mode: SearchMode | None = None, cursor: str | None = None,
               limit: int = 20) -> SearchResult:
        """Keyword, semantic or hybrid search (``semantic_search``), membership checked once."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            return search_in(acting, ws, self.embedding_model, text, record_query(ws, types, statuses, project),
                             mode=mode, cursor=cursor, limit=limit)

    def lookup(self, credential: Credential, org_id: int, text: str, *, limit: int = 20
               ) -> list[RecordSummary]:
        with self.transactions.acting_as(credential) as acting:
            return list(knowledge.lookup(acting.workspace(org_id), text, limit=limit))
