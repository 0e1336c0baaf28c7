"""Agent runs over the API, with the worker tow serve runs: the owner follows their run to its answer,
owners/admins see every run's metadata and never a conversation, other members and outsiders get 404,
and cancelling ends a queued run at once and a running one at its next heartbeat. Runs are queued
through the port, as the chat and extraction workflows queue them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.e2e.org_world import World
from tow_adapters.postgres.agent_runs import PgAgentRuns
from tow_core.agent_runs import AgentRunResult, TokenUsage, new_run
from tow_http.composition import build_agent_run_worker

QUESTION = {"question": "what did the SEC pen test find?"}


@pytest.fixture
def world(make_container):
    return World(make_container())


def queue(world: World, owner_id: int, project: str | None = None, kind: str = "chat") -> int:
    with world.container.engine().begin() as conn:
        return PgAgentRuns(conn).create(new_run(
            kind, owner_id=owner_id, organisation_id=world.org,
            project_id=world.projects[project] if project else None, input=QUESTION), now=datetime.now(UTC)).id


def run_worker(world: World, handler) -> int:
    container = world.container
    return build_agent_run_worker(container.engine(), container.config(), {"chat": handler}).drain()


def runs_url(world: World, run_id: int | None = None, suffix: str = "") -> str:
    return f"{world.base}/agent-runs" + (f"/{run_id}" if run_id is not None else "") + suffix


def test_the_owner_follows_their_run_from_queued_to_its_answer(world):
    run_id = queue(world, world.bob_id, project="APP")
    shown = world.bob.get(runs_url(world, run_id))
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert (body["status"], body["kind"], body["owner_id"], body["project_id"], body["attempts"]) == (
        "queued", "chat", world.bob_id, world.projects["APP"], 0)
    assert body["content_visible"] and body["input"] == QUESTION and body["output"] is None

    def chat(run, heartbeat):
        heartbeat()
        return AgentRunResult({"answer": "two findings, see DOC-3"}, TokenUsage(1200, 85))

    assert run_worker(world, chat) == 1
    done = world.bob.get(runs_url(world, run_id)).json()
    assert (done["status"], done["output"], done["input_tokens"], done["output_tokens"], done["attempts"]) == (
        "completed", {"answer": "two findings, see DOC-3"}, 1200, 85, 1)
    assert done["started_at"] and done["finished_at"] and done["error_code"] is None


def test_the_organisation_owner_sees_every_runs_metadata_but_no_conversation(world):
    bobs, cys, adas = queue(world, world.bob_id), queue(world, world.cy_id), queue(world, world.ada_id)

    def chat(run, heartbeat):
        raise RuntimeError(f"the model repeated: {run.input['question']}")

    run_worker(world, chat)
    listed = world.ada.get(runs_url(world)).json()
    assert [r["id"] for r in listed["items"]] == [adas, cys, bobs] and listed["next_cursor"] is None
    others = [r for r in listed["items"] if r["owner_id"] != world.ada_id]
    for run in others:
        assert (run["content_visible"], run["input"], run["output"], run["error"]) == (False, None, None, None)
        assert (run["status"], run["error_code"]) == ("failed", "handler_failed")
    assert "pen test" not in world.ada.get(runs_url(world, bobs)).text
    own = next(r for r in listed["items"] if r["id"] == adas)
    assert own["content_visible"] and own["input"] == QUESTION and "pen test" in own["error"]


def test_members_list_only_their_own_runs_and_others_get_404(world):
    bobs, cys = queue(world, world.bob_id), queue(world, world.cy_id)
    assert [r["id"] for r in world.bob.get(runs_url(world)).json()["items"]] == [bobs]
    for path in (runs_url(world, cys), runs_url(world, 10**9)):
        response = world.bob.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert world.bob.post(runs_url(world, cys, "/cancel")).status_code == 404
    assert world.client().get(runs_url(world)).status_code == 401  # not signed in


def test_listing_pages_with_a_cursor_and_refuses_a_bad_one(world):
    run_ids = [queue(world, world.bob_id) for _ in range(3)]
    first = world.bob.get(runs_url(world), params={"limit": 2}).json()
    assert [r["id"] for r in first["items"]] == run_ids[:0:-1]
    rest = world.bob.get(runs_url(world), params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [r["id"] for r in rest["items"]] == [run_ids[0]] and rest["next_cursor"] is None
    bad = world.bob.get(runs_url(world), params={"cursor": "x1"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"
    assert world.bob.get(runs_url(world), params={"limit": 0}).status_code == 400


def test_cancel_ends_a_queued_run_at_once_and_a_finished_one_conflicts(world):
    run_id = queue(world, world.bob_id)
    cancelled = world.bob.post(runs_url(world, run_id, "/cancel"))
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["cancel_requested"]) == ("cancelled", True)
    assert run_worker(world, lambda run, heartbeat: pytest.fail("a cancelled run was run")) == 0
    again = world.bob.post(runs_url(world, run_id, "/cancel"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


def test_an_admin_cancels_a_running_run_and_its_handler_stops_at_the_next_heartbeat(world):
    run_id = queue(world, world.cy_id)
    rounds = []

    def chat(run, heartbeat):
        rounds.append(1)
        response = world.ada.post(runs_url(world, run_id, "/cancel"))
        assert response.status_code == 200 and response.json()["cancel_requested"]
        assert response.json()["status"] == "running" and response.json()["input"] is None
        heartbeat()
        rounds.append(2)
        return AgentRunResult({"answer": "too late"})

    run_worker(world, chat)
    assert rounds == [1]
    shown = world.cy.get(runs_url(world, run_id)).json()
    assert (shown["status"], shown["output"]) == ("cancelled", None)


def test_tow_worker_once_runs_the_queued_agent_runs(world, tmp_path, fresh_database_url, capsys):
    from tests.postgres_fixtures import SECRET
    from tow_http import cli

    run_id = queue(world, world.bob_id, kind="no_such_workflow")
    (tmp_path / ".env").write_text(f"APP_SECRET={SECRET}\nDATABASE_URL={fresh_database_url}\n")
    assert cli.main(["--config", str(tmp_path / "tow0.yaml"), "worker", "--once"]) == 0
    assert "ran 0 job(s) and 1 agent run(s)" in capsys.readouterr().out
    # No workflow has a handler for this kind: the run is claimed and ends saying so.
    shown = world.bob.get(runs_url(world, run_id)).json()
    assert (shown["status"], shown["error_code"], shown["attempts"]) == ("failed", "no_handler", 1)


def test_the_unscoped_listing_spans_the_callers_organisations_and_admins_see_their_whole_organisation(world):
    created = world.ada.post("/api/organisations", json={"name": "Bob's side project"})  # a server admin's act
    assert created.status_code == 201, created.text
    side = created.json()["id"]
    world.sql("DELETE FROM memberships WHERE organisation_id = :org", org=side)
    world.sql("INSERT INTO memberships (organisation_id, user_id, role) VALUES (:org, :bob, 'owner')", org=side,
              bob=world.bob_id)
    in_acme, cys = queue(world, world.bob_id), queue(world, world.cy_id)
    with world.container.engine().begin() as conn:
        in_side = PgAgentRuns(conn).create(new_run("chat", owner_id=world.ada_id, organisation_id=side,
                                                   project_id=None, input=QUESTION), now=datetime.now(UTC)).id
    # Bob: his run in Acme (a member there) and every run of the organisation he owns, Ada's one as metadata
    # — Ada is not a member of Bob's organisation, so it was queued through the port; the listing still shows
    # only what Bob may see.
    listed = world.bob.get("/api/agent-runs").json()["items"]
    assert [r["id"] for r in listed] == [in_side, in_acme]
    assert listed[0]["content_visible"] is False and listed[0]["input"] is None
    assert world.bob.get(f"/api/agent-runs/{in_acme}").json()["input"] == QUESTION
    # Ada owns Acme: all of Acme's runs; nothing of Bob's organisation, where she is not a member.
    assert [r["id"] for r in world.ada.get("/api/agent-runs").json()["items"]] == [cys, in_acme]
    assert world.ada.get(f"/api/agent-runs/{in_side}").status_code == 404
    assert world.cy.get(f"/api/agent-runs/{in_acme}").status_code == 404
    assert world.cy.post(f"/api/agent-runs/{in_acme}/cancel").status_code == 404
    assert world.client().get("/api/agent-runs").status_code == 401


def test_an_admin_cancelling_someone_elses_run_is_audited_and_the_owners_own_cancel_is_not(world):
    cys, bobs = queue(world, world.cy_id), queue(world, world.bob_id)
    assert world.ada.post(f"/api/agent-runs/{cys}/cancel").json()["status"] == "cancelled"
    assert world.bob.post(runs_url(world, bobs, "/cancel")).json()["status"] == "cancelled"
    entries = world.ada.get(f"/api/organisations/{world.org}/audit",
                            params={"action": "agent_run.cancelled"}).json()["items"]
    assert [(e["actor_id"], e["target"]) for e in entries] == [(world.ada_id, f"agent_run:{cys}")]
    assert entries[0]["details"] == {"kind": "chat", "owner_id": world.cy_id, "status": "queued"}


def test_the_owner_is_notified_that_their_run_finished_or_failed_and_nobody_else_is(world):
    queue(world, world.bob_id)
    failed = queue(world, world.bob_id)

    def chat(run, heartbeat):
        if run.id == failed:
            raise RuntimeError("the model answered garbage")
        return AgentRunResult({"answer": "42"}, TokenUsage())

    assert run_worker(world, chat) == 2
    items = run_notes(world, world.bob)
    assert [(i["kind"], i["text"], i["actor"], i["record"], i["lost"]) for i in items] == [
        ("run_failed", "Your chat answer failed", None, None, False),
        ("run_finished", "Your chat answer finished", None, None, False)]
    assert "Your chat answer failed" in world.bob.get(f"/o/{world.org}/notifications").text
    for other in (world.ada, world.cy):  # the organisation's owner and another member
        assert run_notes(world, other) == []
    off = world.bob.put("/api/notification-preferences", json={"run_finished": "off", "run_failed": "email"})
    assert off.status_code == 200, off.text
    assert {p["kind"]: p["delivery"] for p in off.json()["preferences"]}["run_finished"] == "off"
    queue(world, world.bob_id)
    run_worker(world, chat)
    assert len(run_notes(world, world.bob)) == 2


def run_notes(world: World, client) -> list[dict]:  # the world's setup told people of their roles too
    items = client.get("/api/notifications", params={"org_id": world.org}).json()["items"]
    return [i for i in items if i["kind"].startswith("run_")]
