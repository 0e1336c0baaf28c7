"""Signing in through an OpenID Connect provider as a browser would, against TOW's app in a TestClient
(tests/e2e/test_single_sign_on*.py)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

CLIENT_SECRET = "provider-client-secret"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


DEFAULT_RULES = "      - {organisation: Acme, role: member}\n"


def sso_yaml(issuer: str, *, rules: str = DEFAULT_RULES, extra: str = "") -> str:
    return ("auth:\n  mode: oidc\n  oidc:\n"
            f"    issuer_url: {issuer}\n    client_id: tow\n    provider_logout_enabled: true\n{extra}"
            f"    organisations:\n{rules}")


def start(client, next_path: str = "", invite: str = "") -> tuple[str, dict[str, str]]:
    """TOW's redirect to the provider: its URL and query parameters."""
    query = urlencode({k: v for k, v in (("next", next_path), ("invite", invite)) if v})
    response = client.get("/auth/oidc/start" + (f"?{query}" if query else ""), follow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    return location, {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def back_to_tow(client, location: str):
    """Follow the provider's redirect back to TOW's callback in ``client`` (the browser)."""
    parts = urlsplit(location)
    return client.get(f"{parts.path}?{parts.query}", follow_redirects=False)


def mock_login(client, provider: str, sub: str, claims: dict | None = None, next_path: str = "", invite: str = ""):
    """Through oidc-provider-mock's own login page: set the user's claims with its API, submit its form."""
    if claims is not None:
        assert requests.put(f"{provider}/users/{sub}", json=claims, timeout=10).status_code == 204
    authorize, _ = start(client, next_path, invite)
    page = requests.get(authorize, timeout=10)
    assert page.status_code == 200 and 'name="sub"' in page.text
    answer = requests.post(authorize, data={"sub": sub}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return back_to_tow(client, answer.headers["location"])


def csrf(client, path: str = "/login") -> str:
    return CSRF.search(client.get(path).text).group(1)
