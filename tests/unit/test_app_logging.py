"""Building and serving the app leaves logging to the process: no per-app listener threads pile up, and
unhandled errors still reach the standard ``logging`` tree (where ``tow serve`` configures output)."""

from __future__ import annotations

import logging
import threading

import msgspec
import pytest
from litestar import Router, get
from litestar.testing import TestClient

from tests.unit.test_http_errors import RaisingInspector
from tow_http.app import create_app
from tow_http.config import Settings
from tow_http.context import Services
from tow_http.session_cookie import SessionCookieSigner


@get("/boom", sync_to_thread=False)
def boom() -> None:
    raise RuntimeError("a bug, not user input")


def app():
    services = Services(settings=msgspec.convert({}, Settings), transaction=lambda: pytest.fail("no database"),
                        sign_in_log=None, password_hasher=None, cookie_signer=SessionCookieSigner("k" * 40))
    return create_app(services=services, schema_inspector=RaisingInspector(),
                      extra_routers=[Router(path="/api/test", route_handlers=[boom])])


def test_building_and_serving_apps_leaves_no_threads_behind():
    before = set(threading.enumerate())
    for _ in range(3):
        with TestClient(app()) as client:
            assert client.get("/api/health").status_code == 200
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert left == []


def test_an_unhandled_error_is_logged_and_answered_as_json_without_internals(caplog):
    with caplog.at_level(logging.ERROR, logger="tow.http"), TestClient(app()) as client:
        response = client.get("/api/test/boom")
    assert response.status_code == 500 and "a bug" not in response.text
    assert response.json()["error"]["code"]
    assert any(record.name == "tow.http" and record.exc_info for record in caplog.records)
