"""Hostile input, sent to the real app over HTTP (issue 11 item 4): JSON nested 1,000 and 100,000 deep, NUL
in every kind of text input, numbers no column or date holds, control bytes in a header. Each must get a
4xx naming the field — the JSON envelope on the API, a page message on the pages — and store nothing."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
import uvicorn
from litestar.testing import TestClient

from tests.e2e.org_world import FIRST, World, shared_world
from tow_http.http_protocol import EnvelopeH11Protocol

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
JSON = {"content-type": "application/json"}
HUGE = 10**20  # beyond PostgreSQL's bigint (and any timedelta)


@pytest.fixture(scope="module")
def world(embedded_postgres, tmp_path_factory):
    yield from shared_world(embedded_postgres, tmp_path_factory, "hostile_input")


def nested(levels: int) -> bytes:
    return b'{"email": ' + b"[" * levels + b"]" * levels + b', "password": "x"}'


def row_counts(world: World) -> dict[str, int]:
    with world.container.engine().connect() as conn:
        tables = conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars()
        return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in list(tables)}


def form_token(client: TestClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return TOKEN.search(response.text).group(1)


@dataclass(frozen=True)
class Attack:
    send: Callable[[World], object]  # returns the response
    field: str  # the envelope's `field`; for a page, the message it shows
    page: bool = False  # a page answers with a page, not the JSON envelope


def record(**overrides) -> dict:
    return {"type": "doc", "scope": {"kind": "organisation"}, "title": "fine", **overrides}


def anonymous(world: World) -> TestClient:
    return world.client()


def page_form(path: str, **fields) -> Callable[[World], object]:
    """A browser form post with a valid CSRF token (Ada's, or an anonymous one for /login)."""
    def send(world: World):
        client = anonymous(world) if path == "/login" else world.ada
        token = form_token(client, "/login" if path == "/login" else f"/o/{world.org}/settings")
        counts = row_counts(world)
        response = client.post(path.format(org=world.org), data={"csrf_token": token, **fields},
                               follow_redirects=False)
        assert row_counts(world) == counts
        return response
    return send


ATTACKS = {
    # --- JSON nested deeper than any body needs (msgspec's RecursionError was a 500) ---
    "login-nested-1000": Attack(lambda w: anonymous(w).post("/api/auth/login", content=nested(1000), headers=JSON),
                                "body"),
    "login-nested-100000": Attack(lambda w: anonymous(w).post("/api/auth/login", content=nested(100_000),
                                                              headers=JSON), "body"),
    "record-nested-1000": Attack(lambda w: w.ada.post(f"{w.base}/records", headers=JSON, content=json.dumps(
        record()).encode()[:-1] + b', "fields": {"x": ' + b"[" * 1000 + b"]" * 1000 + b"}}"), "body"),
    # --- NUL in text: PostgreSQL refuses it ---
    "login-email-nul": Attack(lambda w: anonymous(w).post("/api/auth/login", json={"email": "ada\x00@example.com",
                                                                                   "password": "x"}), "email"),
    "organisation-name-nul": Attack(lambda w: w.ada.post("/api/organisations", json={"name": "Evil\x00Corp"}),
                                    "name"),
    "group-name-nul": Attack(lambda w: w.ada.post(f"{w.base}/groups", json={"name": "ops\x00"}), "name"),
    "project-name-nul": Attack(lambda w: w.ada.post(f"{w.base}/projects", json={
        "key": "NUL", "name": "a\x00b", "visibility": "open"}), "name"),
    "invite-email-nul": Attack(lambda w: w.ada.post(f"{w.base}/invites", json={"email": "eve\x00@example.com"}),
                               "email"),
    "record-title-nul": Attack(lambda w: w.ada.post(f"{w.base}/records", json=record(title="t\x00")), "title"),
    "record-body-nul": Attack(lambda w: w.ada.post(f"{w.base}/records", json=record(body="b\x00")), "body"),
    "record-nested-field-nul": Attack(lambda w: w.ada.post(f"{w.base}/records", json=record(
        type="ticket", scope=w.scope("OPS"), fields={"labels": ["ok", "bad\x00"]})), "fields.labels[1]"),
    "record-field-key-nul": Attack(lambda w: w.ada.post(f"{w.base}/records", json=record(fields={"x\x00": 1})),
                                   "fields"),
    "memory-diff-nested-nul": Attack(lambda w: w.ada.post(f"{w.base}/memory-diffs", json={
        "scope": {"kind": "organisation"}, "operations": [{"op": "create", "title": "x\x00"}]}),
        "operations[0].title"),
    "audit-query-nul": Attack(lambda w: w.ada.get(f"{w.base}/audit?target=a%00b"), "target"),
    "egress-query-nul": Attack(lambda w: w.ada.get(f"{w.base}/egress?record=a%00b"), "record"),
    "path-parameter-nul": Attack(lambda w: w.ada.get(f"{w.base}/records/DOC-1%00"), "display_id"),
    "upload-filename-query-nul": Attack(lambda w: w.ada.post(f"{w.base}/uploads?filename=a%00b", content=b"hi"),
                                        "filename"),
    "upload-x-filename-encoded-nul": Attack(lambda w: w.ada.post(f"{w.base}/uploads", content=b"hi",
                                                                 headers={"x-filename": "a%00b"}), "x-filename"),
    # --- control bytes in a header the HTTP parser lets through (the rest: test_http_parser_... below) ---
    "upload-x-filename-control": Attack(lambda w: w.ada.post(f"{w.base}/uploads", content=b"hi",
                                                             headers={"x-filename": "a\x01b.txt"}), "x-filename"),
    "upload-x-filename-delete": Attack(lambda w: w.ada.post(f"{w.base}/uploads", content=b"hi",
                                                            headers={"x-filename": "a\x7fb.txt"}), "x-filename"),
    # --- numbers no date or column holds ---
    "invite-hours-huge": Attack(lambda w: w.ada.post(f"{w.base}/invites", json={"expires_in_hours": 10**12}),
                                "expires_in_hours"),
    "invite-hours-zero": Attack(lambda w: w.ada.post(f"{w.base}/invites", json={"expires_in_hours": 0}),
                                "expires_in_hours"),
    "record-parent-id-huge": Attack(lambda w: w.ada.post(f"{w.base}/records", json=record(
        type="ticket", scope=w.scope("OPS"), fields={"parent_id": HUGE})), "fields.parent_id"),
    "grant-user-id-huge": Attack(lambda w: w.ada.post(f"{w.base}/projects/{w.projects['APP']}/grants", json={
        "user_id": HUGE, "role": "viewer"}), "user_id"),
    # --- the same on the pages, answered as pages ---
    "page-login-email-nul": Attack(page_form("/login", email="ada\x00@example.com", password="x"),
                                   "email contains a NUL character", page=True),
    "page-group-name-nul": Attack(page_form("/o/{org}/settings/groups", name="ops\x00"),
                                  "name contains a NUL character", page=True),
    "page-invite-hours-huge": Attack(page_form("/o/{org}/settings/invites", expires_in_hours=str(10**12)),
                                     "expiry in hours must be from 1 to 720", page=True),
    "page-query-nul": Attack(lambda w: w.ada.get(f"/o/{w.org}/docs?project=a%00b"),
                             "project contains a NUL character", page=True),
}


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_hostile_input_gets_a_4xx_naming_the_field_and_stores_nothing(world, attack):
    before = row_counts(world)
    response = attack.send(world)
    assert 400 <= response.status_code < 500, response.text
    assert row_counts(world) == before
    if attack.page:
        assert response.headers["content-type"].startswith("text/html")
        assert attack.field in response.text
        return
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"}
    assert (error["code"], error["field"]) == ("invalid_input", attack.field), error


def test_ordinary_input_near_the_limits_is_accepted(world):
    """What the checks must not refuse: brackets and NUL-looking text inside strings, an escaped backslash
    before "u0000", 64 levels of nesting in free-form fields, the largest bigint."""
    tricky = "[" * 200 + "{" * 200 + "\\u0000" + '"'
    created = world.create(world.ada, **record(title=tricky[:190], body=tricky))
    assert world.record(world.ada, created["display_id"])["body"] == tricky
    response = world.ada.post("/api/auth/login", json={"email": FIRST["email"], "password": FIRST["password"]})
    assert response.status_code == 200
    deep_but_allowed = b'{"email": ' + b"[" * 62 + b"]" * 62 + b', "password": "x"}'  # 63 levels
    response = anonymous(world).post("/api/auth/login", content=deep_but_allowed, headers=JSON)
    assert response.status_code == 400 and response.json()["error"].get("field") != "body"  # a type error instead
    response = world.ada.post(f"{world.base}/invites", json={"expires_in_hours": 720})
    assert response.status_code == 201


# --- header bytes the HTTP/1.1 parser itself refuses, through a real uvicorn server as `tow serve` runs it ---


@pytest.fixture(scope="module")
def server_port(world):
    config = uvicorn.Config(world.container.app(), host="127.0.0.1", port=0, log_level="critical",
                            lifespan="off", http=EnvelopeH11Protocol)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.05)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)


def raw_request(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
            if b"\r\n\r\n" in received:
                head, _, body = received.partition(b"\r\n\r\n")
                headers = dict(line.decode().lower().split(": ", 1) for line in head.split(b"\r\n")[1:])
                if len(body) >= int(headers.get("content-length", "0")):
                    return int(head.split(b" ")[1]), headers, body
    raise AssertionError(f"no complete response: {received!r}")


@pytest.mark.parametrize("byte", [b"\x00", b"\r", b"\x0b", b"\x0c", b"\x01", b"\x1b", b"\x7f"],
                         ids=["nul", "cr", "vt", "ff", "soh", "esc", "del"])
def test_control_bytes_in_a_header_get_the_json_envelope_from_the_real_server(world, server_port, byte):
    before = row_counts(world)
    status, headers, body = raw_request(server_port, (
        f"POST /api/organisations/{world.org}/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Length: 2\r\nX-Filename: a").encode() + byte + b"b.txt\r\n\r\nhi")
    assert status == 400, body
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == {"code": "invalid_input", "field": "x-filename",
                                         "message": "the x-filename header contains a control character"}
    assert row_counts(world) == before
