"""Live updates in Chromium (issue 19 item 3): Bob has Ada's doc open in his own browser; when Ada saves it his
page says "Changed by Ada" with a Reload link; when she comments on a ticket he has open her comment appears in
his list (once, and replaced in place when she edits it); and when she proposes a memory diff he reviews, the
Inbox count in his navigation changes — all without reloading; nothing the Content-Security-Policy refuses, no
console error."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.browser.test_workspace_flows import first_doc, invite_link, join_as_bob


def test_bob_sees_adas_save_comment_and_a_diff_to_review_without_reloading(new_page):
    ada = new_page()
    org_path, doc = first_doc(ada)
    ada.goto(f"{org_path}/tickets")
    ada.get_by_label("Title").fill("Ship the release")
    ada.get_by_role("button", name="Create").click()
    expect(ada.get_by_role("heading", level=1)).to_contain_text("Ship the release")
    ticket = re.search(r"/r/([A-Z]+-\d+)", ada.url).group(1)

    link = invite_link(ada)
    bob = new_page()
    join_as_bob(bob, link)

    # Bob reads the doc; Ada edits and saves it in her browser.
    with bob.expect_response(re.compile(r"/live\?record=")):
        bob.goto(f"{org_path}/r/{doc}")
    notice = bob.locator("#live-notice")
    expect(notice).to_be_hidden()
    ada.goto(f"{org_path}/r/{doc}")
    ada.get_by_role("link", name="Edit", exact=True).click()
    ada.locator("#f-body").fill("We ship every Thursday now.")
    ada.get_by_role("button", name="Save").click()
    expect(ada.locator(".prose")).to_contain_text("Thursday")
    expect(ada.locator("#live-notice")).to_be_hidden()  # her own save tells her nothing
    expect(notice).to_contain_text("Changed by Ada")
    expect(bob.locator(".prose")).not_to_contain_text("Thursday")  # not reloaded behind his back
    notice.get_by_role("link", name="Reload").click()
    expect(bob.locator(".prose")).to_contain_text("Thursday")

    # Bob has the ticket open; Ada comments on it: her comment appears in his list, once, without a reload.
    with bob.expect_response(re.compile(r"/live\?record=")):
        bob.goto(f"{org_path}/r/{ticket}")
    bob.evaluate("window.loadedOnce = true")  # gone if the page reloads
    listed = bob.locator("#comment-list .comment")
    expect(bob.locator("#comment-list")).to_contain_text("No comments yet.")
    ada.goto(f"{org_path}/r/{ticket}")
    ada.get_by_label("Add a comment (Markdown)").fill("Starting **now**")
    ada.get_by_role("button", name="Comment").click()
    expect(ada.locator("#comments")).to_contain_text("Starting now")
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("Starting now")
    expect(listed.locator("strong")).to_have_text("now")  # rendered as the page renders it
    expect(listed.locator(".meta")).to_contain_text("Ada")
    expect(listed.get_by_role("link", name=re.compile("Edit"))).to_have_count(0)  # her comment: no edit for Bob
    expect(bob.locator("#comment-list")).not_to_contain_text("No comments yet.")
    expect(bob.locator("#comments-status")).to_have_text("New comment from Ada")
    expect(bob.locator("#live-notice")).to_be_hidden()  # nothing to reload for
    # She edits it: the same comment comes again and is replaced where it is, never listed twice.
    ada.locator(".comment-actions").get_by_role("link", name=re.compile("Edit")).click()
    ada.locator("textarea[id^='f-comment-']").fill("Starting now, done by five")
    ada.get_by_role("button", name="Save comment").click()
    expect(ada.locator("#comments")).to_contain_text("done by five")
    expect(listed).to_contain_text("done by five")
    expect(listed).to_have_count(1)
    assert bob.evaluate("window.loadedOnce") is True

    # Ada proposes a memory for the organisation: Bob reviews it, and his count appears without a reload.
    expect(bob.locator("#nav-inbox .count")).to_have_count(0)
    ada.goto(f"{org_path}/memory-diffs")
    ada.get_by_label("Memory", exact=True).fill("We ship every Thursday")
    ada.get_by_label("Why").fill("Agreed in the planning meeting")
    ada.get_by_role("button", name="Propose for review").click()
    expect(ada).to_have_url(re.compile(r"/memory-diffs/\d+$"))
    expect(bob.locator("#nav-inbox .count")).to_have_text("1")
    expect(listed).to_have_count(1)
    assert bob.evaluate("window.loadedOnce") is True  # still the page as he loaded it, with her comment in it
    assert ada.problems == [] and bob.problems == []
