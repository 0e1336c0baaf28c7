"""The shell around every signed-in page in Chromium (issue 18 items 2 and 6): the global search shortcut, the
one organisation/project switcher applying on change, the sidebar's doc tree opening on demand, the first-run
checklist ticking from real data, and upload progress for a large file."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from tests.e2e.browser.test_workspace_flows import first_doc, set_up_server, shot


def project(page: Page, org_path: str, key: str, name: str) -> None:
    page.goto(f"{org_path}/settings")
    page.get_by_label("Key").fill(key)
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Restricted").check()
    page.get_by_role("button", name="Create project").click()
    expect(page.locator("#projects")).to_contain_text(f"{key} — {name}")


def search_by_shortcut(ada: Page, org_path: str) -> None:
    """"/" and Ctrl-K focus the search box, except while typing in a field; it searches everything."""
    box = ada.get_by_label("Search everything")
    expect(box).to_have_attribute("aria-keyshortcuts", "/ Control+K Meta+K")

    ada.goto(f"{org_path}/docs")
    title = ada.get_by_label("Title")
    title.click()
    ada.keyboard.type("a/b")  # typing in a field keeps the slash
    expect(title).to_have_value("a/b")
    expect(box).not_to_be_focused()
    ada.locator("h1").click()
    ada.keyboard.press("/")
    expect(box).to_be_focused()
    expect(box).to_have_value("")  # the slash only moved the focus
    ada.locator("h1").click()
    ada.keyboard.press("Control+k")
    expect(box).to_be_focused()

    ada.keyboard.type("laptops")
    ada.keyboard.press("Enter")
    expect(ada).to_have_url(re.compile(r"/search\?q=laptops$"))
    expect(ada.locator(".hits li")).to_have_count(1)


def switch_on_change(ada: Page, org_path: str) -> None:
    """The switcher applies on change, on the same page, with the choice in the URL (project APP exists)."""
    ada.goto(f"{org_path}/tickets?view=board")
    expect(ada.get_by_role("button", name="Go")).to_be_hidden()  # the script applies the choice itself

    ada.get_by_label("Organisation and project").select_option(label="APP — The app (restricted)")
    expect(ada).to_have_url(re.compile(r"/tickets\?view=board&project=APP$"))
    expect(ada.locator(".banner")).to_contain_text("APP is restricted")
    expect(ada.get_by_label("Organisation and project")).to_have_value(re.compile(r"^\d+/APP$"))
    ada.get_by_label("Organisation and project").select_option(label="Acme: all projects")
    expect(ada).to_have_url(re.compile(r"/tickets\?view=board$"))
    expect(ada.locator(".banner")).to_have_count(0)


def test_the_sidebar_opens_a_docs_sub_pages_on_demand_and_slash_focuses_the_search_box(new_page):
    ada = new_page()
    org_path, handbook = first_doc(ada, "Handbook", "Start here.")
    for title, parent in (("Onboarding", "Handbook"), ("Laptops", "— Onboarding")):
        ada.goto(f"{org_path}/docs")
        ada.get_by_label("Title").fill(title)
        ada.get_by_label("Parent page").select_option(label=parent)
        ada.get_by_role("button", name="Create").click()
        expect(ada.locator(".page-head h1")).to_contain_text(title)

    ada.goto(f"{org_path}/today")
    tree = ada.get_by_role("navigation", name="Doc tree")
    expect(tree.get_by_role("link")).to_have_text(["Handbook"])  # the top only, rendered by the server
    opener = tree.get_by_role("button", name="Sub-pages of Handbook")
    expect(opener).to_have_attribute("aria-expanded", "false")
    with ada.expect_response(re.compile(rf"/doc-tree/{handbook}$")) as answer:
        opener.click()
    assert answer.value.status == 200
    expect(opener).to_have_attribute("aria-expanded", "true")
    expect(tree.get_by_role("link", name="Onboarding")).to_be_visible()
    tree.get_by_role("button", name="Sub-pages of Onboarding").click()
    expect(tree.get_by_role("link", name="Laptops")).to_be_visible()
    ada.emulate_media(color_scheme="dark")
    shot(ada, "shell-dark")
    ada.emulate_media(color_scheme="light")
    tree.get_by_role("link", name="Laptops").click()
    expect(ada.locator(".page-head h1")).to_contain_text("Laptops")

    opener = ada.get_by_role("navigation", name="Doc tree").get_by_role("button", name="Sub-pages of Handbook")
    opener.click()
    opener.click()  # closed again: its sub-pages are hidden
    expect(ada.get_by_role("navigation", name="Doc tree").get_by_role("link", name="Onboarding")).to_be_hidden()
    search_by_shortcut(ada, org_path)
    assert ada.problems == []


def switch_without_javascript(browser, live_server, ada: Page, org_path: str) -> None:
    """Without JavaScript the switcher has its Go button, and lands on the same URL."""
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        context.add_cookies(ada.context.cookies())
        plain = context.new_page()
        plain.goto(f"{org_path}/docs")
        plain.get_by_label("Organisation and project").select_option(label="APP — The app (restricted)")
        plain.get_by_role("button", name="Go").click()
        expect(plain).to_have_url(re.compile(r"/docs\?project=APP$"))
        expect(plain.locator(".banner")).to_contain_text("APP is restricted")
    finally:
        context.close()


def test_the_first_run_checklist_ticks_from_what_exists_and_the_switcher_applies_on_change(new_page, browser,
                                                                                             live_server):
    ada = new_page()
    set_up_server(ada)
    org_path = re.search(r"/o/\d+", ada.url).group(0)
    steps = ada.get_by_role("region", name="First steps for Acme")
    for step in ("invite", "project", "doc"):
        expect(ada.locator(f"#step-{step}")).to_have_class("todo")

    project(ada, org_path, "APP", "The app")
    switch_on_change(ada, org_path)
    switch_without_javascript(browser, live_server, ada, org_path)
    ada.goto(f"{org_path}/settings")
    ada.get_by_role("button", name="Create invite link").click()
    expect(ada.get_by_label("Invite link")).to_be_visible()
    ada.get_by_role("link", name="Today", exact=True).click()
    expect(ada.locator("#step-invite")).to_have_class("done")
    expect(ada.locator("#step-project")).to_have_class("done")
    expect(ada.locator("#step-doc")).to_have_class("todo")
    expect(steps).to_contain_text("Write the first doc")

    steps.get_by_role("button", name="Hide these steps").click()
    expect(ada).to_have_url(re.compile(r"/today$"))
    expect(ada.get_by_role("region", name="First steps for Acme")).to_have_count(0)
    ada.reload()
    expect(ada.get_by_role("region", name="First steps for Acme")).to_have_count(0)
    assert ada.problems == []


# Records what the upload form shows while it sends, across the navigation that follows (sessionStorage).
WATCH_PROGRESS = """document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("f-file-status"), bar = document.getElementById("f-file-progress");
  if (!status) return;
  new MutationObserver(() => {
    const seen = JSON.parse(sessionStorage.getItem("seen") || "[]");
    seen.push({text: status.textContent, value: bar.value, shown: !bar.hidden});
    sessionStorage.setItem("seen", JSON.stringify(seen));
  }).observe(status, {childList: true, characterData: true, subtree: true});
});"""


def test_a_large_upload_shows_its_progress_then_the_file(new_page, tmp_path):
    ada = new_page()
    ada.add_init_script(WATCH_PROGRESS)
    set_up_server(ada)
    org_path = re.search(r"/o/\d+", ada.url).group(0)
    ada.goto(f"{org_path}/decisions")
    ada.get_by_label("Title").fill("Keep the recordings")
    ada.get_by_role("button", name="Create").click()
    expect(ada.locator(".page-head h1")).to_contain_text("DEC-1")

    large = tmp_path / "all-hands.mp4"
    large.write_bytes(bytes(range(256)) * (48 * 1024))  # 12 MiB
    ada.get_by_label("Attach a file").set_input_files(str(large))
    ada.get_by_role("button", name="Upload").click()
    expect(ada.locator("#files a", has_text="all-hands.mp4")).to_be_visible()
    expect(ada.locator("#files")).to_contain_text("12.0 MiB")

    seen = json.loads(ada.evaluate("sessionStorage.getItem('seen')"))
    texts = [s["text"] for s in seen]
    assert texts[0] == "Uploading: 0%" and seen[0]["shown"], seen
    assert "Uploaded; saving…" in texts and any(s["value"] == 100 and s["shown"] for s in seen), seen
    percents = [int(t.split(": ")[1].rstrip("%")) for t in texts if t.startswith("Uploading: ")]
    assert percents == sorted(percents), seen  # it only goes forward

    # A refused upload (here: the form's token no longer valid) says why on the same page, and nothing is kept.
    ada.locator("#attach-form input[name=csrf_token]").evaluate("input => { input.value = 'stale' }")
    ada.get_by_label("Attach a file").set_input_files(str(large))
    ada.get_by_role("button", name="Upload").click()
    expect(ada.locator("#f-file-error")).to_contain_text("this form expired")
    expect(ada).to_have_url(re.compile(r"/r/DEC-1$"))
    expect(ada.get_by_role("button", name="Upload")).to_be_enabled()
    expect(ada.locator("#f-file-progress")).to_be_hidden()
    ada.reload()
    expect(ada.locator("#files li")).to_have_count(1)
    assert ada.problems == []
