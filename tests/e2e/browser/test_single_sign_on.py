"""Single sign-on in a real browser: TOW's sign-in page → the provider's own login page (oidc-provider-mock
on loopback) → back to TOW, signed in; then sign-out through the provider's logout page."""

from __future__ import annotations

import pytest
import requests
from oidc_provider_mock import run_server_in_thread

from tests.e2e.browser.conftest import CHROMIUM_ARGS, LiveServer, _free_port  # noqa: F401
from tests.e2e.sso_helpers import CLIENT_SECRET, sso_yaml


@pytest.fixture
def provider():
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def sso_server(make_container, provider):
    port = _free_port()
    container = make_container(f"runtime:\n  public_app_url: http://127.0.0.1:{port}\n" + sso_yaml(provider),
                               OIDC_CLIENT_SECRET=CLIENT_SECRET)
    with LiveServer(container.app(), port) as server:
        yield server


def test_signing_in_through_the_providers_login_page_and_out_again(browser, sso_server, provider):
    claims = {"email": "ada@example.com", "email_verified": True, "name": "Ada Lovelace"}
    assert requests.put(f"{provider}/users/ada-sub", json=claims, timeout=10).status_code == 204
    context = browser.new_context(base_url=sso_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto("/login")
    assert page.locator("input[name=password]").count() == 0  # only the break-glass page has one
    page.click("text=Sign in with single sign-on")
    page.wait_for_url(f"{provider}/oauth2/authorize*")
    page.fill("input[name=sub]", "ada-sub")
    page.click("button:has-text('Authorize')")
    page.wait_for_url(f"{sso_server.url}/o/*/today")
    assert "Ada Lovelace" in page.content()

    page.locator(".user-menu summary").click()
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url(f"{provider}/oauth2/end_session*")
    page.locator("button[type=submit]").first.click()
    page.wait_for_url(f"{sso_server.url}/login?signed_out=1")
    assert "You are signed out." in page.content()
    page.goto("/welcome")
    page.wait_for_url(f"{sso_server.url}/login*")
    context.close()
