"""Notifications in Chromium: Ada assigns Bob a ticket in her browser; in his own browser Bob's navigation counts
one unread notification without reloading (a live update), the Notifications page lists "Ada assigned you …", and clicking it opens the ticket and
reads it (the count goes away); the ticket page offers Unwatch, as an assignee watches. Then Ada types "@Bo" in
the ticket's text, picks Bob from the editor's list, saves, and the page shows a mention chip; Bob is notified. No console error, nothing
the Content-Security-Policy refuses."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.browser.test_workspace_flows import invite_link, join_as_bob, set_up_server, shot


def ada_and_bob(new_page):
    """Ada sets up the server and invites Bob, who joins in his own browser: (ada, bob, the organisation's path)."""
    ada = new_page()
    set_up_server(ada)
    org_path = re.search(r"/o/\d+", ada.url).group(0)
    link = invite_link(ada)
    bob = new_page()
    join_as_bob(bob, link)
    return ada, bob, org_path


def test_bob_sees_the_ticket_ada_assigned_him_and_clicks_through_to_it(new_page):
    ada, bob, org_path = ada_and_bob(new_page)
    expect(bob.locator("#nav-notifications .count")).to_have_count(0)
    with bob.expect_response(re.compile(r"/live$")):  # Bob's page follows its live stream from now on
        bob.reload()

    ada.goto(f"{org_path}/tickets")
    ada.get_by_label("Title").fill("Fix the login page")
    ada.get_by_label("Assignee").select_option(label="Bob")
    ada.get_by_role("button", name="Create").click()
    expect(ada.locator(".page-head h1")).to_contain_text("Fix the login page")
    ticket = re.search(r"/r/([A-Z]+-\d+)", ada.url).group(1)

    nav = bob.locator("#nav-notifications")  # no reload: the nudge made live.js refetch the count
    expect(nav.locator(".count")).to_have_text("1")
    nav.click()
    expect(bob.locator(".page-head h1")).to_have_text("Notifications")
    item = bob.locator("#notification-list li").first
    expect(item).to_contain_text(f"Ada assigned you {ticket} Fix the login page")
    shot(bob, "notifications")
    item.get_by_role("button").click()
    expect(bob).to_have_url(re.compile(rf"/r/{ticket}$"))
    expect(bob.locator(".page-head h1")).to_contain_text("Fix the login page")
    expect(bob.locator("#watch-button")).to_have_text("Unwatch")
    expect(bob.locator("#nav-notifications .count")).to_have_count(0)

    # Ada mentions Bob in the ticket's text: the editor offers the members who read it, the page shows a chip.
    ada.goto(f"{org_path}/r/{ticket}?edit=1")
    body = ada.locator("#f-body")
    body.type("Ask @Bo")
    options = ada.get_by_role("listbox", name="People to mention").get_by_role("option")  # named for what it lists
    expect(options).to_have_count(1)
    expect(options.first).to_contain_text("Bob")
    body.press("Enter")
    expect(body).to_have_value(re.compile(r"^Ask @\[Bob\]\(user:\d+\)$"))
    ada.get_by_role("button", name="Save").click()
    expect(ada.locator(".prose .mention")).to_have_text("@Bob")
    bob.reload()
    expect(bob.locator("#nav-notifications .count")).to_have_text("1")
    assert ada.problems == [] and bob.problems == []


def test_with_the_live_stream_refused_the_count_is_polled_instead(new_page):
    """A proxy that refuses the event stream (here: every /live request answers 503): Bob's page polls the counts
    once a minute instead, so Ada's assignment still shows in his navigation without a reload."""
    ada, bob, org_path = ada_and_bob(new_page)
    bob.route(re.compile(r"/live(\?.*)?$"), lambda route: route.fulfill(status=503, body="no streams here"))
    bob.clock.install()  # the minute between polls passes on command
    with bob.expect_response(re.compile(r"/live$")):
        bob.reload()
    expect(bob.locator("#nav-notifications .count")).to_have_count(0)

    ada.goto(f"{org_path}/tickets")
    ada.get_by_label("Title").fill("Rotate the keys")
    ada.get_by_label("Assignee").select_option(label="Bob")
    ada.get_by_role("button", name="Create").click()
    expect(ada.locator(".page-head h1")).to_contain_text("Rotate the keys")

    bob.wait_for_timeout(500)
    expect(bob.locator("#nav-notifications .count")).to_have_count(0)  # no stream: nothing told him yet
    with bob.expect_response(re.compile(r"/api/notifications\?")):
        bob.clock.fast_forward(61_000)
    expect(bob.locator("#nav-notifications .count")).to_have_text("1")
    assert ada.problems == []
