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
- The query text is sent to the embedding model on behalf of the caller (egress ledger: purpose
  embedding, the acting user, no record IDs — no record content is sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from tow_core import knowledge
from tow_core.ai import EgressContext, EgressPurpose, EmbeddingModel
from tow_core.embeddings import EmbeddingSpace
from tow_core.errors import InvalidInput, NotConfigured, RetryableError
from tow_core.knowledge import Workspace
from tow_core.records import RecordQuery, SearchHit

RRF_K = 60
HYBRID_DEPTH = 50  # each ranking contributes at least this many candidates to the fusion


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
    if chosen is SearchMode.KEYWORD:
        page = knowledge.keyword_search(ws, knowledge.search_text(text), query, cursor=cursor, limit=limit)
        return SearchResult(chosen, page.items, page.next_cursor)
    if cursor is not None:
        raise InvalidInput("cursor paging is for mode=keyword; semantic and hybrid search answer one page",
                           field="cursor")
    text = knowledge.search_text(text)
    semantic, reason = _semantic(ws, text, query, limit=max(limit, HYBRID_DEPTH) if chosen is SearchMode.HYBRID
                                 else limit, embedder=embedder, index=index)
    if reason is not None:
        page = knowledge.keyword_search(ws, text, query, cursor=None, limit=limit)
        return SearchResult(SearchMode.KEYWORD, page.items, page.next_cursor, reason)
    if chosen is SearchMode.SEMANTIC:
        return SearchResult(chosen, tuple(semantic))
    keyword = knowledge.keyword_search(ws, text, query, cursor=None, limit=max(limit, HYBRID_DEPTH))
    return SearchResult(chosen, tuple(reciprocal_rank_fusion([keyword.items, semantic], limit=limit)))


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
