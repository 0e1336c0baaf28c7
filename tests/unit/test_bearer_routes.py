"""Every JSON API operation that has a caller takes any credential, so a personal access token works on all
of them (issue 15): a handler written as ``caller: NamedDependency[SessionCredential]`` would refuse bearer
requests on its route alone. Pages may take either: they only ever receive a session (``caller_of``)."""

from __future__ import annotations

import msgspec
import pytest

from tests.unit.test_http_errors import RaisingInspector
from tow_core.unit_of_work import Credential
from tow_http.app import create_app
from tow_http.config import Settings
from tow_http.context import Services
from tow_http.session_cookie import SessionCookieSigner


def api_handlers():
    services = Services(settings=msgspec.convert({}, Settings), transaction=lambda: pytest.fail("no database"),
                        sign_in_log=None, password_hasher=None, cookie_signer=SessionCookieSigner("k" * 40))
    app = create_app(services=services, schema_inspector=RaisingInspector())
    for route in app.routes:
        if route.path.startswith("/api/"):
            for handler in getattr(route, "route_handlers", ()):
                yield route.path, handler


def test_every_api_operation_with_a_caller_accepts_a_personal_access_token():
    callers = {}
    for path, handler in api_handlers():
        parameters = handler.parsed_fn_signature.parameters
        if "caller" in parameters:
            callers[f"{sorted(handler.http_methods)} {path}"] = parameters["caller"].annotation
    assert len(callers) > 50  # the whole API, not an empty walk
    wrong = {label: kind.__name__ for label, kind in callers.items() if kind is not Credential}
    assert not wrong, f"these routes would refuse a bearer token: {wrong}"
