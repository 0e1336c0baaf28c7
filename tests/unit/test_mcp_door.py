"""The MCP door's own rules, without a database (tow_http/mcp/door.py; the live behaviour is
tests/e2e/test_mcp_server.py): the app can be started more than once (a fresh SDK session manager per
lifespan), no token is 401 before anything else, the overall bound answers 429 at once, and the Host/Origin
allowed are those of runtime.public_app_url."""

from __future__ import annotations

import msgspec
import pytest
from litestar.testing import TestClient

from tests.unit.test_http_errors import RaisingInspector
from tow_http.app import create_app
from tow_http.config import Settings
from tow_http.context import Services
from tow_http.mcp.door import MCP_STATE_KEY, transport_security
from tow_http.session_cookie import SessionCookieSigner


def app():
    services = Services(settings=msgspec.convert({}, Settings), transaction=lambda: pytest.fail("no database"),
                        sign_in_log=None, password_hasher=None, cookie_signer=SessionCookieSigner("k" * 40))
    return create_app(services=services, schema_inspector=RaisingInspector())


def test_the_app_starts_twice_and_no_token_is_401_each_time():
    served = app()
    for _ in range(2):
        with TestClient(served) as client:
            assert served.state[MCP_STATE_KEY].running
            answer = client.post("/api/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == 'Bearer realm="tow"'
            assert answer.json()["error"]["code"] == "not_authenticated"
        assert not served.state[MCP_STATE_KEY].running


def test_a_malformed_token_is_invalid_token_and_cookies_never_count():
    with TestClient(app()) as client:
        answer = client.post("/api/mcp/", headers={"Authorization": "Bearer abc"}, json={})
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_token"
        assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        client.cookies.set("session", "anything")
        assert client.post("/api/mcp", json={}).status_code == 401


def test_beyond_the_overall_bound_the_answer_is_429_before_the_token_is_looked_up():
    served = app()
    door = served.state[MCP_STATE_KEY]
    with TestClient(served) as client:
        door.in_flight = door.limits.max_concurrent_requests
        try:  # the database is never asked (this app has none): the bound answers first
            answer = client.post("/api/mcp", headers={"Authorization": "Bearer tow_pat_" + "a" * 43}, json={})
        finally:
            door.in_flight = 0
        assert answer.status_code == 429 and answer.headers["retry-after"] == "1"
        assert answer.json()["error"]["code"] == "throttled"


def test_the_allowed_host_and_origin_are_the_public_urls():
    behind_proxy = transport_security("https://tow.example.com")
    assert behind_proxy.allowed_hosts == ["tow.example.com"]
    assert behind_proxy.allowed_origins == ["https://tow.example.com"]
    assert transport_security("http://127.0.0.1:8000/").allowed_hosts == ["127.0.0.1:8000"]
