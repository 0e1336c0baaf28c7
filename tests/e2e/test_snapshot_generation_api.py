"""Snapshot generation over HTTP with the real OpenAI SDK adapter against the fake OpenAI server: Bob asks for a
weekly review, the worker (as `tow serve` runs it) writes it as Bob, and the snapshot is left in review with its
sources pinned, in the narrowest scope they allow. A doc of a restricted project Bob cannot read never reaches the
request, the sources or the text; the request carries store:false and its ledger row names exactly the records
in its body. Editing a source shows "sources changed since" on the API and the page; while generating, the page
polls the run and asks for a reload once it ended. Without AI configured nothing is started."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from tests.e2e.org_world import World
from tests.e2e.test_pages_security import token_of

SECRET = "the SEC launch code is 7-2-9-4"
RECORDS_BLOCK = re.compile(r"<records>\n(.*)\n</records>", re.S)


@pytest.fixture
def world(make_container, ai_environ):
    return World(make_container(**ai_environ))


def sent_records(body: dict) -> list[str]:
    """The display IDs of the records a Responses request's input carries (its one quoted-data block)."""
    text = "".join(item["content"] if isinstance(item["content"], str) else
                   "".join(part.get("text", "") for part in item["content"]) for item in body["input"])
    return [r["display_id"] for r in json.loads(RECORDS_BLOCK.search(text).group(1))]


def snapshot_ledger(world: World) -> list[sa.Row]:
    with world.container.engine().connect() as conn:
        return conn.execute(sa.text("SELECT acting_user_id, record_display_ids FROM egress_ledger "
                                    "WHERE purpose = 'snapshot' ORDER BY id")).all()


def test_bob_generates_a_weekly_review_from_what_he_reads_with_sources_pinned(world, fake_openai):
    ada, bob = world.ada, world.bob
    secret = world.create(ada, type="doc", title="Launch", body=SECRET, scope=world.scope("SEC"))["display_id"]
    plan = world.create(ada, type="doc", title="Release plan", body="We ship every Friday after the review.",
                        scope=world.scope("OPS"))["display_id"]
    fact = world.create(ada, type="memory", title="Fridays are release days", scope={"kind": "organisation"},
                        fields={"memory_type": "fact"})["display_id"]
    fake_openai.queue_response(text=f'## Releases\n- We ship on Fridays [{plan} "ship every Friday"] [{fact}].\n'
                                    f'- The launch [{secret} "{SECRET}"].')

    started = bob.post(f"{world.base}/snapshots/generate", json={"snapshot_type": "weekly_review",
                                                                 "title": "Week 9"})
    assert started.status_code == 202, started.text
    snapshot, run = started.json()["snapshot"], started.json()["run"]
    assert run["kind"] == "snapshot_generation" and run["status"] == "queued"
    assert snapshot["status"] == "generating" and snapshot["scope"] == {"kind": "user", "id": world.bob_id}
    assert snapshot["generated_by"] == f"agent_run:{run['id']}"
    sid = snapshot["display_id"]
    assert ada.get(f"{world.base}/records/{sid}").status_code == 404  # private to Bob while generating

    waiting = bob.get(f"/o/{world.org}/r/{sid}")
    assert 'hx-trigger="every 2s"' in waiting.text and "Generating" in waiting.text
    fragment = bob.get(f"/o/{world.org}/r/{sid}/generation", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "HX-Refresh" not in fragment.headers

    assert world.container.agent_run_worker().drain() == 1
    assert bob.get(f"{world.base}/agent-runs/{run['id']}").json()["status"] == "completed"
    done = bob.get(f"/o/{world.org}/r/{sid}/generation", headers={"HX-Request": "true"})
    assert done.headers.get("HX-Refresh") == "true" and 'hx-trigger="every 2s"' not in done.text

    record = world.record(bob, sid)
    assert record["status"] == "pending_review" and record["title"] == "Week 9"
    assert record["scope"] == world.scope("OPS")  # the narrowest of OPS and the organisation
    assert plan in record["body"] and secret not in record["body"] and SECRET not in record["body"]
    sources = bob.get(f"{world.base}/snapshots/{sid}/sources").json()
    assert [(s["display_id"], s["pinned_version"], s["changed"]) for s in sources["sources"]] == [
        (plan, 1, False), (fact, 1, False)]
    assert sources["sources_changed_since"] == [] and sources["unreadable_sources"] == 0
    dropped = sources["run"]["output"]["dropped_citations"]
    assert [(d["display_id"], d["reason"]) for d in dropped] == [(secret, "not_sent")]

    [request] = fake_openai.requests_to("/v1/responses")
    assert request.body["store"] is False
    assert SECRET not in json.dumps(request.body) and secret not in sent_records(request.body)
    assert {plan, fact} <= set(sent_records(request.body))
    [row] = snapshot_ledger(world)
    assert row.acting_user_id == world.bob_id and sorted(row.record_display_ids) == sorted(sent_records(request.body))

    edited = ada.patch(f"{world.base}/records/{plan}", json={"version": 1, "body": "We ship every Thursday now."})
    assert edited.status_code == 200, edited.text
    changed = bob.get(f"{world.base}/snapshots/{sid}/sources").json()
    assert changed["sources_changed_since"] == [plan]
    page = bob.get(f"/o/{world.org}/r/{sid}")
    assert "Sources changed since" in page.text and f">{plan}</a>" in page.text

    assert ada.get(f"{world.base}/snapshots/{sid}/sources").json()["run"]["content_visible"] is False
    activated = bob.patch(f"{world.base}/records/{sid}", json={"version": record["version"], "status": "active"})
    assert activated.status_code == 200 and activated.json()["status"] == "active"


def test_a_restricted_project_doc_never_contributes_and_a_private_source_makes_it_private(world, fake_openai):
    ada, cy = world.ada, world.cy
    secret = world.create(ada, type="doc", title="Launch", body=SECRET, scope=world.scope("APP"))["display_id"]
    notes = world.create(cy, type="doc", title="My notes", body="Hiring two engineers in March.",
                         scope={"kind": "user", "id": world.cy_id})["display_id"]
    fake_openai.queue_response(text=f"- Hiring [{notes}]\n- Launch [{secret}]")
    started = cy.post(f"{world.base}/snapshots/generate", json={"snapshot_type": "strategy_state"}).json()
    assert world.container.agent_run_worker().drain() == 1
    sid = started["snapshot"]["display_id"]
    record = world.record(cy, sid)
    assert record["status"] == "pending_review" and record["scope"] == {"kind": "user", "id": world.cy_id}
    assert secret not in record["body"] and record["title"].startswith("Strategy state ")
    [request] = fake_openai.requests_to("/v1/responses")
    assert secret not in sent_records(request.body) and SECRET not in json.dumps(request.body)
    sources = cy.get(f"{world.base}/snapshots/{sid}/sources").json()
    assert [s["display_id"] for s in sources["sources"]] == [notes]
    assert cy.post(f"{world.base}/snapshots/generate",
                   json={"snapshot_type": "cto_state", "project_key": "APP"}).status_code == 404
    bad = cy.post(f"{world.base}/snapshots/generate", json={"snapshot_type": "gossip"})
    assert bad.status_code == 400 and "snapshot_type" in bad.text


def test_the_snapshots_page_form_starts_a_generation_for_the_picked_project(world, fake_openai):
    page = f"/o/{world.org}/snapshots?project=OPS"
    listing = world.bob.get(page)
    assert "Generate a draft" in listing.text and 'name="snapshot_type"' in listing.text
    fake_openai.queue_response(text="Nothing notable this week.")
    posted = world.bob.post(f"/o/{world.org}/generate-snapshot", follow_redirects=False, data={
        "csrf_token": token_of(world.bob, page), "snapshot_type": "daily_summary", "project": "OPS",
        "scope": "project"})
    assert posted.status_code == 303, posted.text
    assert re.fullmatch(rf"/o/{world.org}/r/SNP-\d+\?project=OPS", posted.headers["location"])
    [run] = [r for r in world.bob.get(f"{world.base}/agent-runs").json()["items"] if r["kind"] == "snapshot_generation"]
    assert run["project_id"] == world.projects["OPS"]
    assert world.container.agent_run_worker().drain() == 1
    sid = posted.headers["location"].split("/r/")[1].split("?")[0]
    assert world.record(world.bob, sid)["scope"] == world.scope("OPS")


def test_a_failed_generation_is_failed_and_says_why(world, fake_openai):
    fake_openai.queue_failure(400, body={"error": {"message": "bad request", "type": "invalid_request_error"}})
    started = world.bob.post(f"{world.base}/snapshots/generate", json={"snapshot_type": "daily_summary"}).json()
    assert world.container.agent_run_worker().drain() == 1
    record = world.record(world.bob, started["snapshot"]["display_id"])
    assert record["status"] == "failed" and record["body"].startswith("Generation failed:")
    assert world.bob.get(f"{world.base}/agent-runs/{started['run']['id']}").json()["status"] == "failed"


def test_without_ai_nothing_is_started_and_the_page_says_so(make_container):
    world = World(make_container())
    refused = world.bob.post(f"{world.base}/snapshots/generate", json={"snapshot_type": "weekly_review"})
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "ai_not_configured"
    assert world.bob.get(f"{world.base}/records?types=snapshot").json()["items"] == []
    assert "AI is not configured" in world.bob.get(f"/o/{world.org}/snapshots").text
