"""The chat pages over HTTP with the real OpenAI SDK adapter against the fake OpenAI server: Bob lists his
conversations, starts one in the picked project, asks, sees "Answering…" with the page polling its turns, and
after the worker answered reads the answer with its citation chips, the dropped-citation notice and the tool
activity. Another person's conversation is "not found" everywhere, even to the organisation's owner; a hostile
answer is shown as text with nothing loaded from elsewhere; without AI configured nothing new can be started
but what exists can still be read."""

from __future__ import annotations

import re

import pytest
from litestar.testing import TestClient

from tests.e2e.org_world import World
from tests.e2e.test_pages_security import token_of

CONVERSATION_URL = re.compile(r"/o/\d+/chat/(\d+)")


@pytest.fixture
def world(make_container, ai_environ):
    return World(make_container(**ai_environ))


def start(world: World, client: TestClient, title: str, project: str | None = None) -> int:
    page = f"/o/{world.org}/chat" + (f"?project={project}" if project else "")
    data = {"csrf_token": token_of(client, page), "title": title, **({"project": project} if project else {})}
    started = client.post(f"/o/{world.org}/chat", data=data, follow_redirects=False)
    assert started.status_code == 303, started.text
    return int(CONVERSATION_URL.search(started.headers["location"]).group(1))


def ask(world: World, client: TestClient, conversation_id: int, text: str):
    page = f"/o/{world.org}/chat/{conversation_id}"
    return client.post(f"{page}/questions", data={"csrf_token": token_of(client, page), "text": text},
                       follow_redirects=False)


def chat_runs(world: World, client: TestClient) -> list[dict]:
    return [r for r in client.get(f"{world.base}/agent-runs").json()["items"] if r["kind"] == "chat"]


def test_bob_starts_a_conversation_asks_and_reads_the_answer_with_its_citations(world, fake_openai):
    plan = world.create(world.ada, type="doc", title="Release plan", body="We ship every Friday after the review.",
                        scope=world.scope("APP"))["display_id"]
    listing = world.bob.get(f"/o/{world.org}/chat?project=APP")
    assert listing.status_code == 200 and "No conversations yet." in listing.text
    assert 'action="/o/1/chat"' in listing.text.replace(f"/o/{world.org}/", "/o/1/") and "project APP" in listing.text
    assert f'href="/o/{world.org}/chat?project=APP" aria-current="page">Chat</a>' in listing.text  # in the nav

    conversation_id = start(world, world.bob, "Releases", project="APP")
    assert "Releases" in world.bob.get(f"/o/{world.org}/chat").text and "Project APP" in world.bob.get(
        f"/o/{world.org}/chat").text
    assert "No questions yet." in world.bob.get(f"/o/{world.org}/chat/{conversation_id}").text

    asked = ask(world, world.bob, conversation_id, "When do we ship?")
    assert asked.status_code == 303 and asked.headers["location"].startswith(f"/o/{world.org}/chat/{conversation_id}")
    [run] = chat_runs(world, world.bob)
    assert run["status"] == "queued"
    waiting = world.bob.get(f"/o/{world.org}/chat/{conversation_id}").text
    assert "When do we ship?" in waiting and "Answering…" in waiting
    poll = f"/o/{world.org}/chat/{conversation_id}/turns"
    assert f'hx-get="{poll}" hx-trigger="every 2s"' in waiting
    assert 'hx-trigger="every 2s"' in world.bob.get(poll).text  # the fragment keeps polling until the answer

    fake_openai.queue_response(function_calls=[("get_record", {"display_id": plan})])
    fake_openai.queue_response(text=f'We ship **on Fridays** [{plan} "ship every Friday"] and [DOC-999].')
    assert world.container.agent_run_worker().drain() == 1
    fragment = world.bob.get(poll)
    assert fragment.status_code == 200
    html = fragment.text
    assert "hx-trigger" not in html and "Answering…" not in html  # the answer is there: polling stops
    assert "<strong>on Fridays</strong>" in html
    assert f'<a class="chip citation" href="/o/{world.org}/r/{plan}"' in html and "Release plan" in html
    assert "1 citation was dropped" in html and "DOC-999 — not returned by tool" in html
    assert "<code>get_record</code>: " + plan in html
    assert html in world.bob.get(f"/o/{world.org}/chat/{conversation_id}").text  # the page shows the same turns


def test_a_cancelled_run_shows_why_there_is_no_answer_and_stops_polling(world):
    conversation_id = start(world, world.bob, "Cancelled")
    ask(world, world.bob, conversation_id, "Anything?")
    [run] = chat_runs(world, world.bob)
    assert world.bob.post(f"{world.base}/agent-runs/{run['id']}/cancel").status_code == 200
    html = world.bob.get(f"/o/{world.org}/chat/{conversation_id}").text
    assert "No answer: the run cancelled" in html and "Answering…" not in html and "every 2s" not in html


def test_another_persons_conversation_is_not_found_even_for_the_organisation_owner(world):
    conversation_id = start(world, world.bob, "Private thoughts")
    page = f"/o/{world.org}/chat/{conversation_id}"
    token = token_of(world.ada, f"/o/{world.org}/chat")
    for response in (world.ada.get(page), world.ada.get(f"{page}/turns"),
                     world.ada.post(f"{page}/questions", data={"csrf_token": token, "text": "What did Bob say?"}),
                     world.ada.post(f"{page}/delete", data={"csrf_token": token})):
        assert response.status_code == 404 and "conversation not found" in response.text
        assert "Private thoughts" not in response.text
    assert "Private thoughts" not in world.ada.get(f"/o/{world.org}/chat").text
    assert "Private thoughts" in world.bob.get(page).text  # still there: Ada's delete did nothing


def test_bob_deletes_his_conversation(world):
    conversation_id = start(world, world.bob, "Short-lived")
    page = f"/o/{world.org}/chat/{conversation_id}"
    deleted = world.bob.post(f"{page}/delete", data={"csrf_token": token_of(world.bob, page)}, follow_redirects=False)
    assert deleted.status_code == 303 and deleted.headers["location"] == f"/o/{world.org}/chat"
    assert world.bob.get(page).status_code == 404
    assert "Short-lived" not in world.bob.get(f"/o/{world.org}/chat").text


def test_a_hostile_answer_is_shown_as_text_and_loads_nothing_from_elsewhere(world, fake_openai):
    conversation_id = start(world, world.bob, "Hostile")
    ask(world, world.bob, conversation_id, "Say something nasty")
    fake_openai.queue_response(text='<script>alert("x")</script> ![x](https://evil.example/?q=1) '
                                    '<img src="https://evil.example/px"> [DOC-1](https://evil.example/steal)')
    assert world.container.agent_run_worker().drain() == 1
    html = world.bob.get(f"/o/{world.org}/chat/{conversation_id}").text
    answer = html[html.index('class="turn-text answer"'):]
    assert "<script>alert" not in html and "&lt;script&gt;alert" in answer
    assert re.findall(r"<img[^>]*>", html) == []  # no image at all in the page (no avatar set either)
    assert "image: x" in answer and "(evil.example)" in answer  # the reader sees where the links go


def test_without_ai_configured_existing_conversations_are_listed_but_nothing_new_starts(world, make_container):
    conversation_id = start(world, world.bob, "From before")
    ask(world, world.bob, conversation_id, "Earlier question")
    offline = TestClient(make_container().app(), base_url="http://127.0.0.1:8000", raise_server_exceptions=False)
    offline.cookies = world.bob.cookies  # the same browser, on a server restarted without OPENAI_API_KEY

    listing = offline.get(f"/o/{world.org}/chat").text
    assert "AI is not configured" in listing and "From before" in listing
    assert 'id="start-form"' not in listing and "New conversation</button>" not in listing
    page = offline.get(f"/o/{world.org}/chat/{conversation_id}").text
    assert "AI is not configured" in page and "Earlier question" in page and 'id="ask-form"' not in page
    token = token_of(offline, f"/o/{world.org}/chat")
    refused = offline.post(f"/o/{world.org}/chat", data={"csrf_token": token, "title": "New"}, follow_redirects=False)
    assert refused.status_code == 503 and "not configured" in refused.text.lower()
    assert offline.post(f"/o/{world.org}/chat/{conversation_id}/delete", data={"csrf_token": token},
                        follow_redirects=False).status_code == 303


def test_a_failed_run_shows_its_error_code(world, fake_openai):
    conversation_id = start(world, world.bob, "Failing")
    ask(world, world.bob, conversation_id, "Will this work?")
    fake_openai.queue_failure(400, body={"error": {"message": "bad request", "type": "invalid_request_error"}})
    world.container.agent_run_worker().drain()
    [run] = chat_runs(world, world.bob)
    assert run["status"] == "failed", run
    html = world.bob.get(f"/o/{world.org}/chat/{conversation_id}").text
    assert f"No answer: the run failed ({run['error_code']})" in html and "every 2s" not in html


def test_bob_applies_a_ticket_the_assistant_proposed_and_nothing_was_written_before(world, fake_openai):
    conversation_id = start(world, world.bob, "Keys", project="OPS")
    fake_openai.queue_response(function_calls=[("propose_ticket", {"title": "Rotate the API keys", "priority": 2})])
    fake_openai.queue_response(text="I proposed a ticket to rotate the keys.")
    ask(world, world.bob, conversation_id, "What should we do about the leaked key?")
    assert world.container.agent_run_worker().drain() == 1
    page = f"/o/{world.org}/chat/{conversation_id}"
    html = world.bob.get(page).text
    assert "nothing is changed until you apply it" in html and "Rotate the API keys" in html
    [action_url] = re.findall(rf'action="({page}/actions/[^"]+/apply)"', html)
    tickets = world.bob.get(f"{world.base}/records", params={"type": "ticket"}).json()["items"]
    assert not [t for t in tickets if t["title"] == "Rotate the API keys"]  # proposed, not written

    applied = world.bob.post(action_url, data={"csrf_token": token_of(world.bob, page)}, follow_redirects=False)
    assert applied.status_code == 303, applied.text
    [ticket] = [t for t in world.bob.get(f"{world.base}/records", params={"type": "ticket"}).json()["items"]
                if t["title"] == "Rotate the API keys"]
    after = world.bob.get(page).text
    assert f'applied: <a href="/o/{world.org}/r/{ticket["display_id"]}">' in after and action_url not in after
    again = world.bob.post(action_url, data={"csrf_token": token_of(world.bob, page)}, follow_redirects=False)
    assert again.status_code == 409  # once only
    assert world.ada.post(action_url, data={"csrf_token": token_of(world.ada, f"/o/{world.org}/chat")},
                          follow_redirects=False).status_code == 404  # the organisation's owner is no exception
