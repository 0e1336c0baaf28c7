"""Chat in Chromium: Ada starts a conversation, asks, sees "Answering…", and the answer appears by itself (HTMX
polling, no script of ours, nothing the Content-Security-Policy refuses) with a citation chip to the record."""

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


def test_ada_asks_and_the_answer_appears_with_a_citation_chip(new_page, live_server, fake_openai):
    ada = new_page()
    org_path, display_id = first_doc(ada)

    ada.get_by_role("link", name="Chat", exact=True).click()
    expect(ada.get_by_text("No conversations yet.")).to_be_visible()
    ada.get_by_label("Title (optional)").fill("Releases")
    ada.get_by_role("button", name="New conversation").click()
    expect(ada.locator(".page-head h1")).to_have_text("Releases")

    ada.get_by_label("Your question").fill("When do we ship?")
    ada.get_by_role("button", name="Ask", exact=True).click()
    expect(ada.get_by_role("status")).to_have_text("Answering…")

    fake_openai.queue_response(function_calls=[("get_record", {"display_id": display_id})])
    fake_openai.queue_response(text=f'We ship on **Fridays** [{display_id} "ship every Friday"].')
    assert live_server.container.agent_run_worker().drain() == 1
    chip = ada.locator("a.citation")
    expect(chip).to_contain_text(f"{display_id} — Release plan")  # arrived by polling, without a reload
    assert chip.get_attribute("href") == f"{org_path}/r/{display_id}"
    expect(ada.locator(".answer strong")).to_have_text("Fridays")
    expect(ada.get_by_text("Answering…")).to_have_count(0)
    shot(ada, "chat")
    chip.click()
    expect(ada.locator(".page-head h1")).to_contain_text("Release plan")
    assert ada.problems == []


def test_the_answer_streams_into_the_page_then_the_checked_answer_replaces_it(new_page, live_server, fake_openai):
    """The model's stream is held mid-answer: its first words are on the page (as text), the Ask form waits;
    released, the server-rendered answer with its citation chip replaces the streamed text, and Ada applies the
    ticket the assistant proposed (nothing is created before she does)."""
    import threading

    ada = new_page()
    org_path, display_id = first_doc(ada)
    ada.get_by_role("link", name="Chat", exact=True).click()
    ada.get_by_role("button", name="New conversation").click()

    fake_openai.queue_response(function_calls=[("get_record", {"display_id": display_id}),
                                               ("propose_ticket", {"title": "Announce the Friday release"})])
    hold = fake_openai.queue_stream_hold(after_deltas=3)
    fake_openai.queue_response(text=f'We ship <b>on</b> Fridays after the review [{display_id} "ship every Friday"].')
    ada.get_by_label("Your question").fill("When do we ship?")
    ada.get_by_role("button", name="Ask", exact=True).click()
    expect(ada.get_by_role("status")).to_have_text("Answering…")
    worker = threading.Thread(target=live_server.container.agent_run_worker().drain)
    worker.start()
    try:
        assert hold.arrived.wait(30)
        streamed = ada.locator("#chat-stream .streamed-text")
        expect(streamed).to_contain_text("We ship")  # streamed while the model is still writing
        expect(ada.locator("#chat-stream .stream-activity")).to_contain_text(f"get_record: {display_id}")
        expect(ada.get_by_role("button", name="Ask", exact=True)).to_be_disabled()
        shot(ada, "chat-streaming")
    finally:
        hold.release.set()
        worker.join(60)
    chip = ada.locator("a.citation")
    expect(chip).to_contain_text(f"{display_id} — Release plan")
    expect(ada.locator("#chat-stream")).to_be_hidden()
    expect(ada.locator(".answer b")).to_have_count(0)  # the model's markup is never HTML
    expect(ada.get_by_role("button", name="Ask", exact=True)).to_be_enabled()

    proposal = ada.locator(".pending-action")
    expect(proposal).to_contain_text("New ticket Announce the Friday release")
    ada.goto(f"{org_path}/tickets")
    expect(ada.get_by_text("Announce the Friday release")).to_have_count(0)  # proposed, not created
    ada.go_back()
    proposal.get_by_role("button", name="Apply").click()
    applied = ada.locator(".pending-action a")
    expect(applied).to_have_text(re.compile(r"[A-Z]+-\d+"))
    applied.click()
    expect(ada.locator(".page-head h1")).to_contain_text("Announce the Friday release")
    assert ada.problems == []
