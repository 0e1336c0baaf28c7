"""A chat answer followed live over server-sent events (``GET .../agent-runs/{id}/events``) through a live
server, with the real OpenAI SDK adapter streaming from the fake OpenAI server: tool activity, text deltas,
the checked answer, done; only the run's owner reads the stream; a client that goes away does not stop the
run; without AI the stream is refused like every chat endpoint."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.e2e.browser.conftest import LiveServer, _free_port
from tests.e2e.org_world import World


@pytest.fixture
def world(make_container, ai_environ) -> Iterator[World]:
    world = World(make_container(**ai_environ))
    with LiveServer(world.container.app(), _free_port()) as server:
        world.server = server
        yield world


def cookie_of(client) -> str:
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def parse(raw: str) -> list[dict]:
    """Server-sent events: ``{"id", "event", "data"}`` each (data decoded), comments left out."""
    events = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        fields: dict = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields:
            events.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return events


def open_stream(world: World, client, url: str, *, last_event_id: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", world.server.port, timeout=30)
    headers = {"Cookie": cookie_of(client), "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    conn.request("GET", url, headers=headers)
    return conn, conn.getresponse()


def read_events_until(response, stop) -> list[dict]:
    """Read the stream line by line until ``stop(events)`` holds or the server closes it."""
    raw = ""
    while True:
        line = response.fp.readline()
        if not line:
            return parse(raw)
        raw += line.decode()
        if line in (b"\r\n", b"\n") and stop(events := parse(raw)):
            return events


def ask(world: World, text: str = "When do we ship?") -> dict:
    conversation = world.bob.post(f"{world.base}/conversations", json={"title": "Releases"}).json()
    asked = world.bob.post(f"{world.base}/conversations/{conversation['id']}/questions", json={"text": text})
    assert asked.status_code == 202, asked.text
    return asked.json() | {"conversation_id": conversation["id"]}


def test_the_owner_follows_activity_deltas_the_checked_answer_and_done(world, fake_openai):
    plan = world.create(world.ada, type="doc", title="Release plan", body="We ship every Friday after the review.",
                        scope=world.scope("OPS"))["display_id"]
    fake_openai.queue_response(function_calls=[("get_record", {"display_id": plan})])
    fake_openai.queue_response(text=f'We ship on Fridays [{plan} "ship every Friday"] and [{plan} "never"].')
    asked = ask(world)
    assert asked["events_url"] == f"{world.base}/agent-runs/{asked['run_id']}/events"

    conn, response = open_stream(world, world.bob, asked["events_url"])
    assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
    worker = threading.Thread(target=world.container.agent_run_worker().drain)
    worker.start()
    try:
        events = read_events_until(response, lambda events: False)  # until the server closes it after done
    finally:
        worker.join(60)
        conn.close()

    kinds = [e["event"] for e in events]
    assert kinds[0] == "activity" and kinds[-2:] == ["answer", "done"] and set(kinds[1:-2]) == {"delta"}
    assert events[0]["data"] == {"round": 1, "tool": "get_record", "records": [plan], "error": None}
    assert [e["id"] for e in events[:-1]] == sorted({e["id"] for e in events[:-1]})
    streamed = "".join(e["data"]["text"] for e in events if e["event"] == "delta")
    answer, done = events[-2]["data"], events[-1]["data"]
    turns = world.bob.get(f"{world.base}/conversations/{asked['conversation_id']}").json()["turns"]
    assert streamed == f'We ship on Fridays [{plan} "ship every Friday"] and [{plan} "never"].'
    assert answer["text"] == turns[-1]["text"] and answer["turn_id"] == turns[-1]["id"]
    assert [c["display_id"] for c in answer["citations"]] == [plan]
    assert [d["reason"] for d in answer["dropped_citations"]] == ["quote_not_found"]
    assert done == {"status": "completed", "error_code": None, "error": None}
    assert all(r.body["stream"] is True and r.body["store"] is False for r in fake_openai.requests_to("/v1/responses"))

    # Replayed afterwards, from the start or after an event id.
    conn, response = open_stream(world, world.bob, asked["events_url"], last_event_id=str(events[1]["id"]))
    again = read_events_until(response, lambda events: False)
    conn.close()
    assert again == events[2:]


def test_only_the_owner_reads_the_stream_not_the_org_owner_nor_another_member(world, fake_openai):
    asked = ask(world)
    for client in (world.ada, world.cy):
        response = client.get(asked["events_url"])
        assert response.status_code == 404, response.text
    assert world.ada.get(f"{world.base}/agent-runs/{asked['run_id']}").json()["content_visible"] is False


def test_a_client_that_goes_away_mid_answer_does_not_stop_the_run(world, fake_openai):
    hold = fake_openai.queue_stream_hold(after_deltas=2)
    fake_openai.queue_response(text="Fridays, after the review, every week.")
    asked = ask(world)
    worker = threading.Thread(target=world.container.agent_run_worker().drain)
    worker.start()
    try:
        assert hold.arrived.wait(30)
        conn, response = open_stream(world, world.bob, asked["events_url"])
        seen = read_events_until(response, lambda events: any(e["event"] == "delta" for e in events))
        partial = "".join(e["data"]["text"] for e in seen if e["event"] == "delta")
        assert partial and "Fridays, after the review, every week.".startswith(partial)
        conn.close()  # the reader leaves while the model is still writing
    finally:
        hold.release.set()
        worker.join(60)
    run = world.bob.get(f"{world.base}/agent-runs/{asked['run_id']}").json()
    assert run["status"] == "completed"
    turns = world.bob.get(f"{world.base}/conversations/{asked['conversation_id']}").json()["turns"]
    assert turns[-1]["text"] == "Fridays, after the review, every week."


def test_deleting_the_conversation_deletes_its_runs_events_and_ends_the_stream(world, fake_openai):
    fake_openai.queue_response(text="Fridays.")
    asked = ask(world)
    world.container.agent_run_worker().drain()
    with world.container.engine().connect() as conn:
        count = "SELECT count(*) FROM agent_run_events WHERE run_id = :id"
        assert conn.execute(sa.text(count), {"id": asked["run_id"]}).scalar_one() > 0
    assert world.bob.delete(f"{world.base}/conversations/{asked['conversation_id']}").status_code == 204
    with world.container.engine().connect() as conn:
        assert conn.execute(sa.text(count), {"id": asked["run_id"]}).scalar_one() == 0
    assert world.bob.get(asked["events_url"]).status_code == 404


def test_without_ai_the_stream_is_refused_like_every_chat_endpoint(make_container):
    world = World(make_container())
    response = world.bob.get(f"{world.base}/agent-runs/1/events")
    assert response.status_code == 503 and response.json()["error"]["code"] == "ai_not_configured"
