"""Every response carries the browser protections once (SPEC §10, tow_http.security): nosniff, no framing and a
same-origin referrer — pages, JSON, static files, refusals, and the answers the router gives before any
middleware runs (an unknown path, a wrong method)."""

from __future__ import annotations

import pytest

EXPECTED = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "same-origin"}


@pytest.mark.parametrize(("method", "path", "status", "headers"), [
    ("GET", "/login", 200, {}),
    ("GET", "/static/app.css", 200, {}),
    ("GET", "/api/health", 200, {}),
    ("GET", "/api/me", 401, {}),
    ("GET", "/no/such/page", 404, {}),
    ("GET", "/api/no-such-route", 404, {}),
    ("DELETE", "/api/health", 405, {}),
    ("POST", "/api/auth/login", 403, {"Origin": "https://evil.example"}),
])
def test_each_security_header_is_sent_exactly_once(app_client, method, path, status, headers):
    response = app_client().request(method, path, headers=headers)
    assert response.status_code == status
    for name, value in EXPECTED.items():
        assert response.headers.get_list(name) == [value], (name, path)
