"""The MCP server at /api/mcp (issue 15) through a live TOW with the official SDK's streamable-HTTP client
(``mcp.client.streamable_http``), authenticated by personal access tokens, written as attacks where it matters:
no token or a bad one is 401, a read-only token cannot call the writing tools, a tool never returns what the
token's user cannot read (a restricted doc, another organisation through a limited token), a body over 256 KiB
is 413, a foreign Host header is refused, and concurrency beyond the per-token bound is 429."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator

import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.browser.conftest import LiveServer, _free_port
from tests.e2e.org_world import World
from tow_http.context import secret_hash
from tow_http.mcp.door import MCP_STATE_KEY

WRITING_TOOLS = {"propose_memory_diff", "create_ticket"}


@pytest.fixture(scope="module")
def world(embedded_postgres, tmp_path_factory) -> Iterator[World]:
    from dependency_injector import providers

    from tests.postgres_fixtures import SECRET
    from tow_adapters.argon2_password_hasher import Argon2PasswordHasher
    from tow_http.composition import Container
    from tow_http.config import load_config

    port = _free_port()
    database = "mcp_server"
    embedded_postgres.ensure_database(database)
    config_path = tmp_path_factory.mktemp("mcp") / "tow.yaml"
    config_path.write_text(f"runtime:\n  public_app_url: http://127.0.0.1:{port}\n"
                           "mcp:\n  max_concurrent_requests: 8\n  max_concurrent_per_token: 2\n")
    container = Container(config=load_config(config_path, environ={"APP_SECRET": SECRET}),
                          database_url=embedded_postgres.url(database))
    container.password_hasher.override(providers.Object(Argon2PasswordHasher(time_cost=1, memory_cost=8,
                                                                             parallelism=1)))
    container.schema_migrator().upgrade()
    world = World(container)
    with LiveServer(container.app(), port, lifespan="on") as server:
        world.server = server
        yield world
    container.engine().dispose()


def token(client, **body) -> str:
    created = client.post("/api/me/tokens", json={"name": "mcp client", **body})
    assert created.status_code == 201, created.text
    return created.json()["secret"]


async def _session_run(world: World, secret: str, work):
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {secret}"}, timeout=30) as http, \
            streamable_http_client(f"{world.server.url}/api/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        return await work(session)


def run(world: World, secret: str, work):
    return asyncio.run(_session_run(world, secret, work))


def call(world: World, secret: str, tool: str, arguments: dict):
    async def work(session):
        return await session.call_tool(tool, arguments)
    return run(world, secret, work)


def payload(result) -> dict:
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)


def error_text(result) -> str:
    """A tool error's TOW part (``code: message``), after the SDK's "Error executing tool NAME: "."""
    assert result.is_error
    text = result.content[0].text
    return text.split(": ", 1)[1] if text.startswith("Error executing tool") else text


def raw_post(world: World, body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", world.server.port, timeout=30)
    try:
        conn.request("POST", "/api/mcp", body=body, headers={"Content-Type": "application/json",
                                                             "Accept": "application/json, text/event-stream",
                                                             **headers})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}}).encode()


def test_a_client_lists_the_tools_and_searches_gets_lists_and_follows_backlinks_as_the_tokens_user(world):
    doc = world.create(world.ada, type="doc", title="Onboarding runbook mcpcheck", body="mcpcheck steps",
                       scope={"kind": "organisation"})
    ticket = world.create(world.ada, type="ticket", title="Cite the runbook", body=f"see {doc['display_id']}",
                          scope=world.scope("OPS"))
    secret = token(world.bob, access="read")

    async def work(session):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        found = await session.call_tool("search", {"organisation_id": world.org, "query": "mcpcheck"})
        got = await session.call_tool("get_record", {"organisation_id": world.org, "display_id": doc["display_id"]})
        listed = await session.call_tool("list_records", {"organisation_id": world.org, "types": ["doc"]})
        cited = await session.call_tool("backlinks", {"organisation_id": world.org, "display_id": doc["display_id"]})
        return tools, found, got, listed, cited

    tools, found, got, listed, cited = run(world, secret, work)
    assert set(tools) == {"search", "get_record", "list_records", "backlinks", *WRITING_TOOLS}
    assert tools["search"].annotations.read_only_hint and not tools["create_ticket"].annotations.read_only_hint
    assert doc["display_id"] in [h["display_id"] for h in payload(found)["items"]]
    assert payload(got)["body"] == "mcpcheck steps"
    assert doc["display_id"] in [r["display_id"] for r in payload(listed)["items"]]
    assert [s["display_id"] for s in payload(cited)["items"]] == [ticket["display_id"]]
    # the same reads as the API with the same token answer the same
    api = world.client().get(f"{world.base}/records/{doc['display_id']}", headers={"Authorization": f"Bearer {secret}"})
    assert api.json() == payload(got)


def test_a_tool_never_returns_what_the_user_cannot_read(world):
    hidden = world.create(world.ada, type="doc", title="Security review mcpsecret", body="mcpsecret",
                          scope=world.scope("SEC"))  # restricted, Bob has no grant
    secret = token(world.bob, access="read")

    async def work(session):
        org = world.org
        return (await session.call_tool("search", {"organisation_id": org, "query": "mcpsecret"}),
                await session.call_tool("get_record", {"organisation_id": org, "display_id": hidden["display_id"]}),
                await session.call_tool("list_records", {"organisation_id": org, "limit": 200}),
                await session.call_tool("backlinks", {"organisation_id": org, "display_id": hidden["display_id"]}))

    found, got, listed, cited = run(world, secret, work)
    assert payload(found)["items"] == []
    assert error_text(got).startswith("not_found")
    assert hidden["display_id"] not in json.dumps(payload(listed))
    assert error_text(cited).startswith("not_found")
    # Ada, who may read it, finds it through her own token: the tool filters by the user, not by itself
    ada = token(world.ada, access="read")
    assert payload(call(world, ada, "get_record", {"organisation_id": world.org,
                                                   "display_id": hidden["display_id"]}))["title"].endswith("mcpsecret")


def test_a_token_limited_to_one_organisation_finds_nothing_in_another(world):
    other = world.ada.post("/api/organisations", json={"name": "Elsewhere MCP"}).json()["id"]
    world.ada.post(f"/api/organisations/{other}/records", json={
        "type": "doc", "title": "elsewhere doc", "scope": {"kind": "organisation"}})
    limited = token(world.ada, access="read", organisation_id=world.org)
    result = call(world, limited, "list_records", {"organisation_id": other})
    assert error_text(result).startswith("not_found")
    everywhere = token(world.ada, access="read")
    assert payload(call(world, everywhere, "list_records", {"organisation_id": other}))["items"]


def test_a_read_only_token_cannot_call_the_writing_tools_and_a_read_write_token_writes_as_its_user(world):
    read_only = token(world.bob, access="read")
    ticket = {"organisation_id": world.org, "title": "filed over MCP", "scope": world.scope("OPS")}
    diff = {"organisation_id": world.org, "scope": {"kind": "organisation"},
            "operations": [{"op": "create", "title": "We deploy on Tuesdays", "fields": {"memory_type": "fact"}}]}
    assert error_text(call(world, read_only, "create_ticket", ticket)).startswith("token_read_only")
    assert error_text(call(world, read_only, "propose_memory_diff", diff)).startswith("token_read_only")
    titles = [r["title"] for r in world.bob.get(f"{world.base}/records", params={"type": "ticket"}).json()["items"]]
    assert "filed over MCP" not in titles

    writer = token(world.bob, access="read_write")
    created = payload(call(world, writer, "create_ticket", ticket))
    assert created["author_id"] == world.bob_id and created["type"] == "ticket"
    proposed = payload(call(world, writer, "propose_memory_diff", diff))
    assert proposed["status"] == "pending" and proposed["author_id"] == world.bob_id
    # a scope Bob cannot write is refused as the API refuses it
    refused = call(world, writer, "create_ticket", {**ticket, "scope": world.scope("SEC")})
    assert error_text(refused).startswith("not_found")
    bad = call(world, writer, "create_ticket", {**ticket, "scope": {"kind": "planet"}})
    assert error_text(bad).startswith("invalid_input")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer tow_pat_" + "x" * 43},
                                     {"Authorization": "Bearer something-else"}])
def test_without_a_valid_token_the_server_answers_401_before_reading_the_request(world, headers):
    status, answer, body = raw_post(world, INITIALIZE, headers)
    assert status == 401 and answer["www-authenticate"].startswith("Bearer")
    assert json.loads(body)["error"]["code"] in ("not_authenticated", "invalid_token")


def test_a_session_cookie_does_not_open_the_mcp_server(world):
    cookie = "; ".join(f"{k}={v}" for k, v in world.ada.cookies.items())
    status, _, _ = raw_post(world, INITIALIZE, {"Cookie": cookie})
    assert status == 401


def test_revoked_expired_and_deactivated_tokens_are_401(world):
    client, user_id = world.join("mcp-eve")
    revoked, expired, deactivated = (token(client, access="read") for _ in range(3))
    token_ids = [t["id"] for t in client.get("/api/me/tokens").json()]
    client.delete(f"/api/me/tokens/{token_ids[2]}")  # newest first: the first of the three
    world.sql("UPDATE personal_access_tokens SET created_at = now() - interval '2 days', "
              "expires_at = now() - interval '1 second' WHERE id = :i", i=token_ids[1])
    for secret in (revoked, expired):
        assert raw_post(world, INITIALIZE, {"Authorization": f"Bearer {secret}"})[0] == 401
    assert raw_post(world, INITIALIZE, {"Authorization": f"Bearer {deactivated}"})[0] == 200
    world.sql("UPDATE users SET is_active = false WHERE id = :u", u=user_id)
    assert raw_post(world, INITIALIZE, {"Authorization": f"Bearer {deactivated}"})[0] == 401


def test_a_body_over_256_kib_is_413_and_a_foreign_host_is_refused(world):
    secret = token(world.cy, access="read")
    auth = {"Authorization": f"Bearer {secret}"}
    huge = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"x": "y" * (257 * 1024)}})
    assert raw_post(world, huge.encode(), auth)[0] == 413
    rebinding = raw_post(world, INITIALIZE, {**auth, "Host": "evil.example:80"})[0]
    assert rebinding in (400, 421)
    assert raw_post(world, INITIALIZE, auth)[0] == 200


def test_requests_beyond_the_per_token_bound_are_429_and_other_tokens_still_get_through(world):
    secret, other = token(world.cy, access="read"), token(world.ada, access="read")
    door = world.container.app().state[MCP_STATE_KEY]
    held = secret_hash(secret)
    door.per_token[held] += 2  # two requests of Cy's token in flight (the bound is 2)
    try:
        status, answer, body = raw_post(world, INITIALIZE, {"Authorization": f"Bearer {secret}"})
        assert status == 429 and answer["retry-after"] == "1" and json.loads(body)["error"]["code"] == "throttled"
        assert raw_post(world, INITIALIZE, {"Authorization": f"Bearer {other}"})[0] == 200
    finally:
        door.per_token[held] -= 2
    assert raw_post(world, INITIALIZE, {"Authorization": f"Bearer {secret}"})[0] == 200


def test_concurrent_calls_with_one_token_are_bounded(world):
    """Many clients on one token at once: each answer is a result or a 429, never a crash, and at least one
    gets through."""
    secret = token(world.bob, access="read")
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        status = raw_post(world, INITIALIZE, {"Authorization": f"Bearer {secret}"})[0]
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(statuses) == 6 and set(statuses) <= {200, 429} and 200 in statuses
