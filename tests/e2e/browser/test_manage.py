"""Self-service, management and the ticket board in Chromium (issue 18 items 4 and 5): a password change signs
out the other browser and keeps this one; an owner removes a member after confirming, and the member's next
page is gone; the board at 1280 px shows every column; a card dragged to another column moves the ticket (the
same form the Move button posts) — with no Content-Security-Policy refusal and no console error."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.browser.test_workspace_flows import PASSWORD, invite_link, join_as_bob, set_up_server, shot

NEW_PASSWORD = "a much longer new passphrase"


def sign_in(page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/o/\d+/today$"))


def test_a_password_change_signs_out_the_other_browser_and_keeps_this_one(new_page):
    ada = new_page()
    set_up_server(ada)
    org_path = re.search(r"/o/\d+", ada.url).group(0)
    phone = new_page(390, 800)
    sign_in(phone, "ada@example.com", PASSWORD)

    ada.locator(".user-menu summary").click()
    ada.get_by_role("link", name="Your profile").click()
    ada.get_by_label("Current password", exact=True).fill("not my password")
    ada.get_by_label("New password").fill(NEW_PASSWORD)
    ada.get_by_role("button", name="Change password").click()
    expect(ada.locator("#password-form-error")).to_have_text("your current password is wrong")
    ada.get_by_label("Current password", exact=True).fill(PASSWORD)
    ada.get_by_label("New password").fill(NEW_PASSWORD)
    ada.get_by_role("button", name="Change password").click()
    expect(ada.get_by_role("status")).to_contain_text("Your other sessions were signed out")
    shot(ada, "profile-password")

    ada.get_by_label("Display name").fill("Ada Lovelace")
    ada.get_by_role("button", name="Save name and email").click()
    expect(ada.locator(".user-menu summary")).to_have_text("Ada Lovelace")  # still signed in here

    phone.goto(f"{org_path}/docs")
    expect(phone).to_have_url(re.compile(r"/login"))  # the other browser is out at once
    sign_in(phone, "ada@example.com", NEW_PASSWORD)
    assert ada.problems == [] and phone.problems == []


def test_an_owner_removes_a_member_after_confirming_and_their_next_page_is_gone(new_page):
    ada = new_page()
    set_up_server(ada)
    org_path = re.search(r"/o/\d+", ada.url).group(0)
    link = invite_link(ada)
    bob = new_page()
    join_as_bob(bob, link)

    ada.goto(f"{org_path}/settings")
    row = ada.locator("#members tr", has_text="Bob")
    expect(row.get_by_role("button", name="Remove Bob from Acme")).to_be_hidden()  # behind the confirmation
    row.get_by_text("Remove…").click()
    expect(row).to_contain_text("Bob loses access to Acme at once")
    row.get_by_role("button", name="Remove Bob from Acme").click()
    expect(ada.locator("#members")).not_to_contain_text("bob@example.com")
    expect(ada.locator("#members tr", has_text="Ada").get_by_text("Remove…")).to_have_count(0)  # not yourself

    response = bob.goto(f"{org_path}/docs")
    assert response.status == 404
    ada.goto(f"{org_path}/settings/audit")
    expect(ada.locator("table.list tbody tr").first).to_contain_text("removed a member")
    expect(ada.locator("table.list tbody tr").first).to_contain_text("Bob")
    assert ada.problems == []


def test_the_board_at_1280_px_shows_every_column_and_a_dragged_card_moves_the_ticket(new_page):
    ada = new_page(1280, 860)
    set_up_server(ada)
    org_path = re.search(r"/o/\d+", ada.url).group(0)
    ada.goto(f"{org_path}/tickets")
    for title in ("Renew the TLS certificate", "Rotate the backup keys"):
        ada.get_by_label("Title").fill(title)
        ada.get_by_label("Assignee").select_option(label="Ada")
        ada.get_by_label("Priority (1 highest – 4)").fill("2")
        ada.get_by_role("button", name="Create").click()
        expect(ada).to_have_url(re.compile(r"/r/TKT-\d+$"))
        ada.goto(f"{org_path}/tickets")
    expect(ada.locator("table.list thead")).to_contain_text("Assignee")
    expect(ada.locator("table.list tbody tr").first).to_contain_text("P2")

    ada.goto(f"{org_path}/tickets?view=board")
    columns = ada.locator(".board-col")
    expect(columns).to_have_count(6)
    headers = [h.strip().rsplit(" ", 1)[0] for h in columns.locator("h3").all_inner_texts()]
    assert headers == ["Backlog", "Todo", "In progress", "Blocked", "In review", "Done"]
    for i in range(6):  # every column and its header inside the window, none cut off
        box = columns.nth(i).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 1280, (i, box)
        expect(columns.nth(i).locator("h3")).to_be_in_viewport()
    assert ada.evaluate("document.documentElement.scrollWidth") <= 1280

    card = ada.locator(".card", has_text="Renew the TLS certificate")
    card.drag_to(ada.locator('.board-col[data-status="in_progress"]'))
    in_progress = ada.locator('.board-col[data-status="in_progress"]')
    expect(in_progress.locator(".card", has_text="Renew the TLS certificate")).to_be_visible()
    expect(ada.locator("#board-status")).to_contain_text("moved to In progress")
    expect(in_progress.locator("h3 .count")).to_have_text("1")
    ada.reload()  # the server has it
    expect(ada.locator('.board-col[data-status="in_progress"] .card')).to_contain_text("Renew the TLS certificate")

    # Dragged twice: the card's version moved on with it, so the second drop is not refused as stale.
    ada.locator(".card", has_text="Renew the TLS certificate").drag_to(ada.locator('.board-col[data-status="done"]'))
    expect(ada.locator("#board-status")).to_contain_text("moved to Done")
    ada.locator(".card", has_text="Renew the TLS certificate").drag_to(
        ada.locator('.board-col[data-status="in_review"]'))
    expect(ada.locator("#board-status")).to_contain_text("moved to In review")
    expect(ada.locator("#board-error")).to_be_hidden()

    # Without the script the card's own form does the same.
    other = ada.locator(".card", has_text="Rotate the backup keys")
    other.get_by_label(re.compile(r"Move TKT-\d+ to")).select_option("blocked")
    other.get_by_role("button", name="Move").click()
    expect(ada.locator('.board-col[data-status="blocked"] .card')).to_contain_text("Rotate the backup keys")
    assert ada.problems == []
