"""The AI adapters and the semantic search pipeline working together (issue 6): records created over the
API, embedded by the worker `tow serve` runs through the real OpenAI adapter against the fake OpenAI
server, searched semantically and hybrid, every request accounted for in the egress ledger, and the
dimension migration driven through `tow embeddings migrate` with the real adapter.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from dependency_injector import providers

from tests.e2e.org_world import World
from tests.postgres_fixtures import SECRET
from tow_adapters.openai_embeddings import OpenAIEmbeddingModel
from tow_http import cli, embeddings_cli

FACT = {"memory_type": "fact"}
DIM_64 = "ai:\n  embedding_dim: 64\n"


def search(world: World, client, q: str, **params) -> dict:
    response = client.get(f"{world.base}/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return response.json()


def ids(page: dict) -> list[str]:
    return [hit["display_id"] for hit in page["items"]]


def drain(container) -> int:
    """What `tow serve` runs in its background thread, run here until the outbox is empty."""
    worker = embeddings_cli.embedding_worker(container)
    assert worker is not None, "an embedding worker is built when OPENAI_API_KEY is set"
    return worker.run_once()


def ledger(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT organisation_id, acting_user_id, purpose, model, record_display_ids, request_bytes, outcome "
            "FROM egress_ledger ORDER BY id")).all()


@pytest.fixture
def team(make_container, ai_environ):
    """Ada, Bob and Cy in Acme (see org_world.World), on a container whose embedding model is the real
    OpenAI adapter pointed at the fake server."""
    return World(make_container(DIM_64, **ai_environ))


def test_records_created_over_the_api_are_found_semantically_and_hybrid_through_the_real_adapter(team, fake_openai):
    w = team
    release = w.create(w.ada, type="doc", scope={"kind": "organisation"}, title="Release process",
                       body="We release every Tuesday after the code freeze.")["display_id"]
    w.create(w.ada, type="memory", scope={"kind": "organisation"}, title="Coffee machine",
             body="The coffee machine is descaled on Fridays.", fields=FACT)
    secret = w.create(w.ada, type="doc", scope=w.scope("SEC"), title="Release codes",
                      body="Launch codes for the Tuesday release.")["display_id"]
    app_doc = w.create(w.ada, type="doc", scope=w.scope("APP"), title="App onboarding",
                       body="New starters install the app on Tuesday.")["display_id"]
    assert drain(w.container) == 4

    semantic = search(w, w.ada, "when do we release", mode="semantic")
    assert semantic["mode"] == "semantic" and semantic["fallback_reason"] is None
    assert ids(semantic)[0] == release and secret in ids(semantic)
    hybrid = search(w, w.ada, "release tuesday", mode="hybrid")
    assert hybrid["mode"] == "hybrid" and set(ids(hybrid)[:2]) == {release, secret}
    default = search(w, w.ada, "release tuesday")
    assert (default["mode"], ids(default)) == ("hybrid", ids(hybrid))  # hybrid is the default with AI on

    for mode in ("semantic", "hybrid"):  # Bob reads APP but not SEC; Cy neither
        assert secret not in ids(search(w, w.bob, "release tuesday", mode=mode))
        assert app_doc in ids(search(w, w.bob, "tuesday", mode=mode))
        assert {secret, app_doc}.isdisjoint(ids(search(w, w.cy, "release tuesday", mode=mode)))
    assert {r.path for r in fake_openai.requests} == {"/v1/embeddings"}
    assert all(r.body["dimensions"] == 64 and r.body["model"] == "text-embedding-3-small"
               for r in fake_openai.requests)


def test_a_rate_limited_query_embedding_degrades_to_keyword_search_and_says_so(team, fake_openai):
    w = team
    doc = w.create(w.ada, type="doc", scope={"kind": "organisation"}, title="Release process",
                   body="We release every Tuesday.")["display_id"]
    drain(w.container)
    fake_openai.queue_failure(429, headers={"Retry-After": "3600"})  # longer than TOW waits: no retry
    page = search(w, w.ada, "release", mode="semantic")
    assert (page["mode"], page["fallback_reason"], ids(page)) == ("keyword", "embedding_unavailable", [doc])
    for _ in range(4):  # every attempt the gateway makes fails (retry-after-ms keeps the test quick)
        fake_openai.queue_failure(500, headers={"retry-after-ms": "1"})
    page = search(w, w.ada, "release")  # default hybrid; the provider fails every attempt
    assert (page["mode"], page["fallback_reason"], ids(page)) == ("keyword", "embedding_unavailable", [doc])


def signed_in_as_ada(container) -> object:
    """Ada's browser on another app over the same database (a restarted or differently configured server)."""
    from litestar.testing import TestClient

    client = TestClient(container.app(), base_url="http://127.0.0.1:8000", raise_server_exceptions=False)
    signed_in = client.post("/api/auth/login", json={"email": "ada@example.com", "password": "correct horse battery"})
    assert signed_in.status_code == 200, signed_in.text
    return client


def test_a_refused_key_or_a_provider_no_longer_approved_degrades_search_instead_of_failing_it(
    make_container, ai_environ, fake_openai
):
    w = World(make_container(DIM_64, **ai_environ))
    doc = w.create(w.ada, type="doc", scope={"kind": "organisation"}, title="Release process",
                   body="We release every Tuesday.")["display_id"]
    drain(w.container)
    fake_openai.queue_failure(401, body={"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
    page = search(w, w.ada, "release")
    assert (page["mode"], page["fallback_reason"], ids(page)) == ("keyword", "embedding_unavailable", [doc])

    sent = len(fake_openai.requests)
    unapproved = make_container(DIM_64, **{**ai_environ, "APPROVED_PROVIDERS": "exa"})  # OpenAI struck off
    page = search(w, signed_in_as_ada(unapproved), "release", mode="semantic")
    assert (page["mode"], page["fallback_reason"], ids(page)) == ("keyword", "embedding_unavailable", [doc])
    assert len(fake_openai.requests) == sent  # refused before anything left
    assert ledger(unapproved.engine())[-1].outcome == "provider_not_approved"


def _title_of_text(text: str) -> str:
    """Embedded texts start with the record's title (``tow_core.embeddings.chunk_texts``)."""
    return text.split("\n\n", 1)[0]


def test_every_embedding_request_has_one_ledger_row_naming_exactly_the_records_it_carried(
    make_container, ai_environ, fake_openai
):
    container = make_container(DIM_64, **ai_environ)
    # The real adapter with tiny per-request limits, so records are split across requests.
    small_batches = OpenAIEmbeddingModel(container.openai_gateway(), "text-embedding-3-small", 64,
                                         max_inputs_per_request=2)
    container.embedding_model.override(providers.Object(small_batches))
    w = World(container)
    other_org = w.ada.post("/api/organisations", json={"name": "Other"}).json()["id"]
    long_body = " ".join(f"paragraph{n}" for n in range(700))  # three overlapping chunks
    by_title: dict[str, str] = {}
    org_of: dict[str, int] = {}  # by title: display IDs repeat across organisations
    for title, body, org in (("Alpha plan", "alpha", w.org), ("Long handbook", long_body, w.org),
                             ("Beta plan", "beta", w.org), ("Gamma plan", "gamma", w.org),
                             ("Other org plan", "elsewhere", other_org)):
        response = w.ada.post(f"/api/organisations/{org}/records",
                              json={"type": "doc", "scope": {"kind": "organisation"}, "title": title, "body": body})
        assert response.status_code == 201, response.text
        by_title[title] = response.json()["display_id"]
        org_of[title] = org
    assert drain(container) == 5
    search(w, w.ada, "alpha plan", mode="semantic")  # the query is sent too: on Ada's behalf, no records

    rows = ledger(container.engine())
    requests = fake_openai.requests
    assert len(rows) == len(requests) >= 5  # 7 texts, at most 2 per request, split by organisation; + the query
    carried_by_request = []
    for row, request in zip(rows, requests, strict=True):
        titles = {_title_of_text(t) for t in request.body["input"]} if row.record_display_ids else set()
        carried = sorted(by_title[t] for t in titles)
        carried_by_request.append(sorted(titles))
        assert (row.purpose, row.outcome, row.model) == ("embedding", "ok", "text-embedding-3-small")
        assert sorted(row.record_display_ids) == carried and len(set(row.record_display_ids)) == len(carried)
        assert row.request_bytes == request.body_bytes
        assert row.organisation_id == ({org_of[t] for t in titles} or {w.org}).pop() and len(
            {org_of[t] for t in titles}) <= 1
    assert all(len(r.body["input"]) <= 2 for r in requests)
    handbook = "Long handbook"
    assert sum(handbook in carried for carried in carried_by_request) >= 2  # its chunks crossed a request boundary
    assert any(handbook in carried and len(carried) == 2 for carried in carried_by_request)  # shared with a neighbour
    # Ada wrote every record, so every embedding goes on her behalf; so does the query, which names no record.
    assert {r.acting_user_id for r in rows if r.record_display_ids} == {w.ada_id}
    query_rows = [(r.acting_user_id, q.body["input"]) for r, q in zip(rows, requests, strict=True)
                  if not r.record_display_ids]
    assert query_rows == [(w.ada_id, ["alpha plan"])]
    assert {t for carried in carried_by_request for t in carried} == set(by_title)


def test_an_embedding_ledger_row_names_the_person_whose_edit_it_embeds(make_container, ai_environ, fake_openai):
    w = World(make_container(DIM_64, **ai_environ))
    handbook = w.create(w.ada, type="doc", scope={"kind": "organisation"}, title="Handbook", body="Tuesdays.")
    runbook = w.create(w.cy, type="doc", scope={"kind": "organisation"}, title="Runbook", body="Restart it.")
    edited = w.bob.patch(f"{w.base}/records/{handbook['display_id']}",
                         json={"body": "We release on Wednesdays now.", "version": handbook["version"]})
    assert edited.status_code == 200, edited.text
    w.sql("INSERT INTO records (organisation_id, type, prefix, number, scope_kind, scope_ref, title, body, status) "
          "VALUES (:org, 'decision', 'DEC', 1, 'organisation', :org, 'Imported', 'from an old export', 'proposed')",
          org=w.org)  # as an operator's import writes it: nobody's edit
    assert drain(w.container) == 3

    rows = ledger(w.container.engine())
    by_records = {tuple(r.record_display_ids): r.acting_user_id for r in rows}
    # Bob's edit is the text sent for the handbook, so he is named, not its author; one request per person.
    assert by_records == {(handbook["display_id"],): w.bob_id, (runbook["display_id"],): w.cy_id, ("DEC-1",): None}
    [sent_for_bob] = [q for r, q in zip(rows, fake_openai.requests, strict=True) if r.acting_user_id == w.bob_id]
    assert sent_for_bob.body["input"] == ["Handbook\n\nWe release on Wednesdays now."]


@pytest.fixture
def tow_cli(fresh_database_url, ai_environ, tmp_path, monkeypatch):
    """`tow ...` against the test database with the real OpenAI adapter pointed at the fake server."""
    monkeypatch.setenv("DATABASE_URL", fresh_database_url.replace("postgresql+psycopg://", "postgresql://"))
    monkeypatch.setenv("APP_SECRET", SECRET)
    for name, value in ai_environ.items():
        monkeypatch.setenv(name, value)
    config_path = tmp_path / "tow-cli.yaml"

    def run(*args: str, dim: int = 64) -> int:
        config_path.write_text(f"ai:\n  embedding_dim: {dim}\n")
        return cli.main(["--config", str(config_path), *args])

    return run


def test_migrate_with_the_real_adapter_sends_the_new_dimension_switches_vectors_and_refuses_the_old_config(
    make_container, ai_environ, fake_openai, tow_cli, capsys
):
    w = World(make_container(DIM_64, **ai_environ))
    doc = w.create(w.ada, type="doc", scope={"kind": "organisation"}, title="Release process",
                   body="We release every Tuesday.")["display_id"]
    memory = w.create(w.ada, type="memory", scope={"kind": "organisation"}, title="Coffee",
                      body="Descaled on Fridays.", fields=FACT)["display_id"]
    drain(w.container)
    before = len(fake_openai.requests)

    assert tow_cli("embeddings", "migrate", "--dim", "32", "--model", "text-embedding-3-large") == 0
    assert "switched to text-embedding-3-large with 32 dimensions" in capsys.readouterr().out
    migration_requests = fake_openai.requests[before:]
    assert migration_requests and all(
        (r.body["dimensions"], r.body["model"]) == (32, "text-embedding-3-large") for r in migration_requests)
    with w.container.engine().connect() as conn:
        spaces = conn.execute(sa.text(
            "SELECT s.dim, s.model, vector_dims(c.embedding) FROM embedding_chunks c "
            "JOIN embedding_spaces s ON s.id = c.space_id")).all()
    assert set(spaces) == {(32, "text-embedding-3-large", 32)} and len(spaces) == 2
    migration_rows = ledger(w.container.engine())[before:]  # one row per request, naming what it carried
    assert [(r.purpose, r.organisation_id, r.acting_user_id, r.model, r.outcome) for r in migration_rows] == [
        ("embedding", w.org, None, "text-embedding-3-large", "ok")] * len(migration_requests)
    assert sorted(d for r in migration_rows for d in r.record_display_ids) == sorted([doc, memory])

    # A server still running the old configuration answers keyword search and says why, it does not fail.
    stale = search(w, w.ada, "release", mode="semantic")
    assert (stale["mode"], stale["fallback_reason"], ids(stale)) == ("keyword", "embeddings_not_ready", [doc])
    # Restarted with the new configuration, semantic search uses the new vectors.
    restarted = make_container("ai:\n  embedding_dim: 32\n  openai_embedding_model: text-embedding-3-large\n",
                               **ai_environ)
    page = search(w, signed_in_as_ada(restarted), "when do we release", mode="semantic")
    assert page["mode"] == "semantic" and ids(page)[0] == doc
    assert fake_openai.requests[-1].body["dimensions"] == 32

    for command in (["worker"], ["serve"]):  # the old configuration is refused at startup
        assert tow_cli(*command, dim=64) == cli.EXIT_FAILURE
        message = capsys.readouterr().err
        assert "ai.embedding_dim is 64" in message and "dimension 32" in message
        assert "tow embeddings migrate --dim 64 --model text-embedding-3-small" in message


def test_without_openai_api_key_every_non_ai_endpoint_works_and_status_says_not_configured(make_container,
                                                                                          fake_openai):
    w = World(make_container())  # no OPENAI_API_KEY: the fake server must see nothing
    status = w.bob.get("/api/ai/status").json()
    assert status["configured"] is False and "OPENAI_API_KEY" in status["message"]
    doc = w.create(w.ada, type="doc", scope=w.scope("APP"), title="Release process", body="Every Tuesday.")
    display_id = doc["display_id"]
    assert w.record(w.bob, display_id)["title"] == "Release process"
    edited = w.ada.patch(f"{w.base}/records/{display_id}", json={"body": "Every Wednesday.",
                                                                  "version": doc["version"]})
    assert edited.status_code == 200, edited.text
    assert [r["display_id"] for r in w.bob.get(f"{w.base}/records").json()["items"]] == [display_id]
    assert ids(search(w, w.bob, "wednesday")) == [display_id]
    for mode in ("semantic", "hybrid"):
        page = search(w, w.bob, "wednesday", mode=mode)
        assert (page["mode"], page["fallback_reason"], ids(page)) == ("keyword", "ai_not_configured", [display_id])
    assert embeddings_cli.embedding_worker(w.container) is None
    assert fake_openai.requests == []
