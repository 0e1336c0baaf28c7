"""Search in three modes — keyword, semantic, hybrid — over what the caller may read (SPEC §7).

Rules:
- ``keyword``: PostgreSQL full-text search (``knowledge.keyword_search``), pageable with a cursor.
- ``semantic``: the ``limit`` records nearest to the query's embedding among those the caller can
  read, filtered by the same type/status/project filters. The index adapter applies the visibility
  predicate in the same statement as the nearest-neighbour ordering and guarantees the contract: the
  top-k of what the caller may read, never a short page when k readable embedded records exist.
- ``hybrid``: reciprocal-rank fusion (k = 60, Cormack et al. 2009) of the keyword and semantic
  rankings; a record found by both ranks above one found by either alone.
- Without an embedding model (AI not configured), or before anything has been embedded, semantic
  and hybrid answer keyword results and say why (``fallback_reason``); the default mode is hybrid
  when a model is configured and keyword otherwise. A provider outage, rate limiting, a refused key or
  a provider removed from ``ai.approved_providers`` degrade the same way.
- Semantic and hybrid answer one page (``limit`` ≤ 200); cursors page keyword results only.
- A display ID in the query ("SEC-1", "doc-12") names a record: the caller reads it and it passes the
  filters, it comes first (rank 1.0), whatever the mode, and is not repeated further down.
- A query of only stop words or punctuation matches no word: the answer is empty (but for a record it
  names) with a ``hint`` saying what to type instead — not a refusal.
- The query text is sent to the embedding model on behalf of the caller (egress ledger: purpose
  embedding, the acting user, no record IDs — no record content is sent).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from tow_core import knowledge
from tow_core.access import ScopeKind
from tow_core.ai import EgressContext, EgressPurpose, EmbeddingModel
from tow_core.embeddings import EmbeddingSpace
from tow_core.errors import InvalidInput, NoSearchTerms, NotConfigured, RetryableError
from tow_core.knowledge import Workspace
from tow_core.records import DISPLAY_ID_PATTERN, Page, Record, RecordQuery, RecordSummary, SearchHit, references_in

RRF_K = 60
HYBRID_DEPTH = 50  # each ranking contributes at least this many candidates to the fusion
MAX_NAMED = 5  # display IDs in one query looked up as such
_ANY_CASE_ID = re.compile(DISPLAY_ID_PATTERN.pattern, re.IGNORECASE)
NO_TERMS_HINT = ("only stop words or punctuation: search for a name, a topic or a word from the text, "
                 "or a record ID such as DOC-12")


class SearchMode(StrEnum):
    KEYWORD = "keyword"
    SEMANTIC = "semantic"
    HYBRID = "hybrid"


class FallbackReason(StrEnum):
    AI_NOT_CONFIGURED = "ai_not_configured"
    EMBEDDINGS_NOT_READY = "embeddings_not_ready"  # nothing embedded yet in this model/dimension
    EMBEDDING_UNAVAILABLE = "embedding_unavailable"  # the provider failed for the query


class SemanticIndex(Protocol):
    def active_space(self) -> EmbeddingSpace | None: ...

    def nearest_readable(self, principal_id: int, org_id: int, space: EmbeddingSpace, vector: Sequence[float],
                         text: str, query: RecordQuery, k: int) -> list[SearchHit]:
        """The ``k`` readable records nearest to ``vector`` (rank: cosine similarity), best first;
        ``text`` only highlights the snippets."""
        ...


@dataclass(frozen=True, slots=True)
class SearchResult:
    mode: SearchMode
    hits: tuple[SearchHit, ...]
    next_cursor: str | None = None
    fallback_reason: FallbackReason | None = None
    hint: str | None = None  # why nothing could match (NO_TERMS_HINT)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[SearchHit]], *, limit: int, k: int = RRF_K) -> list[SearchHit]:
    """Fuse rankings by Σ 1/(k + rank); ties go to the lower record id. The first ranking's hit (and
    so its snippet) represents a record found by several."""
    scores: dict[int, float] = {}
    representative: dict[int, SearchHit] = {}
    for ranking in rankings:
        for position, hit in enumerate(ranking, start=1):
            record_id = hit.summary.id
            scores[record_id] = scores.get(record_id, 0.0) + 1.0 / (k + position)
            representative.setdefault(record_id, hit)
    best = sorted(scores, key=lambda rid: (-scores[rid], rid))[:limit]
    return [replace(representative[rid], rank=scores[rid]) for rid in best]


def search(ws: Workspace, text: str, query: RecordQuery, *, mode: SearchMode | None, cursor: str | None, limit: int,
           embedder: EmbeddingModel | None, index: SemanticIndex) -> SearchResult:
    """Search in ``mode`` (or the default). ``ws`` is a member's workspace (``Workspace.for_member`` checked
    membership, once); the query is cleaned once here (``knowledge.search_text``) and every ranking uses it."""
    chosen = mode or (SearchMode.HYBRID if embedder is not None else SearchMode.KEYWORD)
    if chosen is not SearchMode.KEYWORD and cursor is not None:
        raise InvalidInput("cursor paging is for mode=keyword; semantic and hybrid search answer one page",
                           field="cursor")
    text = knowledge.search_text(text)
    named = _named(ws, text, query)
    text = _without(text, named)  # "SEC-1 rollout": SEC-1 itself, then what "rollout" finds
    if not text:
        return SearchResult(chosen, tuple(named))
    if chosen is SearchMode.KEYWORD:
        return _first(named, _keyword(ws, text, query, cursor, limit), chosen, cursor=cursor, limit=limit)
    keyword, hint = _keyword(ws, text, query, None, max(limit, HYBRID_DEPTH)) if chosen is SearchMode.HYBRID \
        else (Page((), None), None)
    if hint is not None:  # nothing to match: no embedding is asked for either
        return _first(named, (keyword, hint), chosen, cursor=None, limit=limit)
    semantic, reason = _semantic(ws, text, query, limit=max(limit, HYBRID_DEPTH) if chosen is SearchMode.HYBRID
                                 else limit, embedder=embedder, index=index)
    if reason is not None:
        return replace(_first(named, _keyword(ws, text, query, None, limit), SearchMode.KEYWORD, cursor=None,
                              limit=limit), fallback_reason=reason)
    if chosen is SearchMode.SEMANTIC:
        return _first(named, (Page(tuple(semantic), None), None), chosen, cursor=None, limit=limit)
    fused = reciprocal_rank_fusion([keyword.items, semantic], limit=limit + len(named))
    return _first(named, (Page(tuple(fused), None), hint), chosen, cursor=None, limit=limit)


def _keyword(ws: Workspace, text: str, query: RecordQuery, cursor: str | None, limit: int
             ) -> tuple[Page[SearchHit], str | None]:
    try:
        return knowledge.keyword_search(ws, text, query, cursor=cursor, limit=limit), None
    except NoSearchTerms:
        return Page((), None), NO_TERMS_HINT


def _first(named: list[SearchHit], ranked: tuple[Page[SearchHit], str | None], mode: SearchMode, *,
           cursor: str | None, limit: int) -> SearchResult:
    """The named records first (on the first page), then the ranking without them. A keyword page keeps all
    its hits (the cursor continues after its last), so it may carry up to MAX_NAMED more than ``limit``."""
    page, hint = ranked
    ids = {hit.summary.id for hit in named}
    rest = tuple(hit for hit in page.items if hit.summary.id not in ids)
    hits = (*named, *rest) if cursor is None else rest
    if mode is not SearchMode.KEYWORD:
        hits = hits[:max(limit, len(named))]
    return SearchResult(mode, hits, page.next_cursor, hint=None if named else hint)


def _named(ws: Workspace, text: str, query: RecordQuery) -> list[SearchHit]:
    """The readable records the query names by display ID, within the query's filters."""
    hits = []
    for display_id in references_in(text.upper())[:MAX_NAMED]:
        record = ws.records.readable_by_display_id(ws.principal.user_id, ws.org_id, display_id)
        if record is not None and _admits(query, record):
            summary = RecordSummary(record.id, record.type, record.display_id, record.title, record.status,
                                    record.scope)
            hits.append(SearchHit(summary, f"{record.title} — {record.body[:200]}", 1.0))
    return hits


def _without(text: str, named: list[SearchHit]) -> str:
    """The query without the display IDs that named a record (an ID nothing answers, say COVID-19, stays)."""
    found = {str(hit.summary.display_id) for hit in named}
    return " ".join(_ANY_CASE_ID.sub(lambda m: " " if m.group(0).upper() in found else m.group(0), text).split())


def _admits(query: RecordQuery, record: Record) -> bool:
    # The filters search takes (type, status, project); ``writable`` and ``assignee_id`` are list-only.
    return ((not query.types or record.type in query.types)
            and (not query.statuses or record.status in query.statuses)
            and (query.project_id is None
                 or (record.scope.kind is ScopeKind.PROJECT and record.scope.ref_id == query.project_id)))


def _semantic(ws: Workspace, text: str, query: RecordQuery, *, limit: int, embedder: EmbeddingModel | None,
              index: SemanticIndex) -> tuple[list[SearchHit], FallbackReason | None]:
    if embedder is None:
        return [], FallbackReason.AI_NOT_CONFIGURED
    space = index.active_space()
    if space is None or (space.model, space.dim) != (embedder.model_name, embedder.dimension):
        return [], FallbackReason.EMBEDDINGS_NOT_READY
    context = EgressContext(EgressPurpose.EMBEDDING, ws.principal.user_id, ws.org_id)
    try:
        [vector] = embedder.embed([text], context)
    except (RetryableError, NotConfigured):
        # An outage, rate limiting, a refused key or a provider no longer approved: the reader still gets
        # keyword results (and the reason); the egress ledger and `tow embeddings status` show the cause.
        return [], FallbackReason.EMBEDDING_UNAVAILABLE
    return index.nearest_readable(ws.principal.user_id, ws.org_id, space, vector, text, query, limit), None
