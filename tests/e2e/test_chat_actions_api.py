"""Pending actions over HTTP with the real OpenAI SDK adapter against the fake OpenAI server: the assistant
proposes a ticket and a memory item, nothing is written by the run, and Bob applies each once from his
conversation — the ticket is created as him in the conversation's project, the memory item arrives as a
pending memory diff for review."""

from __future__ import annotations

import pytest

from tests.e2e.org_world import World


@pytest.fixture
def world(make_container, ai_environ):
    return World(make_container(**ai_environ))


def tickets(world: World) -> int:
    return world.bob.get(f"{world.base}/records/count", params={"types": "ticket"}).json()["count"]


def test_bob_applies_what_the_assistant_proposed_once_and_only_he_can(world, fake_openai):
    fake_openai.queue_response(function_calls=[
        ("propose_ticket", {"title": "Rotate the API keys", "body": "Before the release.", "priority": 2}),
        ("propose_memory_change", {"operation": "create", "title": "Keys rotate quarterly",
                                   "memory_type": "commitment", "importance": 4})])
    fake_openai.queue_response(text="I proposed a ticket and a memory item; apply them if you agree.")
    conversation = world.bob.post(f"{world.base}/conversations", json={"title": "Keys", "project_key": "OPS"}).json()
    url = f"{world.base}/conversations/{conversation['id']}"
    assert world.bob.post(f"{url}/questions", json={"text": "Plan the key rotation"}).status_code == 202
    assert world.container.agent_run_worker().drain() == 1

    answer = world.bob.get(url).json()["turns"][-1]
    ticket, memory = answer["pending_actions"]
    assert (ticket["kind"], ticket["title"], ticket["applied"]) == ("ticket", "Rotate the API keys", None)
    assert (memory["kind"], memory["operation"], memory["applied"]) == ("memory_change", "create", None)
    assert tickets(world) == 0  # the run wrote nothing
    assert world.bob.get(f"{world.base}/memory-diffs").json()["items"] == []

    assert world.ada.post(f"{url}/actions/{ticket['id']}/apply").status_code == 404  # not even the org owner
    applied = world.bob.post(f"{url}/actions/{ticket['id']}/apply")
    assert applied.status_code == 201, applied.text
    created = world.record(world.bob, applied.json()["record_display_id"])
    assert created["title"] == "Rotate the API keys" and created["fields"]["priority"] == 2
    assert created["scope"]["id"] == world.projects["OPS"]
    again = world.bob.post(f"{url}/actions/{ticket['id']}/apply")
    assert again.status_code == 409 and tickets(world) == 1

    proposed = world.bob.post(f"{url}/actions/{memory['id']}/apply")
    assert proposed.status_code == 201, proposed.text
    diff = world.bob.get(f"{world.base}/memory-diffs/{proposed.json()['memory_diff_id']}").json()
    assert diff["status"] == "pending" and diff["source"] == "chat" and diff["author_id"] == world.bob_id

    stored = world.bob.get(url).json()["turns"][-1]["pending_actions"]
    assert stored[0]["applied"]["record"] == created["display_id"]
    assert stored[1]["applied"]["memory_diff_id"] == diff["id"]
    assert world.bob.post(f"{url}/actions/999-9/apply").status_code == 404
