"""Semantic and hybrid search through the HTTP API with an in-process fake embedding model.

The records' vectors come from the real pipeline (outbox → worker → pgvector); the tests drain the
outbox with ``EmbeddingWorker.run_once`` where the server's background thread would.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from dependency_injector import providers

from tests.e2e.org_world import World
from tests.fake_embeddings import FakeEmbeddingModel
from tow_core.ai import EgressPurpose
from tow_http.embedding_worker import EmbeddingWorker

FACT = {"memory_type": "fact"}


@pytest.fixture
def ai_world(make_container):
    container = make_container()
    model = FakeEmbeddingModel(dimension=64)
    container.embedding_model.override(providers.Object(model))
    world = World(container)
    world.model = model
    world.worker = EmbeddingWorker(container.embedding_queue(), container.embedding_spaces(), model)
    return world


def search(world, client, q, **params):
    response = client.get(f"{world.base}/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return response.json()


def ids(page):
    return [hit["display_id"] for hit in page["items"]]


def test_without_an_embedding_model_search_is_keyword_and_says_why_when_asked_for_more(make_container):
    world = World(make_container())
    world.create(world.ada, type="doc", scope={"kind": "organisation"}, title="Release process",
                 body="We release every Tuesday.")
    default = search(world, world.ada, "tuesday")
    assert (default["mode"], default["fallback_reason"], ids(default)) == ("keyword", None, ["DOC-1"])
    for mode in ("semantic", "hybrid"):
        page = search(world, world.ada, "tuesday", mode=mode)
        assert (page["mode"], page["fallback_reason"], ids(page)) == ("keyword", "ai_not_configured", ["DOC-1"])


def test_bad_mode_and_cursor_with_semantic_are_clear_errors(ai_world):
    w = ai_world
    bad = w.ada.get(f"{w.base}/search", params={"q": "x", "mode": "psychic"})
    assert bad.status_code == 400 and "mode" in bad.text
    w.create(w.ada, type="memory", scope={"kind": "organisation"}, title="alpha", body="", fields=FACT)
    w.worker.run_once()
    paged = w.ada.get(f"{w.base}/search", params={"q": "alpha", "mode": "semantic", "cursor": "abc"})
    assert paged.status_code == 422 and paged.json()["error"]["field"] == "cursor"


def test_hybrid_is_the_default_and_semantic_finds_partial_matches_keyword_misses(ai_world):
    w = ai_world
    w.create(w.ada, type="doc", scope={"kind": "organisation"}, title="Release process",
             body="We release every Tuesday after the demo.")
    w.create(w.ada, type="ticket", scope={"kind": "organisation"}, title="Lunch menu", body="Pizza on Friday.")
    not_ready = search(w, w.ada, "release")
    assert (not_ready["mode"], not_ready["fallback_reason"]) == ("keyword", "embeddings_not_ready")
    assert w.worker.run_once() == 2
    q = "tuesday release party planning"  # no record has all four words: keyword search finds nothing
    assert ids(search(w, w.ada, q, mode="keyword")) == []
    semantic = search(w, w.ada, q, mode="semantic")
    assert semantic["mode"] == "semantic" and ids(semantic)[0] == "DOC-1"
    assert 0 < semantic["items"][0]["rank"] <= 1
    hybrid = search(w, w.ada, q)
    assert (hybrid["mode"], hybrid["fallback_reason"], ids(hybrid)[0]) == ("hybrid", None, "DOC-1")
    # The worker told the egress ledger which records it sent, for which organisation.
    sent = [c for c in w.model.contexts if c.record_display_ids]
    assert {d for c in sent for d in c.record_display_ids} == {"DOC-1", "TKT-1"}
    assert all(c.purpose is EgressPurpose.EMBEDDING and c.organisation_id == w.org for c in w.model.contexts)
    query_calls = [c for c in w.model.contexts if not c.record_display_ids]
    assert query_calls and all(c.acting_user_id == w.ada_id for c in query_calls)


def test_filters_apply_to_semantic_and_hybrid_like_keyword(ai_world):
    w = ai_world
    w.create(w.ada, type="memory", scope=w.scope("OPS"), title="deploy pipeline notes", body="", fields=FACT)
    w.create(w.ada, type="decision", scope={"kind": "organisation"}, title="deploy pipeline choice", body="")
    w.worker.run_once()
    for mode in ("semantic", "hybrid"):
        assert ids(search(w, w.ada, "deploy pipeline", mode=mode, project="OPS")) == ["MEM-1"]
        assert ids(search(w, w.ada, "deploy pipeline", mode=mode, type="decision")) == ["DEC-1"]
        assert ids(search(w, w.ada, "deploy pipeline", mode=mode, status="archived")) == []


def test_deleted_moved_and_revoked_records_leave_semantic_results_in_the_same_transaction(ai_world):
    w = ai_world
    app = w.scope("APP")  # Bob is a viewer of APP
    doc = w.create(w.ada, type="doc", scope=app, title="zebra migration plan", body="zebra zebra")
    moved = w.create(w.ada, type="memory", scope=app, title="zebra moved fact", body="zebra", fields=FACT)
    kept = w.create(w.ada, type="risk", scope=app, title="zebra kept risk", body="zebra")
    w.worker.run_once()
    for mode in ("semantic", "hybrid"):
        assert set(ids(search(w, w.bob, "zebra", mode=mode))) == {doc["display_id"], moved["display_id"],
                                                                  kept["display_id"]}
    # No worker runs from here on: the results follow the records at once.
    assert w.ada.delete(f"{w.base}/docs/{doc['display_id']}").status_code == 204
    w.ada.patch(f"{w.base}/records/{moved['display_id']}", json={"version": moved["version"],
                                                                "scope": w.scope("SEC")})
    for mode in ("semantic", "hybrid"):
        assert ids(search(w, w.bob, "zebra", mode=mode)) == [kept["display_id"]]
    grant = [g for g in w.ada.get(f"{w.base}/projects/{w.projects['APP']}/grants").json()
             if g.get("user_id") == w.bob_id][0]
    w.ada.delete(f"{w.base}/projects/{w.projects['APP']}/grants/{grant['id']}")
    for mode in ("semantic", "hybrid"):
        assert ids(search(w, w.bob, "zebra", mode=mode)) == []
    assert set(ids(search(w, w.ada, "zebra", mode="semantic"))) == {moved["display_id"], kept["display_id"]}


def test_an_edit_is_re_embedded_and_long_docs_are_chunked_with_their_title(ai_world):
    w = ai_world
    body = " ".join(f"filler{i}" for i in range(700)) + " kangaroo"
    doc = w.create(w.ada, type="doc", scope={"kind": "organisation"}, title="Handbook", body=body)
    w.create(w.ada, type="memory", scope={"kind": "organisation"}, title="unrelated", body="nothing here", fields=FACT)
    w.worker.run_once()
    chunks = [t for t in w.model.texts if t.startswith("Handbook\n\n")]
    assert len(chunks) == 3  # 701 words in windows of 300 overlapping by 50
    assert ids(search(w, w.ada, "kangaroo", mode="semantic"))[0] == "DOC-1"
    edit = w.ada.patch(f"{w.base}/records/DOC-1", json={"version": doc["version"], "body": "wombat"})
    assert edit.status_code == 200, edit.text
    w.worker.run_once()
    page = search(w, w.ada, "wombat", mode="semantic")
    assert ids(page)[0] == "DOC-1" and page["items"][0]["rank"] > page["items"][1]["rank"]
    with w.container.engine().connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM embedding_chunks")).scalar() == 2


def test_a_provider_failure_is_retried_later_and_search_degrades_to_keyword(ai_world):
    w = ai_world
    w.create(w.ada, type="memory", scope={"kind": "organisation"}, title="retry me", body="", fields=FACT)
    w.model.fail_next = 1
    w.worker.run_once()
    with w.container.engine().connect() as conn:
        row = conn.execute(sa.text("SELECT attempts, last_error, available_at > now() FROM embedding_outbox")).one()
    assert row == (1, "fake provider down", True)
    status = w.container.embedding_spaces().status(8)
    assert (status.retrying, status.embedded) == (1, 0)
    w.model.fail_next = 1
    page = search(w, w.ada, "retry", mode="hybrid")
    assert (page["mode"], page["fallback_reason"]) == ("keyword", "embedding_unavailable")


def test_openapi_documents_the_modes_and_the_fallback(make_container):
    world = World(make_container())
    doc = world.ada.get("/api/openapi.json").json()
    search_op = doc["paths"]["/api/organisations/{org_id}/search"]["get"]
    assert "reciprocal rank" in search_op["description"] and "fallback_reason" in search_op["description"]
    mode = next(p for p in search_op["parameters"] if p["name"] == "mode")
    assert "hybrid" in mode["description"]
