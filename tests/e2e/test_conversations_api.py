"""The conversation API over HTTP on a real PostgreSQL (issue 13 item 2): a person's conversations are theirs
alone — another user's id in the URL or smuggled into a body never reads, changes or deletes it, whoever they
are (the organisation's owner and server admin included) — access follows project grants and membership on
the very next request, starting one needs OPENAI_API_KEY while reading and deleting do not, and the worker's
housekeeping deletes conversations idle longer than ``ai.chat_retention_days``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from litestar.testing import TestClient

from tests.e2e.org_world import World
from tow_adapters.postgres.conversations import PgConversations
from tow_core.conversations import NewTurn, TurnRole
from tow_http.composition import build_job_worker
from tow_http.context import utc_now


@pytest.fixture
def world(make_container, ai_environ) -> World:
    return World(make_container(**ai_environ))


def conversations(world: World) -> str:
    return f"{world.base}/conversations"


def start(world: World, client, **body) -> dict:
    response = client.post(conversations(world), json=body)
    assert response.status_code == 201, response.text
    return response.json()


def answer(world: World, conversation_id: int, text: str, **lists) -> None:
    """What the tool loop does after its access check: append a turn."""
    with world.container.engine().begin() as connection:
        PgConversations(connection).add_turn(conversation_id, NewTurn(TurnRole.ASSISTANT, text, **lists), at=utc_now())


def test_the_owner_starts_reads_lists_renames_and_deletes_a_conversation(world):
    started = start(world, world.bob, title="Release plan", project_key="app")
    assert (started["title"], started["project_id"], started["memory_extraction"]) == (
        "Release plan", world.projects["APP"], True)
    answer(world, started["id"], "We ship on Fridays [DOC-1].", citations=[{"display_id": "DOC-1"}],
           dropped_citations=[{"display_id": "DOC-9", "reason": "not_readable"}])
    read = world.bob.get(f"{conversations(world)}/{started['id']}").json()
    assert [(t["position"], t["role"], t["text"]) for t in read["turns"]] == [
        (1, "assistant", "We ship on Fridays [DOC-1].")]
    assert read["turns"][0]["dropped_citations"] == [{"display_id": "DOC-9", "reason": "not_readable"}]
    everywhere = start(world, world.bob, memory_extraction=False)
    assert (everywhere["title"], everywhere["project_id"], everywhere["memory_extraction"]) == (
        "New conversation", None, False)
    listed = world.bob.get(conversations(world), params={"limit": 1}).json()
    assert [c["id"] for c in listed["items"]] == [everywhere["id"]] and listed["next_cursor"]
    rest = world.bob.get(conversations(world), params={"cursor": listed["next_cursor"]}).json()
    assert [c["id"] for c in rest["items"]] == [started["id"]] and rest["next_cursor"] is None
    renamed = world.bob.patch(f"{conversations(world)}/{started['id']}", json={"title": "Shipping"})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Shipping"
    assert renamed.json()["memory_extraction"] is True
    assert world.bob.delete(f"{conversations(world)}/{started['id']}").status_code == 204
    assert world.bob.get(f"{conversations(world)}/{started['id']}").status_code == 404


def test_another_users_conversation_id_in_the_url_or_a_body_reads_changes_and_deletes_nothing(world):
    assert world.ada.get("/api/me").json()["is_server_admin"] is True  # Ada: organisation owner and server admin
    secret = start(world, world.bob, title="My review")
    answer(world, secret["id"], "Your salary review is on Tuesday.")
    own = {world.ada: start(world, world.ada, title="Ada's"), world.cy: start(world, world.cy, title="Cy's")}
    url = f"{conversations(world)}/{secret['id']}"
    for attacker in (world.ada, world.cy):
        attempts = [attacker.get(url), attacker.patch(url, json={"title": "taken"}), attacker.delete(url)]
        assert [r.status_code for r in attempts] == [404, 404, 404]
        missing = attacker.get(f"{conversations(world)}/{secret['id'] + 10_000}")
        assert missing.status_code == 404 and missing.json() == attempts[0].json()  # the same as none at all
        # the id smuggled into a body: no body names a conversation, so it is refused before anything is read
        smuggled = [attacker.patch(f"{conversations(world)}/{own[attacker]['id']}",
                                   json={"id": secret["id"], "title": "x"}),
                    attacker.post(conversations(world), json={"conversation_id": secret["id"]})]
        assert [r.status_code for r in smuggled] == [400, 400]
        assert all("salary" not in r.text and "My review" not in r.text for r in attempts + smuggled)
        assert secret["id"] not in [c["id"] for c in attacker.get(conversations(world)).json()["items"]]
    other_org = world.ada.post("/api/organisations", json={"name": "Elsewhere"}).json()["id"]
    elsewhere = world.ada.get(f"/api/organisations/{other_org}/conversations/{secret['id']}")
    assert elsewhere.status_code == 404
    kept = world.bob.get(url).json()
    assert kept["title"] == "My review" and [t["text"] for t in kept["turns"]] == ["Your salary review is on Tuesday."]
    assert world.cy.get(f"{conversations(world)}/{own[world.cy]['id']}").json()["title"] == "Cy's"


def test_losing_the_project_or_the_membership_ends_access_on_the_next_request(world):
    in_app = start(world, world.bob, project_key="APP", title="App")
    everywhere = start(world, world.bob, title="General")
    assert world.cy.post(conversations(world), json={"project_key": "APP"}).status_code == 404  # not Cy's to read
    grants = f"{world.base}/projects/{world.projects['APP']}/grants"
    grant = next(g for g in world.ada.get(grants).json() if g.get("user_id") == world.bob_id)
    assert world.ada.delete(f"{grants}/{grant['id']}").status_code in (200, 204)
    assert world.bob.get(f"{conversations(world)}/{in_app['id']}").status_code == 404
    assert world.bob.delete(f"{conversations(world)}/{in_app['id']}").status_code == 404
    assert [c["id"] for c in world.bob.get(conversations(world)).json()["items"]] == [everywhere["id"]]
    assert world.ada.delete(f"{world.base}/members/{world.bob_id}").status_code in (200, 204)
    assert world.bob.get(f"{conversations(world)}/{everywhere['id']}").status_code == 404
    assert world.bob.get(conversations(world)).status_code == 404


def test_without_openai_api_key_starting_answers_503_but_reading_and_deleting_work(make_container, ai_environ):
    configured = World(make_container(**ai_environ))
    kept = start(configured, configured.bob, title="From before")
    unconfigured = make_container()  # the same database, no OPENAI_API_KEY
    bob = TestClient(unconfigured.app(), base_url="http://127.0.0.1:8000", raise_server_exceptions=False,
                     cookies=configured.bob.cookies)
    refused = bob.post(conversations(configured), json={"title": "new"})
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "ai_not_configured"
    assert [c["id"] for c in bob.get(conversations(configured)).json()["items"]] == [kept["id"]]
    assert bob.get(f"{conversations(configured)}/{kept['id']}").json()["title"] == "From before"
    assert bob.delete(f"{conversations(configured)}/{kept['id']}").status_code == 204
    assert bob.get(conversations(configured)).json()["items"] == []


def test_the_worker_deletes_conversations_idle_longer_than_the_retention(make_container, ai_environ):
    w = World(make_container(**ai_environ))
    idle, active = start(w, w.bob, title="idle"), start(w, w.cy, title="active")
    later = utc_now() + timedelta(days=30, minutes=1)
    with w.container.engine().begin() as connection:  # Cy kept talking; Bob's went quiet
        PgConversations(connection).add_turn(active["id"], NewTurn(TurnRole.USER, "still here"),
                                             at=later - timedelta(days=1))

    def housekeeping(yaml_text: str, now) -> None:
        c = make_container(yaml_text, **ai_environ)  # the same database
        build_job_worker(c.engine(), c.config(), c.export_files(), c.upload_store(), clock=lambda: now).drain()

    housekeeping("ai:\n  chat_retention_days: 0\n", later + timedelta(days=3650))  # 0 keeps everything
    assert w.bob.get(f"{conversations(w)}/{idle['id']}").status_code == 200
    housekeeping("ai:\n  chat_retention_days: 30\n", later)
    assert w.bob.get(f"{conversations(w)}/{idle['id']}").status_code == 404
    assert w.cy.get(f"{conversations(w)}/{active['id']}").json()["turns"][0]["text"] == "still here"
