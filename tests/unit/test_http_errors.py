"""The one core-exception → status table (SPEC §10) and the JSON error shape, pinned through the app."""

from __future__ import annotations

import msgspec
import pytest
from litestar import Router, post
from litestar.params import JSONBody
from litestar.testing import TestClient

from tow_core import errors as core
from tow_core.readiness import SchemaState
from tow_http.app import create_app
from tow_http.config import Settings
from tow_http.context import Services
from tow_http.session_cookie import SessionCookieSigner


class RaisingInspector:
    """A SchemaInspector fake that fails the way the test asks."""

    def __init__(self, error: Exception | None = None, current: str | None = "0001") -> None:
        self.error = error
        self.current = current

    def schema_state(self) -> SchemaState:
        if self.error:
            raise self.error
        return SchemaState(current_revision=self.current, latest_revision="0001")


class Echo(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    count: int


@post("/echo", sync_to_thread=False)
def echo(data: JSONBody[Echo]) -> Echo:
    return data


def client_for(inspector: RaisingInspector | None = None, **runtime) -> TestClient:
    services = Services(
        settings=msgspec.convert({"runtime": runtime}, Settings),
        transaction=lambda: pytest.fail("these routes touch no database"),
        sign_in_log=None,
        password_hasher=None,
        cookie_signer=SessionCookieSigner("k" * 40),
    )
    app = create_app(
        services=services,
        schema_inspector=inspector or RaisingInspector(),
        extra_routers=[Router(path="/api/test", route_handlers=[echo])],
    )
    return TestClient(app)


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        pytest.param(core.MalformedInput("nul", field="title"), 400, "invalid_input", None, id="malformed-input-400"),
        pytest.param(core.InvalidInput("bad", field="title"), 422, "invalid_input", None, id="invalid-input-422"),
        pytest.param(core.NotAuthenticated("sign in"), 401, "not_authenticated", None, id="not-authenticated-401"),
        pytest.param(core.AccessDenied("no"), 403, "forbidden", None, id="access-denied-403"),
        pytest.param(core.NotFound("gone"), 404, "not_found", None, id="not-found-404"),
        pytest.param(core.Conflict("stale"), 409, "conflict", None, id="conflict-409"),
        pytest.param(core.PayloadTooLarge("big"), 413, "payload_too_large", None, id="too-large-413"),
        pytest.param(core.Throttled("slow", retry_after_seconds=7), 429, "throttled", "7", id="throttled-429"),
        pytest.param(
            core.DependencyUnavailable("db down", retry_after_seconds=5), 503, "dependency_unavailable", "5",
            id="dependency-503",
        ),
        pytest.param(core.DatabaseBusy("pool", retry_after_seconds=1), 503, "database_busy", "1", id="busy-503"),
        pytest.param(core.SchemaOutOfDate("migrate"), 503, "schema_out_of_date", "30", id="schema-503"),
        pytest.param(core.NotConfigured("no key"), 503, "not_configured", None, id="not-configured-503"),
        pytest.param(core.TowError("other"), 400, "error", None, id="base-400"),
        pytest.param(RuntimeError("boom at /secret/path"), 500, "internal_error", None, id="bug-500-no-trace"),
    ],
)
def test_each_core_error_has_one_status_and_the_json_shape(error, status, code, retry_after):
    with client_for(RaisingInspector(error)) as client:
        response = client.get("/api/ready")
    assert response.status_code == status
    body = response.json()
    assert body["error"]["code"] == code
    assert set(body) == {"error"}
    assert response.headers.get("retry-after") == retry_after
    assert "Traceback" not in response.text and "/secret/path" not in response.text
    if isinstance(error, core.TowError) and error.field:
        assert body["error"]["field"] == error.field


def test_health_is_200_and_ready_reports_the_schema():
    with client_for() as client:
        assert client.get("/api/health").json() == {"status": "ok"}
        ready = client.get("/api/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "schema_revision": "0001"}


def test_ready_is_503_with_retry_after_on_an_unmigrated_database():
    with client_for(RaisingInspector(current=None)) as client:
        response = client.get("/api/ready")
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert "tow db upgrade" in response.json()["error"]["message"]


def test_unknown_route_and_wrong_method_use_the_error_shape():
    with client_for() as client:
        missing = client.get("/api/nothing-here")
        wrong = client.delete("/api/health")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param(b'{"name": "a", "count": "three"}', "count", id="wrong-type"),
        pytest.param(b'{"name": "a"}', "count", id="missing-field"),
        pytest.param(b'{"name": "a", "count": 1, "admin": true}', "admin", id="unknown-field"),
        pytest.param(b"{not json", None, id="malformed"),
    ],
)
def test_bad_bodies_are_400_naming_the_problem(payload, field):
    with client_for() as client:
        response = client.post("/api/test/echo", content=payload, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and error["message"]
    if field:
        assert error["field"] == field


def test_bodies_over_the_limit_get_413_before_being_read_whole():
    with client_for(max_request_body_bytes=2048) as client:
        ok = client.post("/api/test/echo", json={"name": "a", "count": 1})
        big = client.post("/api/test/echo", json={"name": "a" * 5000, "count": 1})

        def chunks():  # no Content-Length: the limit must hold while streaming
            for _ in range(10):
                yield b" " * 1024

        streamed = client.post("/api/test/echo", content=chunks(), headers={"content-type": "application/json"})
    assert ok.status_code == 201
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    assert streamed.status_code == 413


def test_openapi_document_is_served_with_the_error_contract():
    with client_for() as client:
        doc = client.get("/api/openapi.json").json()
    assert "/api/health" in doc["paths"] and "/api/ready" in doc["paths"]
    assert "404 not found *or not visible to you*" in doc["info"]["description"]


@pytest.mark.parametrize(("body", "field"), [
    pytest.param({"name": "a", "count": "1"}, "count", id="a-string-for-an-integer"),
    pytest.param({"name": 5, "count": 1}, "name", id="a-number-for-a-string"),
    pytest.param({"name": "a", "count": True}, "count", id="a-boolean-for-an-integer"),
    pytest.param({"name": "a", "count": 1.5}, "count", id="a-fraction-for-an-integer"),
])
def test_bodies_are_decoded_with_json_types_as_the_openapi_document_declares(body, field):
    with client_for() as client:
        response = client.post("/api/test/echo", json=body)
    assert response.status_code == 400 and response.json()["error"]["field"] == field


def test_an_integral_number_is_an_integer_as_in_json_schema():
    with client_for() as client:
        response = client.post("/api/test/echo", json={"name": "a", "count": 2.0})
    assert response.status_code == 201 and response.json() == {"name": "a", "count": 2}
