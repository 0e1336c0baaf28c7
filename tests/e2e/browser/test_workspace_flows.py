"""What a person does in the browser, end to end in Chromium against a real server and database."""

from __future__ import annotations

import os
import re

from playwright.sync_api import Page, expect

from tests.e2e.browser.conftest import SCREENSHOTS

PASSWORD = "correct horse battery"


def set_up_server(page: Page) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/setup$"))
    expect(page.get_by_text("This account becomes the server admin")).to_be_visible()
    page.get_by_label("Organisation name").fill("Acme")
    page.get_by_label("Your name").fill("Ada")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account and organisation").click()
    expect(page).to_have_url(re.compile(r"/o/\d+/today$"))


def first_doc(page: Page, title: str = "Release plan",
              body: str = "We ship every Friday after the review.") -> tuple[str, str]:
    """Set up a fresh server as Ada and write her first doc; the organisation's path and the doc's display ID."""
    set_up_server(page)
    org_path = re.search(r"/o/\d+", page.url).group(0)
    page.goto(f"{org_path}/docs")
    page.get_by_label("Title").fill(title)
    page.get_by_label("Text (Markdown)").fill(body)
    page.get_by_role("button", name="Create").click()
    expect(page.locator(".page-head h1")).to_contain_text(title)
    return org_path, re.search(r"/r/([A-Z]+-\d+)", page.url).group(1)


def shot(page: Page, name: str) -> None:
    """Save docs/screenshots/<name>.png when asked (`make screenshots`), so test runs leave the tree clean."""
    if not os.environ.get("TOW_SCREENSHOTS"):
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def invite_link(page: Page, role: str = "member") -> str:
    page.get_by_role("link", name="Organisation").click()
    page.get_by_label("Role", exact=True).select_option(role)
    page.get_by_role("button", name="Create invite link").click()
    link = page.get_by_label("Invite link")
    expect(link).to_be_visible()
    return link.input_value()


def join_as_bob(bob: Page, link: str) -> None:
    """Bob opens an invite link, creates his account and lands on Today."""
    bob.goto(link)
    bob.get_by_label("Your name").fill("Bob")
    bob.get_by_label("Email").fill("bob@example.com")
    bob.get_by_label("Password").fill("another good password")
    bob.get_by_role("button", name="Create account and join").click()
    expect(bob).to_have_url(re.compile(r"/o/\d+/today$"))


def test_first_run_invite_restricted_project_and_grant(new_page):
    ada = new_page()
    set_up_server(ada)
    expect(ada.locator(".user-menu summary")).to_have_text("Ada")

    # A restricted project.
    ada.get_by_role("link", name="Organisation").click()
    ada.get_by_label("Key").fill("SEC")
    ada.get_by_label("Name", exact=True).fill("Security review")
    ada.get_by_label("Restricted").check()
    ada.get_by_role("button", name="Create project").click()
    expect(ada.locator("#projects")).to_contain_text("SEC — Security review")

    # Bob joins with an invite, in his own browser.
    link = invite_link(ada)
    assert "/invite/" in link
    shot(ada, "organisation-settings")
    bob = new_page()
    join_as_bob(bob, link)
    org_path = re.search(r"/o/\d+", bob.url).group(0)

    # Bob cannot see the restricted project: not in his picker, and its URL is a 404 page.
    expect(bob.locator("#switcher option")).to_have_count(1)  # "Acme: all projects" only
    response = bob.goto(f"{org_path}/docs?project=SEC")
    assert response.status == 404
    expect(bob.get_by_role("alert")).to_contain_text("project SEC not found")

    # The same invite link cannot be used twice, and says so as soon as it is opened (no form to fill in).
    other = new_page()
    other.goto(link)
    expect(other.get_by_role("alert")).to_contain_text("this invite has already been used")
    expect(other.get_by_label("Password")).to_have_count(0)

    # Ada grants Bob viewer access: his next page shows the project.
    ada.goto(f"{org_path}/settings")
    ada.get_by_label("Grant", exact=True).select_option(label="Bob")
    ada.get_by_label("role", exact=True).select_option("viewer")
    ada.get_by_role("button", name="Grant access to SEC").click()
    expect(ada.locator("#projects")).to_contain_text("Bob: viewer")
    bob.goto(f"{org_path}/docs")
    bob.get_by_label("Organisation and project").select_option(label="SEC — Security review (restricted)")
    expect(bob).to_have_url(re.compile(r"/docs\?project=SEC$"))  # applied on change, on the same page
    expect(bob.locator(".banner[role=note]")).to_contain_text("SEC is restricted")
    # The choice is sticky across navigation.
    bob.get_by_role("link", name="Tickets").click()
    expect(bob).to_have_url(re.compile(r"/tickets\?project=SEC$"))

    # The access review shows Bob's effective role.
    ada.goto(f"{org_path}/settings/access")
    expect(ada.locator("main")).to_contain_text("viewer")
    shot(ada, "access-review")
    assert ada.problems == [] and bob.problems == []


def test_doc_memory_diff_and_search(new_page):
    ada = new_page()
    set_up_server(ada)
    org_path = re.search(r"/o/\d+", ada.url).group(0)

    # An open project shows its warning.
    ada.goto(f"{org_path}/settings")
    ada.get_by_label("Key").fill("APP")
    ada.get_by_label("Name", exact=True).fill("The app")
    ada.get_by_label("Open").check()
    ada.get_by_role("button", name="Create project").click()
    expect(ada.locator("#projects")).to_contain_text("APP — The app")
    ada.goto(f"{org_path}/docs?project=APP")
    expect(ada.locator(".banner.warning")).to_contain_text("every member of Acme can read and edit")

    # A doc, a sub-page, with breadcrumbs and Markdown.
    ada.goto(f"{org_path}/docs")
    ada.get_by_label("Title").fill("Release process")
    ada.get_by_label("Text (Markdown)").fill("We release **every Tuesday** after the demo.")
    ada.get_by_role("button", name="Create").click()
    expect(ada.get_by_role("heading", level=1)).to_contain_text("Release process")
    expect(ada.locator(".prose strong")).to_have_text("every Tuesday")
    ada.goto(f"{org_path}/docs")
    ada.get_by_label("Title").fill("Hotfixes")
    ada.get_by_label("Parent page").select_option(label="Release process")
    ada.get_by_role("button", name="Create").click()
    expect(ada.get_by_role("navigation", name="Breadcrumbs")).to_have_text(
        re.compile(r"Acme\s*/?\s*Docs\s*/?\s*Release process\s*/?\s*Hotfixes"))

    # Edit with a live preview, then a revision exists.
    ada.get_by_role("link", name="Edit").click()
    ada.get_by_label("Text (Markdown)").fill("Only *urgent* fixes.")
    expect(ada.locator("#preview em")).to_have_text("urgent")
    shot(ada, "doc-editor")
    ada.get_by_role("button", name="Save").click()
    expect(ada.locator(".prose em").first).to_have_text("urgent")
    expect(ada.locator("#revisions")).to_contain_text("Version 1")
    shot(ada, "doc")

    # A memory diff proposed from the doc, reviewed with its before/after, approved.
    ada.goto(f"{org_path}/memory-diffs")
    ada.get_by_label("Memory", exact=True).fill("Releases happen every Tuesday")
    ada.get_by_label("Memory type").select_option("commitment")
    ada.get_by_label("Source record (optional)").fill("DOC-1")
    ada.get_by_label("Why").fill("stated in the release doc")
    ada.get_by_role("button", name="Propose for review").click()
    expect(ada.get_by_role("heading", level=1)).to_contain_text("Memory diff #1")
    expect(ada.locator(".after")).to_contain_text("Releases happen every Tuesday")
    expect(ada.locator(".before")).to_contain_text("New item")
    shot(ada, "memory-diff-review")
    ada.get_by_role("button", name="Approve").click()
    expect(ada.locator(".page-head .badge")).to_have_text("approved")
    ada.get_by_role("link", name="MEM-1").first.click()
    expect(ada.get_by_role("heading", level=1)).to_contain_text("Releases happen every Tuesday")
    ada.goto(f"{org_path}/memory")
    expect(ada.locator("table.list")).to_contain_text("MEM-1")
    shot(ada, "memory")

    # Search finds both, with the matched words highlighted.
    ada.get_by_role("link", name="Search").click()
    ada.get_by_label("Search all projects").fill("tuesday")
    ada.keyboard.press("Enter")
    expect(ada.locator(".hits li")).to_have_count(2)
    expect(ada.locator(".hits mark").first).to_have_text(re.compile("tuesday", re.I))
    shot(ada, "search")

    # Tickets: a board by status.
    ada.goto(f"{org_path}/tickets?project=APP")
    ada.get_by_label("Title").fill("Automate the Tuesday release")
    ada.get_by_label("Text (Markdown)").fill("Per MEM-1.")
    ada.get_by_role("button", name="Create").click()
    expect(ada.get_by_role("heading", level=1)).to_contain_text("APP-1")
    ada.get_by_label("Add a comment (Markdown)").fill("Starting **now**")
    ada.get_by_role("button", name="Comment").click()
    expect(ada.locator("#comments .prose strong")).to_have_text("now")
    ada.get_by_role("button", name="Mark in progress").click()
    expect(ada.locator("#activity")).to_contain_text("status backlog → in progress")
    shot(ada, "ticket")
    ada.goto(f"{org_path}/tickets?project=APP&view=board")
    expect(ada.get_by_role("region", name="in progress")).to_contain_text("APP-1")
    shot(ada, "tickets-board")

    # The same pages on a 390 px phone: no sideways scrolling.
    phone = new_page(width=390, height=844)
    phone.context.add_cookies(ada.context.cookies())
    for path, name in ((f"{org_path}/r/DOC-2", "doc-390"), (f"{org_path}/memory-diffs/1", "memory-diff-390")):
        phone.goto(path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 391, path
        shot(phone, name)
    assert ada.problems == [] and phone.problems == []
