"""Snapshot generation in Chromium (issue 14.2): Ada asks for a draft on the Snapshots page, watches it
generate (the page updates itself), finds it in her Inbox awaiting review with its pinned source, edits it,
activates it; when the cited doc changes, the snapshot says its sources changed since."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.browser.conftest import LiveServer, serving
from tests.e2e.browser.test_workspace_flows import first_doc, shot


@pytest.fixture
def live_server(make_container, ai_environ) -> Iterator[LiveServer]:
    """As the shared fixture, with the AI provider configured (the fake OpenAI server)."""
    with serving(make_container, **ai_environ) as server:
        yield server


def test_a_generated_draft_is_reviewed_from_the_inbox_edited_and_activated(new_page, live_server, fake_openai):
    ada = new_page()
    org_path, doc_id = first_doc(ada)

    ada.goto(f"{org_path}/snapshots")
    generate = ada.locator("#generate-form")
    generate.get_by_label("Snapshot type").select_option("weekly_review")
    generate.get_by_label("Title (optional)").fill("Week 9")
    generate.get_by_role("button", name="Generate", exact=True).click()
    expect(ada.locator(".page-head h1")).to_contain_text("Week 9")
    expect(ada.locator("#generation-heading")).to_have_text("Generating…")

    fake_openai.queue_response(text=f'## Releases\n- We ship on Fridays [{doc_id} "ship every Friday"].')
    assert live_server.container.agent_run_worker().drain() == 1
    expect(ada.locator("#generation-heading")).to_have_text("Sources", timeout=15_000)  # by itself
    ada.reload()
    expect(ada.locator("#snapshot-sources")).to_contain_text(f"{doc_id} Release plan")
    expect(ada.locator(".page-head .meta")).to_contain_text("pending review · Organisation")
    shot(ada, "snapshot-generated")

    ada.get_by_role("link", name=re.compile(r"^Inbox")).click()
    expect(ada.locator("#inbox-counts")).to_contain_text("1 snapshot ·")
    item = ada.locator("tr", has_text="Week 9")
    item.get_by_role("link", name="Week 9").click()
    expect(ada.locator(".page-head h1")).to_contain_text("Week 9")
    ada.get_by_role("link", name="Edit").first.click()
    ada.get_by_label("Text (Markdown)").fill(f'## Releases\n- We ship on Fridays [{doc_id} "ship every Friday"].'
                                             "\n- Reviewed by Ada.")
    ada.get_by_role("button", name="Save").click()
    expect(ada.locator(".answer, .record-body, main")).to_contain_text("Reviewed by Ada.")
    ada.get_by_role("button", name="Activate").click()
    expect(ada.locator(".page-head .meta")).to_contain_text("active · Organisation")
    ada.get_by_role("link", name=re.compile(r"^Inbox")).click()
    expect(ada.locator("#inbox-counts")).to_contain_text("0 snapshots ·")

    ada.goto(f"{org_path}/r/{doc_id}")
    ada.get_by_role("link", name="Edit").first.click()
    ada.get_by_label("Text (Markdown)").fill("We ship every Thursday now.")
    ada.get_by_role("button", name="Save").click()
    expect(ada.locator("main")).to_contain_text("We ship every Thursday now.")
    ada.goto(f"{org_path}/snapshots")
    ada.get_by_role("link", name=re.compile("Week 9")).first.click()
    expect(ada.locator("#sources-changed")).to_contain_text(doc_id)
    assert ada.problems == []
