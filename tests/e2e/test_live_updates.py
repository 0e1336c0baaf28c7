"""Live updates across processes (issue 19 item 3): two app instances on one database, each with its own hub and
listening connection, as two `tow serve` processes behind a proxy. Ada saves through A; Bob's stream on B hears
it — as Bob, at that moment: nothing about a record whose grant was revoked, never a title; the stream ends when
he signs out; a process holds at most ``live.max_clients`` streams and frees a slot when a client goes away; and
open streams end when the server shuts down instead of holding its graceful shutdown."""

from __future__ import annotations

import http.client
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import uvicorn

from tests.e2e.browser.conftest import LiveServer, _free_port
from tests.e2e.org_world import World
from tests.live_server import live_server, sign_up_owner
from tow_http.serving import TowServer


@pytest.fixture
def two(make_container) -> Iterator[tuple[World, LiveServer]]:
    """The world is served by app A (in-process clients); B is a second app on the same database, on a port."""
    world = World(make_container())
    other = make_container("live:\n  max_clients: 2\n  heartbeat_seconds: 0.5\n")
    with LiveServer(other.app(), _free_port()) as server:
        server.container = other
        yield world, server


def cookie_of(client) -> str:
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


class Stream:
    def __init__(self, server: LiveServer, world: World, client, records=(), *, token: str | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        query = "&".join(f"record={r}" for r in records)
        who = {"Authorization": f"Bearer {token}"} if token else {"Cookie": cookie_of(client)}
        self.conn.request("GET", f"{world.base}/live?{query}", headers={**who, "Accept": "text/event-stream"})
        self.response = self.conn.getresponse()
        self.comments = 0
        if self.response.status == 200:
            assert self.next()[0] == "ready"

    def next(self) -> tuple[str, dict] | None:
        """The next event (comments counted and skipped); None when the server closed the stream."""
        fields: dict[str, str] = {}
        while True:
            line = self.response.readline()
            if not line:
                return None
            text = line.decode().rstrip("\r\n")
            if not text:
                if "event" in fields:
                    return fields["event"], json.loads(fields.get("data") or "{}")
                continue
            if text.startswith(":"):
                self.comments += 1
                continue
            name, _, value = text.partition(": ")
            fields[name] = value

    def close(self) -> None:
        self.conn.close()


def save(world: World, client, display_id: str, **change) -> dict:
    version = world.record(client, display_id)["version"]
    response = client.patch(f"{world.base}/records/{display_id}", json={"version": version, **change})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_save_and_a_comment_through_one_process_reach_a_stream_on_the_other(two):
    world, b = two
    doc = world.create(world.ada, type="doc", title="Release plan", body="v1", scope=world.scope("OPS"))
    ticket = world.create(world.ada, type="ticket", title="Ship it", scope=world.scope("OPS"))
    stream = Stream(b, world, world.bob, [doc["display_id"], ticket["display_id"]])
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    assert stream.response.headers["x-accel-buffering"] == "no"
    saved = save(world, world.ada, doc["display_id"], body="v2 with the secret date")
    assert stream.next() == ("record_changed", {"record": doc["display_id"], "version": saved["version"],
                                                "by": "Ada"})
    comment = world.ada.post(f"{world.base}/records/{ticket['display_id']}/comments", json={"body": "done"}).json()
    assert stream.next() == ("comment_added", {"record": ticket["display_id"], "version": ticket["version"],
                                               "by": "Ada", "comment_id": comment["id"]})
    save(world, world.bob, doc["display_id"], title="Release plan (Bob)")  # his own save: not told
    save(world, world.ada, ticket["display_id"], status="in_progress")
    assert stream.next()[1]["record"] == ticket["display_id"]
    stream.close()


def test_a_revoked_grant_stops_events_about_the_record_at_once(two):
    world, b = two
    secret = world.create(world.ada, type="ticket", title="Secret fix", scope=world.scope("APP"))
    control = world.create(world.ada, type="doc", title="Open notes", scope=world.scope("OPS"))
    stream = Stream(b, world, world.bob, [secret["display_id"], control["display_id"]])
    grants = world.ada.get(f"{world.base}/projects/{world.projects['APP']}/grants").json()
    grant = next(g for g in grants if g["user_id"] == world.bob_id)
    assert world.ada.delete(f"{world.base}/projects/{world.projects['APP']}/grants/{grant['id']}").status_code == 204
    save(world, world.ada, secret["display_id"], title="Secret fix by Ada")
    world.ada.post(f"{world.base}/records/{secret['display_id']}/comments", json={"body": "hush"})
    save(world, world.ada, control["display_id"], body="after")  # published after the two above, in order
    # Losing the grant is a notification of Bob's (a nudge, naming nothing); nothing about the secret ticket.
    assert stream.next() == ("nudge", {})
    assert stream.next() == ("record_changed", {"record": control["display_id"], "version": 2, "by": "Ada"})
    stream.close()


def test_a_stream_is_refused_for_what_its_caller_cannot_follow(two):
    world, b = two
    secret = world.create(world.ada, type="doc", title="Audit", scope=world.scope("SEC"))
    for client, records, status in ((world.bob, [secret["display_id"]], 404), (world.client(), [], 401),
                                    (world.bob, ["not-an-id"], 422)):
        refused = Stream(b, world, client, records)
        assert refused.response.status == status
        refused.close()


def test_a_read_only_access_token_follows_a_stream_until_it_is_revoked(two):
    world, b = two
    doc = world.create(world.ada, type="doc", title="Runbook", scope=world.scope("OPS"))
    token = world.bob.post("/api/me/tokens", json={"name": "watcher", "access": "read"}).json()
    stream = Stream(b, world, None, [doc["display_id"]], token=token["secret"])
    save(world, world.ada, doc["display_id"], body="step 2")
    assert stream.next()[0] == "record_changed"
    assert world.bob.delete(f"/api/me/tokens/{token['token']['id']}").status_code == 204
    assert stream.next() is None  # the next heartbeat's check refuses the revoked token


def test_signing_out_ends_the_stream_at_the_next_heartbeat(two):
    world, b = two
    stream = Stream(b, world, world.cy)
    world.cy.post("/api/auth/logout")
    assert stream.next() is None  # heartbeat_seconds 0.5: the check refuses, the server closes the stream
    stream.close()


def test_a_process_holds_at_most_max_clients_streams_and_frees_a_slot_on_disconnect(two):
    world, b = two
    first, second = Stream(b, world, world.bob), Stream(b, world, world.cy)
    third = Stream(b, world, world.ada)
    assert third.response.status == 429
    assert third.response.getheader("retry-after")
    first.close()
    hub = b.container.live_hub()
    deadline = time.monotonic() + 10
    while hub.subscriber_count > 1 and time.monotonic() < deadline:
        time.sleep(0.1)  # the server notices the closed connection at its next write (a heartbeat)
    assert hub.subscriber_count == 1
    fourth = Stream(b, world, world.ada)
    assert fourth.response.status == 200
    for stream in (second, third, fourth):
        stream.close()


GRACE_SECONDS = 120  # long: a stream holding the shutdown would keep the server up for all of it


class Logged(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_open_streams_end_as_the_server_shuts_down_and_do_not_hold_its_graceful_shutdown(make_container):
    """`tow serve`'s server (tow_http.serving.TowServer, with the ASGI lifespan, as `tow serve` runs it), a long
    grace period and a stream open: asked to stop, it ends the stream itself — the response finishes whole, it is
    not cut off when the grace period runs out — and stops well within the grace period, the hub left empty."""
    world = World(make_container())
    container = make_container("live:\n  heartbeat_seconds: 0.5\n")
    port = _free_port()
    config = uvicorn.Config(container.app(), host="127.0.0.1", port=port, log_level="info",
                            timeout_graceful_shutdown=GRACE_SECONDS)
    hub = container.live_hub()
    server = TowServer(config, before_draining=[hub.close])
    running = threading.Thread(target=server.run, daemon=True)
    running.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert running.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    logged = Logged()
    logging.getLogger("uvicorn.error").addHandler(logged)  # uvicorn's own loggers do not reach the root
    try:
        doc = world.create(world.ada, type="doc", title="Runbook", scope=world.scope("OPS"))
        stream = Stream(SimpleNamespace(port=port), world, world.bob, [doc["display_id"]])
        assert stream.response.status == 200 and hub.subscriber_count == 1

        server.should_exit = True  # what SIGTERM / Ctrl-C does
        running.join(GRACE_SECONDS / 2)
        assert not running.is_alive(), "the open stream holds the server's shutdown"
        assert stream.next() is None  # ended by the server: the chunked response is complete (a cut one raises)
        stream.close()
    finally:
        logging.getLogger("uvicorn.error").removeHandler(logged)
        server.should_exit = True
        running.join(GRACE_SECONDS)
    assert "Shutting down" in logged.messages  # it did shut down gracefully ...
    assert not any("graceful shutdown exceeded" in m for m in logged.messages)  # ... without cancelling anything
    assert hub.subscriber_count == 0


def test_tow_serve_ends_its_open_streams_on_sigterm_well_within_the_grace_period(tmp_path):
    """The same through `tow serve` itself (its wiring of the hub into the server): SIGTERM with a stream open and
    a 120 s grace period — the stream ends whole and the process exits, nothing cancelled."""
    with live_server(tmp_path, runtime_yaml=f"  shutdown_grace_seconds: {GRACE_SECONDS}\n",
                     yaml_text="live:\n  heartbeat_seconds: 0.5\n") as running:
        cookie, org = sign_up_owner(running, docs=0)
        conn = running.connection(timeout=10)
        conn.request("GET", f"/api/organisations/{org}/live", headers={"Cookie": cookie,
                                                                      "Accept": "text/event-stream"})
        response = conn.getresponse()
        assert response.status == 200 and response.readline().startswith(b"event: ready")
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=GRACE_SECONDS / 2) == 0
        rest = []
        while line := response.readline():  # the rest of the stream, to its end (a cut-off one raises)
            rest.append(line)
        assert rest[:2] == [b"data: {}\r\n", b"\r\n"]  # the end of `ready`, then keep-alives at most
        assert all(line.startswith(b": keep-alive") or line == b"\r\n" for line in rest[2:]), rest
        conn.close()
    assert "graceful shutdown exceeded" not in running.log()
