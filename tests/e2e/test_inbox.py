"""The inbox and the Today page over HTTP through the real composition root and PostgreSQL (the assistant is
the fake OpenAI server): what waits for each person is listed with its counts by the API and the inbox page,
counted in every page's navigation, and handled from the inbox — approving a diff changes memory, applying a
chat action creates the ticket, dismissing a failed run removes it. ``/`` and the organisation's home go to
Today, which offers first steps in an empty organisation."""

from __future__ import annotations

import re

import pytest

from tests.e2e.org_world import World
from tests.e2e.test_chat_pages import ask, start
from tests.e2e.test_pages_security import token_of

NAV_COUNT = re.compile(r'id="nav-inbox"[^>]*>Inbox(?: <span class="count"[^>]*>(\d+)</span>)?</a>')


@pytest.fixture
def world(make_container, ai_environ):
    return World(make_container(**ai_environ))


def nav_count(html: str) -> int:
    found = NAV_COUNT.search(html)
    assert found, "the navigation has an Inbox entry"
    return int(found.group(1) or 0)


def propose(world: World, client, title: str, scope: dict) -> dict:
    response = client.post(f"{world.base}/memory-diffs", json={
        "scope": scope, "rationale": "seen in the planning meeting",
        "operations": [{"op": "create", "title": title, "fields": {"memory_type": "fact"}}]})
    assert response.status_code == 201, response.text
    return response.json()


def test_the_api_lists_only_what_each_person_may_review_with_counts(world):
    everyone = propose(world, world.cy, "We ship on Fridays", {"kind": "organisation"})
    secret = propose(world, world.ada, "The vault moved", world.scope("SEC"))
    ada = world.ada.get(f"{world.base}/inbox").json()
    assert ada["counts"] == {"memory_diffs": 2, "snapshots": 0, "chat_actions": 0, "failed_runs": 0, "total": 2}
    assert {i["diff_id"] for i in ada["items"]} == {everyone["id"], secret["id"]}
    [item] = [i for i in ada["items"] if i["diff_id"] == secret["id"]]
    assert item["kind"] == "memory_diff" and item["link"] == f"/o/{world.org}/memory-diffs/{secret['id']}"
    assert item["act"] == f"POST {world.base}/memory-diffs/{secret['id']}/approve"

    bob = world.bob.get(f"{world.base}/inbox").json()  # SEC is not his: not listed, not counted
    assert bob["counts"]["total"] == 1 and [i["diff_id"] for i in bob["items"]] == [everyone["id"]]
    assert world.ada.get(f"{world.base}/inbox", params={"project": "SEC"}).json()["counts"]["total"] == 1
    assert world.bob.get(f"{world.base}/inbox", params={"project": "SEC"}).status_code == 404
    assert world.bob.get("/api/organisations/999/inbox").status_code == 404

    grant = world.ada.post(f"{world.base}/projects/{world.projects['SEC']}/grants",
                           json={"user_id": world.bob_id, "role": "member"}).json()
    assert world.bob.get(f"{world.base}/inbox").json()["counts"]["memory_diffs"] == 2
    assert world.ada.delete(f"{world.base}/projects/{world.projects['SEC']}/grants/{grant['id']}").status_code == 204
    assert world.bob.get(f"{world.base}/inbox").json()["counts"]["memory_diffs"] == 1  # revoked: gone at once


def test_approving_from_the_inbox_page_changes_memory_and_the_navigation_count(world):
    diff = propose(world, world.cy, "Releases happen on Fridays", {"kind": "organisation"})
    inbox = f"/o/{world.org}/inbox"
    html = world.ada.get(inbox).text
    assert nav_count(html) == 1 and "Releases happen" not in world.ada.get(f"/o/{world.org}/memory").text
    assert f'action="{inbox}/diffs/{diff["id"]}/approve"' in html

    approved = world.ada.post(f"{inbox}/diffs/{diff['id']}/approve", data={"csrf_token": token_of(world.ada, inbox)},
                              follow_redirects=False)
    assert approved.status_code == 303 and approved.headers["location"] == inbox
    assert world.ada.get(f"{world.base}/memory-diffs/{diff['id']}").json()["status"] == "approved"
    assert "Releases happen on Fridays" in world.ada.get(f"/o/{world.org}/memory").text
    after = world.ada.get(inbox).text
    assert nav_count(after) == 0 and "Nothing waits for you" in after

    again = world.ada.post(f"{inbox}/diffs/{diff['id']}/approve", data={"csrf_token": token_of(world.ada, inbox)},
                           follow_redirects=False)
    assert again.status_code == 409 and "already approved" in again.text  # the review's own message


def test_applying_a_chat_action_from_the_inbox_creates_the_ticket(world, fake_openai):
    conversation_id = start(world, world.bob, "Keys", project="OPS")
    fake_openai.queue_response(function_calls=[("propose_ticket", {"title": "Rotate the API keys", "priority": 2})])
    fake_openai.queue_response(text="I proposed a ticket to rotate the keys.")
    ask(world, world.bob, conversation_id, "What should we do about the leaked key?")
    assert world.container.agent_run_worker().drain() == 1

    [item] = world.bob.get(f"{world.base}/inbox").json()["items"]
    assert (item["kind"], item["title"], item["conversation_id"]) == ("chat_action", "New ticket: Rotate the API keys",
                                                                       conversation_id)
    assert world.ada.get(f"{world.base}/inbox").json()["counts"]["chat_actions"] == 0  # Bob's chat, not the owner's
    inbox = f"/o/{world.org}/inbox"
    html = world.bob.get(inbox).text
    assert nav_count(html) == 1 and nav_count(world.bob.get(f"/o/{world.org}/docs?project=OPS").text) == 1
    assert nav_count(world.bob.get(f"/o/{world.org}/docs?project=APP").text) == 0  # another project's scope
    action = f"{inbox}/actions/{conversation_id}/{item['action_id']}/apply"
    assert f'action="{action}"' in html
    applied = world.bob.post(action, data={"csrf_token": token_of(world.bob, inbox)}, follow_redirects=False)
    assert applied.status_code == 303, applied.text
    tickets = world.bob.get(f"{world.base}/records", params={"types": "ticket"}).json()["items"]
    assert [t["title"] for t in tickets] == ["Rotate the API keys"]
    assert world.bob.get(f"{world.base}/inbox").json()["counts"]["total"] == 0


def test_a_failed_run_waits_with_its_error_until_its_owner_dismisses_it(world, fake_openai):
    conversation_id = start(world, world.bob, "Failing")
    ask(world, world.bob, conversation_id, "Will this work?")
    fake_openai.queue_failure(400, body={"error": {"message": "bad request", "type": "invalid_request_error"}})
    world.container.agent_run_worker().drain()
    [item] = world.bob.get(f"{world.base}/inbox").json()["items"]
    assert item["kind"] == "failed_run" and item["error_code"] and item["link"] == f"/o/{world.org}/chat/{conversation_id}"
    url = f"{world.base}/inbox/runs/{item['run_id']}/dismiss"
    assert world.ada.post(url).status_code == 404  # not hers, even as the organisation's owner
    assert world.bob.post(url).status_code == 204
    assert world.bob.post(url).status_code == 409
    assert world.bob.get(f"{world.base}/inbox").json()["items"] == []
    assert world.bob.get(f"{world.base}/agent-runs/{item['run_id']}").json()["status"] == "failed"  # kept


def test_today_is_the_signed_in_home_with_first_steps_in_an_empty_organisation(world):
    home = world.ada.get("/", follow_redirects=False)
    assert home.headers["location"] == f"/o/{world.org}/today"
    assert world.ada.get(f"/o/{world.org}", follow_redirects=False).headers["location"] == f"/o/{world.org}/today"
    empty = world.ada.get(f"/o/{world.org}/today").text
    assert "Get started" in empty and "Ask the assistant" in empty
    # The owner's first-run checklist: others joined and projects exist (ticked); no doc yet.
    assert "First steps for" in empty and 'id="step-invite" class="done"' in empty
    assert 'id="step-doc" class="todo"' in empty
    assert "First steps for" not in world.bob.get(f"/o/{world.org}/today").text  # members cannot invite

    plan = world.create(world.ada, type="doc", title="Release plan", scope={"kind": "organisation"})
    ticket = world.create(world.ada, type="ticket", title="Cut the release", scope=world.scope("OPS"),
                          fields={"assignee_id": world.bob_id})
    world.create(world.ada, type="doc", title="Vault notes", scope=world.scope("SEC"))
    propose(world, world.cy, "We ship on Fridays", {"kind": "organisation"})
    today = world.bob.get(f"/o/{world.org}/today").text
    assert "Get started" not in today and plan["display_id"] in today and "Vault notes" not in today
    assert "1 item waits in your inbox" in today and f'href="/o/{world.org}/inbox"' in today
    assert ticket["display_id"] in today.split('id="my-tickets"')[1].split('id="active-snapshots"')[0]
