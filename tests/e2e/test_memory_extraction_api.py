"""Memory extraction over HTTP with the real OpenAI SDK adapter against the fake OpenAI server: Bob saves a doc,
the worker runs the extraction as Bob, and a pending memory diff waits for review; the request the provider got
has exactly one ledger row naming exactly the records it carried. The second-reviewer rule refuses Bob approving
his own run's diff (403) once an owner turned it on. Without AI, saving works and nothing is queued."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.e2e.org_world import World


@pytest.fixture
def world(make_container, ai_environ):
    return World(make_container(**ai_environ | {"AUTO_EXTRACTION": "true"}))


def ledger(world: World, purpose: str) -> list[sa.Row]:
    with world.container.engine().connect() as conn:
        return conn.execute(sa.text("SELECT acting_user_id, record_display_ids FROM egress_ledger "
                                    "WHERE purpose = :p ORDER BY id"), {"p": purpose}).all()


def extraction_runs(world: World) -> list[sa.Row]:
    with world.container.engine().connect() as conn:
        return conn.execute(sa.text("SELECT id, owner_id, status, output FROM agent_runs "
                                    "WHERE kind = 'memory_extraction' ORDER BY id")).all()


def test_a_saved_doc_becomes_a_pending_diff_ledgered_with_exactly_what_was_sent(world, fake_openai):
    known = world.create(world.ada, type="memory", title="Releases ship on Fridays", scope=world.scope("OPS"),
                         fields={"memory_type": "fact"})["display_id"]
    hidden = world.create(world.ada, type="memory", title="The vault code is 7-2-9-4", scope=world.scope("SEC"),
                          fields={"memory_type": "fact"})["display_id"]
    doc = world.create(world.bob, type="doc", title="Ops plan", scope=world.scope("OPS"),
                       body="Staging is refreshed nightly. Releases now ship on Tuesdays.")["display_id"]
    fake_openai.queue_response(function_calls=[("propose_memory_diff", {"summary": "The ops plan.", "operations": [
        {"op": "create", "title": "Staging is refreshed nightly", "memory_type": "fact", "rationale": "stated"},
        {"op": "supersede", "display_id": known, "title": "Releases ship on Tuesdays", "memory_type": "decision",
         "rationale": "the plan moved releases"}]})])
    [queued] = extraction_runs(world)
    assert (queued.owner_id, queued.status) == (world.bob_id, "queued")

    assert world.container.agent_run_worker().drain() == 1
    run = world.bob.get(f"{world.base}/agent-runs/{queued.id}").json()
    assert run["status"] == "completed", run
    diff_id = run["output"]["diff_id"]
    [request] = fake_openai.requests_to("/v1/responses")
    sent = json.dumps(request.body)
    assert request.body["store"] is False and "Staging is refreshed nightly" in sent and known in sent
    assert hidden not in sent and "7-2-9-4" not in sent
    [row] = ledger(world, "extraction")
    assert row.acting_user_id == world.bob_id and sorted(row.record_display_ids) == sorted([doc, known])

    diff = world.ada.get(f"{world.base}/memory-diffs/{diff_id}").json()
    assert (diff["status"], diff["source"], diff["source_id"], diff["author_id"], diff["agent_run_id"]) == (
        "pending", "doc", doc, world.bob_id, queued.id)
    assert [o["op"] for o in diff["operations"]] == ["create", "create", "supersede"]
    assert world.record(world.ada, known)["status"] == "active"  # nothing changed before approval

    approved = world.ada.post(f"{world.base}/memory-diffs/{diff_id}/approve")
    assert approved.status_code == 200, approved.text
    old = world.record(world.ada, known)
    assert old["status"] == "superseded" and old["title"] == "Releases ship on Fridays"  # kept in history
    new = world.record(world.ada, old["fields"]["superseded_by"])
    assert (new["fields"]["proposed_by"], new["fields"]["approved_by"]) == (world.bob_id, world.ada_id)
    assert doc in new["fields"]["source_references"]
    page = world.ada.get(f"/o/{world.org}/r/{new['display_id']}")
    assert "proposed by Bob, approved by Ada" in page.text


def test_a_stale_extraction_diff_is_refused_at_approval(world, fake_openai):
    item = world.create(world.ada, type="memory", title="Deploys need two approvals", scope=world.scope("OPS"),
                        fields={"memory_type": "constraint"})
    world.create(world.bob, type="doc", title="Ops", scope=world.scope("OPS"), body="Deploys need two approvals.")
    fake_openai.queue_response(function_calls=[("propose_memory_diff", {"operations": [
        {"op": "update", "display_id": item["display_id"], "body": "Per the ops doc.", "rationale": "detail"}]})])
    world.container.agent_run_worker().drain()
    [run] = extraction_runs(world)
    edited = world.ada.patch(f"{world.base}/records/{item['display_id']}", json={"body": "Edited meanwhile."},
                             headers={"If-Match": f'"{item["version"]}"'})
    assert edited.status_code == 200, edited.text
    refused = world.ada.post(f"{world.base}/memory-diffs/{run.output['diff_id']}/approve")
    assert refused.status_code == 409 and "changed since the proposal" in refused.text


def test_the_second_reviewer_rule_refuses_approving_ones_own_runs_diff(world, fake_openai):
    turned_on = world.ada.patch(f"{world.base}", json={"require_second_reviewer": True})
    assert turned_on.status_code == 200 and turned_on.json()["require_second_reviewer"] is True
    assert world.bob.patch(f"{world.base}", json={"require_second_reviewer": False}).status_code == 403
    extracted = world.create(world.bob, type="doc", title="On-call", scope=world.scope("OPS"), body="Weekly.")
    fake_openai.queue_response(function_calls=[("propose_memory_diff", {"operations": [
        {"op": "create", "title": "On-call rotates weekly", "memory_type": "fact", "rationale": "stated"}]})])
    asked = world.bob.post(f"{world.base}/records/{extracted['display_id']}/extract")
    assert asked.status_code == 202 and asked.json()["kind"] == "memory_extraction"  # the save's queued run
    world.container.agent_run_worker().drain()
    [run] = extraction_runs(world)
    diff_id = run.output["diff_id"]
    [bobs] = [i for i in world.bob.get(f"{world.base}/inbox").json()["items"] if i["kind"] == "memory_diff"]
    assert (bobs["diff_id"], bobs["source"], bobs["source_id"], bobs["author_id"], bobs["agent_run_id"],
            bobs["awaiting_second_reviewer"]) == (diff_id, "doc", extracted["display_id"], world.bob_id, run.id, True)
    assert f"from {extracted['display_id']}" in bobs["title"]
    [adas] = [i for i in world.ada.get(f"{world.base}/inbox").json()["items"] if i["kind"] == "memory_diff"]
    assert adas["diff_id"] == diff_id and adas["awaiting_second_reviewer"] is False
    inbox_page = world.bob.get(f"/o/{world.org}/inbox").text
    assert "Awaiting a second reviewer" in inbox_page and f'id="approve-{diff_id}"' not in inbox_page
    diff_page = world.bob.get(f"/o/{world.org}/memory-diffs/{diff_id}").text
    assert 'id="second-reviewer"' in diff_page and f"memory extraction run {run.id}" in diff_page
    own = world.bob.post(f"{world.base}/memory-diffs/{diff_id}/approve")
    assert own.status_code == 403 and "second reviewer" in own.json()["error"]["message"]
    assert world.ada.post(f"{world.base}/memory-diffs/{diff_id}/approve").status_code == 200
    audit = world.ada.get(f"{world.base}/audit?action=organisation.setting_changed").json()["items"]
    assert len(audit) == 1 and audit[0]["actor_id"] == world.ada_id


def test_without_ai_a_save_queues_nothing_and_extracting_answers_503(make_container):
    world = World(make_container())
    doc = world.create(world.bob, type="doc", title="Plan", scope=world.scope("OPS"), body="Draft.")
    assert extraction_runs(world) == []
    refused = world.bob.post(f"{world.base}/records/{doc['display_id']}/extract")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "ai_not_configured"
    assert world.bob.post(f"{world.base}/records/{doc['id']}/extract").status_code == 503
    assert world.bob.post(f"{world.base}/records/NOPE-0/extract").status_code in (400, 422)


def test_the_pages_turn_extraction_off_for_a_conversation_and_the_second_reviewer_rule_on(world):
    from tests.e2e.test_pages_security import token_of

    started = world.bob.post(f"{world.base}/conversations", json={"title": "Releases"})
    assert started.status_code == 201 and started.json()["memory_extraction"] is True, started.text
    page = f"/o/{world.org}/chat/{started.json()['id']}"
    assert 'name="memory_extraction" value="on" checked' in world.bob.get(page).text
    off = world.bob.post(f"{page}/memory-extraction", data={"csrf_token": token_of(world.bob, page)},
                         follow_redirects=False)
    assert off.status_code in (302, 303)
    assert world.bob.get(f"{world.base}/conversations/{started.json()['id']}").json()["memory_extraction"] is False

    settings = f"/o/{world.org}/settings"
    assert 'id="memory-review-form"' not in world.bob.get(settings).text  # members see the rule, not the form
    turned_on = world.ada.post(f"{settings}/memory-review", data={"csrf_token": token_of(world.ada, settings),
                                                                  "require_second_reviewer": "on"},
                               follow_redirects=False)
    assert turned_on.status_code in (302, 303)
    assert world.ada.get(world.base).json()["require_second_reviewer"] is True
    assert "A second reviewer is required" in world.bob.get(settings).text


def test_a_chat_answer_is_extracted_as_its_asker_and_ledgered_with_the_records_it_drew_on(world, fake_openai):
    """The vault doc is in SEC, which Bob cannot read: the chat's tool refuses it, so neither the answer nor its
    extraction carries it; the plan (OPS) it drew on is named in the extraction's one ledger row, and — narrower
    than the organisation-wide conversation — sends the proposal to Bob's private scope."""
    vault = world.create(world.ada, type="doc", title="Vault", body="the vault code is 7-2-9-4",
                         scope=world.scope("SEC"))["display_id"]
    plan = world.create(world.ada, type="doc", title="Release plan", body="We ship every Friday.",
                        scope=world.scope("OPS"))["display_id"]
    nothing = ("propose_memory_diff", {"operations": []})
    fake_openai.queue_response(function_calls=[nothing])  # the vault's own extraction (Ada's, queued first)
    fake_openai.queue_response(function_calls=[nothing])  # the plan's
    fake_openai.queue_response(function_calls=[("get_record", {"display_id": vault}),
                                               ("get_record", {"display_id": plan})])
    fake_openai.queue_response(text=f'We ship on Fridays [{plan} "ship every Friday"].')
    fake_openai.queue_response(function_calls=[("propose_memory_diff", {"operations": [
        {"op": "create", "title": "Releases ship on Fridays", "memory_type": "fact", "rationale": "answered"}]})])
    conversation = world.bob.post(f"{world.base}/conversations", json={"title": "Releases"}).json()
    world.bob.post(f"{world.base}/conversations/{conversation['id']}/questions", json={"text": "When do we ship?"})

    assert world.container.agent_run_worker().drain() == 4  # two doc extractions, the chat, its extraction
    runs = extraction_runs(world)
    assert [r.owner_id for r in runs] == [world.ada_id, world.ada_id, world.bob_id]
    chat_extraction = runs[-1]
    assert chat_extraction.status == "completed" and chat_extraction.output["source"] == "chat"
    *_, request = fake_openai.requests_to("/v1/responses")
    sent = json.dumps(request.body)
    assert "When do we ship?" in sent and "ship on Fridays" in sent and "7-2-9-4" not in sent and vault not in sent
    *_, row = ledger(world, "extraction")
    assert (row.acting_user_id, list(row.record_display_ids)) == (world.bob_id, [plan])
    diff = world.bob.get(f"{world.base}/memory-diffs/{chat_extraction.output['diff_id']}").json()
    assert (diff["source"], diff["scope"], diff["author_id"]) == ("chat", {"kind": "user", "id": world.bob_id},
                                                                  world.bob_id)
    assert world.ada.get(f"{world.base}/memory-diffs/{diff['id']}").status_code == 404  # private to Bob
