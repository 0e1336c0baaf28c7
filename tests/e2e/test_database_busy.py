"""When every pooled connection is in use, a request is answered quickly with 503 database_busy and
Retry-After — never a 30 s hang — and a request that needs no database still gets its answer (issue 11)."""

from __future__ import annotations

import time

import pytest

FIRST = {"email": "ada@example.com", "display_name": "Ada", "password": "correct horse battery",
         "organisation_name": "Acme"}
ONE_CONNECTION = "database:\n  pool_size: 1\n  max_overflow: 0\n  pool_timeout_seconds: 0.2\n"


@pytest.fixture
def busy(make_container, app_client):
    container = make_container(ONE_CONNECTION)
    owner = app_client(container)
    org = owner.post("/api/auth/register-first", json=FIRST).json()["active_organisation_id"]
    held = container.engine().connect()  # the pool's only connection, held by "another request"
    yield container, owner, org, app_client(container)
    held.close()


def test_a_request_waiting_for_a_connection_gets_503_database_busy_quickly(busy):
    _, owner, org, _ = busy
    started = time.monotonic()
    response = owner.get(f"/api/organisations/{org}/records")
    assert time.monotonic() - started < 2
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_busy"
    assert int(response.headers["retry-after"]) >= 1


def test_ready_reports_the_busy_database(busy):
    _, owner, _, _ = busy
    response = owner.get("/api/ready")
    assert (response.status_code, response.json()["error"]["code"]) == (503, "database_busy")


def test_requests_that_need_no_database_are_answered_while_it_is_busy(busy):
    _, owner, _, stranger = busy
    assert stranger.get("/api/me").status_code == 401  # no cookie: refused without a connection
    stranger.cookies.set("tow_session", "forged.value")
    assert stranger.get("/api/me").status_code == 401
    assert owner.get("/api/health").status_code == 200


def test_the_pool_serves_again_once_the_connection_is_back(make_container, app_client):
    container = make_container(ONE_CONNECTION)
    owner = app_client(container)
    org = owner.post("/api/auth/register-first", json=FIRST).json()["active_organisation_id"]
    held = container.engine().connect()
    assert owner.get(f"/api/organisations/{org}/records").status_code == 503
    held.close()
    assert owner.get(f"/api/organisations/{org}/records").status_code == 200
