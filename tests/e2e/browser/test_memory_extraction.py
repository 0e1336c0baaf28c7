"""Memory extraction in Chromium: Ada saves a doc, the worker's extraction run (the fake OpenAI server answering
as the model) proposes a memory diff, the Inbox shows it — from the doc, by a memory extraction — Approve applies
it right there, and the memory item is active, citing the doc and saying who proposed and who approved it.
Nothing the Content-Security-Policy refuses, no console error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.browser.conftest import LiveServer, serving
from tests.e2e.browser.test_workspace_flows import first_doc, shot


@pytest.fixture
def live_server(make_container, ai_environ) -> Iterator[LiveServer]:
    """As the shared fixture, with the AI provider configured and saves queuing extraction runs."""
    with serving(make_container, **ai_environ | {"AUTO_EXTRACTION": "true"}) as server:
        yield server


def test_a_saved_doc_becomes_an_inbox_diff_and_approving_it_makes_the_memory_active(new_page, live_server,
                                                                                     fake_openai):
    ada = new_page()
    org_path, doc_id = first_doc(ada)

    # The save queued a run; asking again hands back that same run (it reads the doc when it runs).
    ada.get_by_role("button", name="Extract memory").click()
    expect(ada.locator("#extract-status")).to_contain_text("Memory extraction queued")

    fake_openai.queue_response(function_calls=[("propose_memory_diff", {
        "summary": "The release plan sets the release day.", "operations": [
            {"op": "create", "title": "Releases ship on Fridays", "body": "After the review.",
             "memory_type": "decision", "rationale": "the plan says: we ship every Friday"}]})])
    assert live_server.container.agent_run_worker().drain() == 1
    [request] = fake_openai.requests_to("/v1/responses")
    assert "We ship every Friday after the review." in str(request.body)

    ada.goto(f"{org_path}/today")
    nav = ada.locator("#nav-inbox")
    expect(nav.locator(".count")).to_have_text("1")
    nav.click()
    row = ada.locator("tr", has_text=f"from {doc_id}")
    expect(row).to_contain_text("memory extraction")
    expect(row).to_contain_text("Releases ship on Fridays")
    shot(ada, "inbox-extraction")
    row.get_by_role("button", name="Approve").click()
    expect(ada.get_by_text("Nothing waits for you.")).to_be_visible()

    ada.get_by_role("link", name="Memory", exact=True).click()
    ada.locator("main table").get_by_role("link", name="Releases ship on Fridays").click()
    expect(ada.locator(".page-head .meta")).to_contain_text("active")
    expect(ada.locator("#review-provenance")).to_contain_text("proposed by Ada, approved by Ada")
    expect(ada.locator("dl.fields").get_by_role("link", name=doc_id)).to_be_visible()  # the source cited
    assert ada.problems == []
