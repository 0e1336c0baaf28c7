"""The OpenAPI document's error contract (tow_http/openapi.py), read from the served document. Whether the
server keeps it is schemathesis' job: tests/e2e/test_openapi_conformance.py."""

from __future__ import annotations

import msgspec
import pytest
from litestar.testing import TestClient

from tests.unit.test_http_errors import RaisingInspector
from tow_http.app import create_app
from tow_http.config import Settings
from tow_http.context import Services
from tow_http.openapi import ANSWERS
from tow_http.session_cookie import SessionCookieSigner

METHODS = ("get", "put", "post", "delete", "patch", "head")


@pytest.fixture(scope="module")
def client():
    services = Services(settings=msgspec.convert({}, Settings), transaction=lambda: pytest.fail("no database"),
                        sign_in_log=None, password_hasher=None, cookie_signer=SessionCookieSigner("k" * 40))
    with TestClient(create_app(services=services, schema_inspector=RaisingInspector())) as client:
        yield client


@pytest.fixture(scope="module")
def document(client):
    return client.get("/api/openapi.json").json()


def operations(document):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def test_both_addresses_serve_the_same_document(client, document):
    assert client.get("/api/docs/openapi.json").json() == document


def test_every_operation_states_its_answers_in_the_one_table(document):
    named = {op["operationId"]: op for _, op in operations(document)}
    handlers = {operation_id for operation_id in named}
    assert len(handlers) == sum(1 for _ in operations(document))
    # Litestar's operation ids end with the handler's name in CamelCase
    camel = {"".join(part.title() for part in name.split("_")): name for name in ANSWERS}
    unmatched = [op_id for op_id in named if not any(op_id.endswith(c) for c in camel)]
    assert not unmatched, f"operations without an entry in tow_http.openapi.ANSWERS: {unmatched}"
    stale = [name for c, name in camel.items() if not any(op_id.endswith(c) for op_id in named)]
    assert not stale, f"ANSWERS entries naming no operation: {stale}"


def test_every_error_response_is_the_envelope_and_litestars_400_is_gone(document):
    assert "ErrorEnvelope" in document["components"]["schemas"]
    for label, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400 and not label.startswith("HEAD"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (label, status)
    assert '"detail"' not in str(document).replace("'", '"')


def test_signed_in_operations_declare_the_session_cookie_and_401(document):
    scheme = document["components"]["securitySchemes"]["session"]
    assert scheme == {"type": "apiKey", "in": "cookie", "name": "tow_session", "description": scheme["description"]}
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    signed_in = {label for label, op in operations(document)
                 if op.get("security") == [{"session": []}, {"bearer": []}]}  # either one
    with_401 = {label for label, op in operations(document) if "401" in op["responses"]}
    assert with_401 - signed_in == {"POST /api/auth/login"}  # wrong password; no session needed
    assert "GET /api/me" in signed_in and "GET /api/health" not in with_401


@pytest.mark.parametrize(("label", "access"), [
    ("POST /api/organisations/{org_id}/projects", "organisation_managers"),
    ("PATCH /api/organisations/{org_id}/projects/{project_id}", "project_managers"),
    ("GET /api/server/audit", "server_admins"),
    ("POST /api/server/imports", "server_admins"),
    ("GET /api/organisations/{org_id}/projects", None),
    ("DELETE /api/organisations/{org_id}/members/{user_id}", None),  # any member may leave
])
def test_operations_only_some_roles_may_use_are_marked(document, label, access):
    operation = dict(operations(document))[label]
    assert operation.get("x-tow-access") == access
    if access:
        assert "403" in operation["responses"]


def test_state_changing_operations_declare_the_cross_site_refusal(document):
    for label, operation in operations(document):
        if label.split()[0] in ("POST", "PUT", "PATCH", "DELETE"):
            assert "403" in operation["responses"], label


def test_retry_after_and_bodiless_responses(document):
    ops = dict(operations(document))
    assert ops["POST /api/auth/login"]["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    assert "Retry-After" in ops["GET /api/ready"]["responses"]["503"]["headers"]
    assert "content" not in ops["POST /api/auth/logout"]["responses"]["204"]
    download = ops["GET /api/uploads/{upload_id}/content"]["responses"]
    assert set(download) >= {"200", "206", "416"} and "*/*" in download["206"]["content"]


def test_constraints_the_server_enforces_are_declared(document):
    schemas = document["components"]["schemas"]
    assert schemas["ProjectIn"]["additionalProperties"] is False
    assert schemas["ProjectIn"]["properties"]["key"]["maxLength"] == 10
    assert schemas["FirstAccountIn"]["properties"]["password"]["minLength"] == 10
    assert schemas["RecordIn"]["properties"]["fields"]["properties"]["priority"] == {
        "type": "integer", "minimum": 1, "maximum": 4}
    record = dict(operations(document))["GET /api/organisations/{org_id}/records/{display_id}"]
    display_id = next(p for p in record["parameters"] if p["name"] == "display_id")
    assert display_id["schema"]["pattern"].startswith("^")


def test_405_and_options_name_every_method_of_the_resource(client):
    refused = client.request("PATCH", "/api/me/avatar")
    assert refused.status_code == 405 and refused.json()["error"]["code"] == "method_not_allowed"
    assert set(refused.headers["allow"].split(", ")) == {"DELETE", "PUT", "OPTIONS"}
    options = client.request("OPTIONS", "/api/organisations/1/invites")  # Litestar listed POST only
    assert set(options.headers["allow"].split(", ")) == {"GET", "POST", "OPTIONS"}
