"""The browser's safety rules and accessibility basics, checked in Chromium: messages instead of errors,
hostile Markdown that stays inert under the Content-Security-Policy, keyboard-only use, narrow screens."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.browser.test_workspace_flows import PASSWORD, set_up_server, shot

HOSTILE = """# Notes
<script>window.pwned = 1</script>
<img src=x onerror="window.pwned = 2">
[click me](javascript:window.pwned=3) [data](data:text/html,<script>window.pwned=4</script>)
[fine](https://example.com/docs) <a href="javascript:window.pwned=5">raw</a>
"""


def test_sign_in_messages_wrong_password_and_throttling(new_page):
    ada = new_page()
    set_up_server(ada)
    ada.locator(".user-menu summary").click()
    ada.get_by_role("button", name="Sign out", exact=True).click()
    expect(ada.get_by_role("status")).to_contain_text("You are signed out")
    shot(ada, "sign-in")

    ada.get_by_label("Email").fill("ada@example.com")
    ada.get_by_label("Password").fill("not the password")
    ada.get_by_role("button", name="Sign in").click()
    expect(ada.locator("#login-form-error")).to_contain_text("email or password is wrong")
    expect(ada.get_by_label("Email")).to_have_value("ada@example.com")

    for _ in range(5):  # five failures for one account from this address, then 429
        ada.get_by_role("button", name="Sign in").click()
        ada.wait_for_timeout(100)
    expect(ada.locator("#login-form-error")).to_contain_text(re.compile(r"try again in \d+ seconds"))
    assert ada.problems == []


def test_hostile_markdown_stays_inert_and_invisible_records_are_404(new_page):
    ada = new_page()
    set_up_server(ada)
    org_path = re.search(r"/o/\d+", ada.url).group(0)
    ada.goto(f"{org_path}/docs")
    ada.get_by_label("Title").fill("<b>Hostile</b> notes")
    ada.get_by_label("Text (Markdown)").fill(HOSTILE)
    ada.get_by_label("Where").select_option("user")  # private
    ada.get_by_role("button", name="Create").click()
    expect(ada.locator(".page-head h1")).to_contain_text("<b>Hostile</b> notes")
    prose = ada.locator(".prose").first
    expect(prose).to_contain_text("<script>window.pwned = 1</script>")  # shown as text
    assert ada.evaluate("window.pwned") is None
    hrefs = prose.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs == ["https://example.com/docs"]
    assert prose.locator("img, script").count() == 0
    # The preview renders the same way.
    ada.get_by_role("link", name="Edit").click()
    expect(ada.locator("#preview")).to_contain_text("<img src=x")
    assert ada.evaluate("window.pwned") is None
    doc_url = ada.url.split("?")[0]

    # The doc is private: another member gets a 404 page, not a trace of it.
    link_page = ada
    link_page.goto(f"{org_path}/settings")
    link_page.get_by_role("button", name="Create invite link").click()
    link = link_page.get_by_label("Invite link").input_value()
    bob = new_page()
    bob.goto(link)
    bob.get_by_label("Your name").fill("Bob")
    bob.get_by_label("Email").fill("bob@example.com")
    bob.get_by_label("Password").fill(PASSWORD)
    bob.get_by_role("button", name="Create account and join").click()
    expect(bob).to_have_url(re.compile(r"/today$"))
    response = bob.goto(doc_url)
    assert response.status == 404
    expect(bob.get_by_role("alert")).to_contain_text("DOC-1 not found")
    assert "Hostile" not in bob.content()
    # Server settings exist only for server admins.
    assert bob.goto("/server").status == 404
    assert ada.problems == [] and bob.problems == []


def test_keyboard_only_setup_and_sign_in(new_page):
    page = new_page()
    page.goto("/setup")
    shot(page, "setup")
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    for value in ("Acme", "Ada", "ada@example.com", PASSWORD):
        page.keyboard.press("Tab")
        page.keyboard.type(value)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/today$"))
    # The focused control is visibly outlined.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")
    assert page.problems == []


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
    .map(e => e.outerHTML)"""


def test_every_form_control_on_the_main_pages_has_a_label(new_page):
    ada = new_page()
    set_up_server(ada)
    org_path = re.search(r"/o/\d+", ada.url).group(0)
    ada.goto(f"{org_path}/docs")
    ada.get_by_label("Title").fill("Labelled")
    ada.get_by_role("button", name="Create").click()
    expect(ada.locator(".page-head h1")).to_contain_text("Labelled")
    for path in ("/memory", "/memory-diffs", "/docs", "/r/DOC-1", "/r/DOC-1?edit=1", "/tickets", "/decisions",
                 "/risks", "/snapshots", "/search?q=labelled", "/settings", "/settings/audit"):
        ada.goto(org_path + path)
        assert ada.evaluate(UNLABELLED) == [], path
    for path in ("/server", "/login"):
        ada.goto(path)
        assert ada.evaluate(UNLABELLED) == [], path
