"""Today and the Inbox in Chromium: a new owner lands on Today with first steps; once a memory is proposed, Today
and the navigation count it, the count leads to the Inbox, Approve applies the diff right there and the memory
item appears — nothing the Content-Security-Policy refuses, no console error."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.browser.test_workspace_flows import set_up_server, shot


def test_ada_follows_the_inbox_count_from_today_approves_and_sees_the_memory(new_page):
    ada = new_page()
    set_up_server(ada)  # the signed-in home is Today
    org_path = re.search(r"/o/\d+", ada.url).group(0)
    expect(ada.get_by_role("heading", name="Get started")).to_be_visible()
    expect(ada.get_by_role("link", name="Invite someone")).to_be_visible()

    ada.goto(f"{org_path}/memory-diffs")
    ada.get_by_label("Memory", exact=True).fill("We ship every Friday")
    ada.get_by_label("Why").fill("Agreed in the planning meeting")
    ada.get_by_role("button", name="Propose for review").click()
    expect(ada).to_have_url(re.compile(r"/memory-diffs/\d+$"))

    ada.get_by_role("link", name="Today", exact=True).click()
    expect(ada.locator("#today-inbox")).to_have_text("1 item waits in your inbox")
    shot(ada, "today")
    nav = ada.locator("#nav-inbox")
    expect(nav.locator(".count")).to_have_text("1")
    nav.click()
    expect(ada.locator(".page-head h1")).to_have_text("Inbox")
    row = ada.locator("tr", has_text="Agreed in the planning meeting")
    expect(row).to_contain_text("memory diff")
    shot(ada, "inbox")
    row.get_by_role("button", name="Approve").click()
    expect(ada.get_by_text("Nothing waits for you.")).to_be_visible()
    expect(ada.locator("#nav-inbox .count")).to_have_count(0)

    ada.get_by_role("link", name="Memory", exact=True).click()
    expect(ada.locator("main table").get_by_text("We ship every Friday")).to_be_visible()
    assert ada.problems == []
