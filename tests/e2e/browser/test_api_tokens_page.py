"""API tokens on the profile page, in Chromium (issue 15): create one, copy its secret from the page that shows
it once, see it listed by its prefix with "never" used, revoke it; owners find members' tokens in settings."""

from __future__ import annotations

import os
import re

from playwright.sync_api import expect

from tests.e2e.browser.test_workspace_flows import set_up_server, shot


def test_create_see_once_list_and_revoke_an_api_token(new_page, live_server):
    ada = new_page()
    set_up_server(ada)
    ada.locator(".user-menu summary").click()
    ada.get_by_role("link", name="Your profile").click()
    tokens = ada.locator("#tokens")
    expect(tokens.get_by_text("You have no API tokens.")).to_be_visible()
    tokens.get_by_label("Name", exact=True).fill("Claude Desktop")
    tokens.get_by_label("Expires in (days)").fill("30")
    tokens.get_by_label("Access").select_option("read")
    tokens.get_by_role("button", name="Create token").click()

    expect(ada.get_by_text("it is shown this once and never again")).to_be_visible()
    secret = ada.get_by_label("Token").input_value()
    assert re.fullmatch(r"tow_pat_[A-Za-z0-9_-]{43}", secret)
    shot(ada, "api-token-created")
    if os.environ.get("TOW_TOKEN_SHOTS"):
        ada.screenshot(path=os.environ["TOW_TOKEN_SHOTS"] + "/created.png", full_page=True)

    ada.get_by_role("link", name="Back to your profile").click()
    row = ada.locator("#token-list tbody tr", has_text="Claude Desktop")
    expect(row).to_contain_text(secret[:14])
    expect(row).to_contain_text("read only")
    expect(row).to_contain_text("never")
    assert secret not in ada.content()
    shot(ada, "api-tokens")
    if os.environ.get("TOW_TOKEN_SHOTS"):
        ada.screenshot(path=os.environ["TOW_TOKEN_SHOTS"] + "/profile.png", full_page=True)

    ada.get_by_role("link", name="Organisation").click()
    ada.get_by_role("link", name="Members' API tokens").click()
    expect(ada.locator("#member-token-list")).to_contain_text("Claude Desktop")

    ada.go_back()
    ada.go_back()
    ada.get_by_role("button", name="Revoke Claude Desktop").click()
    expect(ada.locator("#tokens").get_by_text("You have no API tokens.")).to_be_visible()
