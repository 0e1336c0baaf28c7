"""Pure rules of the embedding pipeline and of search mode selection (tow_core.embeddings,
tow_core.semantic_search), over small in-memory stand-ins."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.fake_embeddings import FakeEmbeddingModel
from tow_core.access import OrgRole, Principal, Scope
from tow_core.embeddings import (
    CHUNK_WORDS,
    MAX_CHUNKS,
    OVERLAP_WORDS,
    EmbeddingSpace,
    EmbeddingSpaceMismatch,
    chunk_texts,
    require_space,
    retry_delay_seconds,
)
from tow_core.errors import InvalidInput
from tow_core.knowledge import Workspace
from tow_core.records import DisplayId, Page, RecordSummary, RecordType, SearchHit
from tow_core.semantic_search import FallbackReason, SearchMode, reciprocal_rank_fusion, search


def hit(record_id: int, rank: float = 0.0, snippet: str = "") -> SearchHit:
    summary = RecordSummary(record_id, RecordType.DECISION, DisplayId("DEC", record_id), f"t{record_id}", "active",
                            Scope.organisation(1))
    return SearchHit(summary, snippet, rank)


# --- chunking ------------------------------------------------------------------------------------------


def test_short_records_and_non_docs_are_one_text_of_title_and_body():
    assert chunk_texts(RecordType.DOC, "Title", "a  short\nbody") == ["Title\n\na short body"]
    assert chunk_texts(RecordType.TICKET, "Title", "") == ["Title"]
    long_body = " ".join(["w"] * 1000)
    assert chunk_texts(RecordType.MEMORY, "T", long_body) == [f"T\n\n{long_body}"]


def test_long_docs_are_overlapping_windows_each_with_the_title():
    words = [f"w{i}" for i in range(1000)]
    chunks = chunk_texts(RecordType.DOC, "Guide", " ".join(words))
    step = CHUNK_WORDS - OVERLAP_WORDS
    assert len(chunks) == 4  # windows start at 0, 250, 500, 750
    assert all(c.startswith("Guide\n\n") for c in chunks)
    second = chunks[1].removeprefix("Guide\n\n").split()
    assert second[0] == f"w{step}" and len(second) == CHUNK_WORDS
    assert chunks[0].split()[-OVERLAP_WORDS:] == second[:OVERLAP_WORDS]  # the overlap
    assert chunks[-1].split()[-1] == "w999"  # nothing lost at the end


def test_a_very_long_doc_is_capped_at_max_chunks():
    body = " ".join(["w"] * (CHUNK_WORDS * MAX_CHUNKS * 2))
    assert len(chunk_texts(RecordType.DOC, "T", body)) == MAX_CHUNKS


def test_retries_back_off_exponentially_up_to_an_hour():
    assert [retry_delay_seconds(n) for n in (1, 2, 3, 10)] == [30, 60, 120, 3600]


# --- the (model, dimension) guard -------------------------------------------------------------------------


@dataclass
class OneSpace:
    space: EmbeddingSpace | None = None

    def record_first(self, model: str, dim: int) -> EmbeddingSpace:
        self.space = self.space or EmbeddingSpace(1, model, dim)
        return self.space


def test_the_first_use_records_the_space_and_a_different_dimension_is_refused_by_name():
    spaces = OneSpace()
    assert require_space(spaces, FakeEmbeddingModel(64, "m")) == EmbeddingSpace(1, "m", 64)
    with pytest.raises(EmbeddingSpaceMismatch) as refused:
        require_space(spaces, FakeEmbeddingModel(32, "m"))
    assert "ai.embedding_dim is 32" in refused.value.message and "dimension 64" in refused.value.message
    assert "`tow embeddings migrate --dim 32 --model m`" in refused.value.message
    with pytest.raises(EmbeddingSpaceMismatch):
        require_space(spaces, FakeEmbeddingModel(64, "another-model"))


# --- reciprocal-rank fusion --------------------------------------------------------------------------------


def test_fusion_ranks_records_found_by_both_first_and_keeps_the_first_rankings_snippet():
    keyword = [hit(1, snippet="kw1"), hit(2, snippet="kw2")]
    semantic = [hit(3), hit(2, snippet="sem2"), hit(4)]
    fused = reciprocal_rank_fusion([keyword, semantic], limit=3)
    assert [h.summary.id for h in fused] == [2, 1, 3]
    assert fused[0].snippet == "kw2" and fused[0].rank == pytest.approx(1 / 62 + 1 / 62)
    assert fused[1].rank == pytest.approx(1 / 61) and fused[2].rank == pytest.approx(1 / 61)  # tie: lower id


# --- search mode selection and fallbacks ---------------------------------------------------------------------


class KeywordOnly:
    """The store's keyword search, answering fixed hits."""

    def __init__(self, hits):
        self.hits = hits

    def search_readable(self, principal_id, org_id, text, query, *, cursor, limit):
        return Page(tuple(self.hits[:limit]), None)


class FixedIndex:
    def __init__(self, space, hits):
        self.space, self.hits, self.calls = space, hits, []

    def active_space(self):
        return self.space

    def nearest_readable(self, principal_id, org_id, space, vector, text, query, k):
        self.calls.append(k)
        return self.hits[:k]


def workspace(hits) -> Workspace:
    principal = Principal.build(7, is_active=True, org_roles={1: OrgRole.MEMBER})
    return Workspace(KeywordOnly(hits), directory=None, principal=principal, org_id=1)


def run(mode, embedder, index, cursor=None):
    from tow_core.records import RecordQuery

    return search(workspace([hit(1), hit(2)]), "query", RecordQuery(), mode=mode, cursor=cursor, limit=10,
                  embedder=embedder, index=index)


def test_the_default_mode_is_hybrid_with_a_model_and_keyword_without():
    space = EmbeddingSpace(1, "fake-embedding", 64)
    index = FixedIndex(space, [hit(3, 0.9), hit(1, 0.8)])
    assert run(None, None, index).mode is SearchMode.KEYWORD and index.calls == []
    hybrid = run(None, FakeEmbeddingModel(64), index)
    assert hybrid.mode is SearchMode.HYBRID and [h.summary.id for h in hybrid.hits] == [1, 3, 2]
    semantic = run(SearchMode.SEMANTIC, FakeEmbeddingModel(64), index)
    assert [h.summary.id for h in semantic.hits] == [3, 1] and semantic.fallback_reason is None


@pytest.mark.parametrize(("embedder", "space", "fail", "reason"), [
    (None, EmbeddingSpace(1, "fake-embedding", 64), 0, FallbackReason.AI_NOT_CONFIGURED),
    (FakeEmbeddingModel(64), None, 0, FallbackReason.EMBEDDINGS_NOT_READY),
    (FakeEmbeddingModel(64), EmbeddingSpace(1, "fake-embedding", 32), 0, FallbackReason.EMBEDDINGS_NOT_READY),
    (FakeEmbeddingModel(64), EmbeddingSpace(1, "fake-embedding", 64), 1, FallbackReason.EMBEDDING_UNAVAILABLE),
], ids=["no-model", "nothing-embedded", "other-space", "provider-down"])
def test_semantic_and_hybrid_fall_back_to_keyword_and_say_why(embedder, space, fail, reason):
    for mode in (SearchMode.SEMANTIC, SearchMode.HYBRID):
        if embedder is not None:
            embedder.fail_next = fail
        result = run(mode, embedder, FixedIndex(space, [hit(3)]))
        assert (result.mode, result.fallback_reason, [h.summary.id for h in result.hits]) == (
            SearchMode.KEYWORD, reason, [1, 2])


def test_cursors_are_for_keyword_pages_only():
    index = FixedIndex(EmbeddingSpace(1, "fake-embedding", 64), [])
    with pytest.raises(InvalidInput) as refused:
        run(SearchMode.HYBRID, FakeEmbeddingModel(64), index, cursor="abc")
    assert refused.value.field == "cursor"
