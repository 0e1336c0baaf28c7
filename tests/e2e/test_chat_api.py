"""Grounded chat over HTTP with the real OpenAI SDK adapter against the fake OpenAI server: Bob asks in his
conversation, the worker (as `tow serve` runs it) answers as Bob through the tool loop, and the answer is read
back with the citations the server kept and those it dropped. A restricted doc Bob cannot read never reaches
the answer, the provider or the ledger; every request carries store:false and has one ledger row naming
exactly the records whose content it carried."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.e2e.org_world import World

SECRET = "the vault combination is 7-2-9-4"


@pytest.fixture
def world(make_container, ai_environ):
    return World(make_container(**ai_environ))


def chat_ledger(world: World) -> list[sa.Row]:
    with world.container.engine().connect() as conn:
        return conn.execute(sa.text("SELECT acting_user_id, record_display_ids FROM egress_ledger "
                                    "WHERE purpose = 'chat' ORDER BY id")).all()


def test_bob_asks_and_reads_an_answer_citing_only_what_he_may_read(world, fake_openai):
    ada = world.ada
    vault = world.create(ada, type="doc", title="Vault", body=SECRET, scope=world.scope("SEC"))["display_id"]
    plan = world.create(ada, type="doc", title="Release plan", body="We ship every Friday after the review.",
                        scope=world.scope("OPS"))["display_id"]
    fake_openai.queue_response(function_calls=[("get_record", {"display_id": vault}),
                                               ("get_record", {"display_id": plan})])
    fake_openai.queue_response(text=f'We ship on Fridays [{plan} "ship every Friday"] and [{vault}].')

    conversation = world.bob.post(f"{world.base}/conversations", json={"title": "Releases"}).json()
    asked = world.bob.post(f"{world.base}/conversations/{conversation['id']}/questions",
                           json={"text": "When do we ship?"})
    assert asked.status_code == 202, asked.text
    assert asked.json()["run_status"] == "queued" and asked.json()["question"]["text"] == "When do we ship?"

    assert world.container.agent_run_worker().drain() == 1
    run = world.bob.get(f"{world.base}/agent-runs/{asked.json()['run_id']}").json()
    assert run["status"] == "completed", run
    turns = world.bob.get(f"{world.base}/conversations/{conversation['id']}").json()["turns"]
    answer = turns[-1]
    assert answer["role"] == "assistant" and answer["agent_run_id"] == asked.json()["run_id"]
    assert [c["display_id"] for c in answer["citations"]] == [plan]
    assert [(d["display_id"], d["reason"]) for d in answer["dropped_citations"]] == [(vault, "not_returned_by_tool")]
    assert vault not in answer["text"] and SECRET not in json.dumps(turns)

    requests = fake_openai.requests_to("/v1/responses")
    assert len(requests) == 2 and all(r.body["store"] is False for r in requests)
    assert SECRET not in json.dumps([r.body for r in requests])
    rows = chat_ledger(world)
    assert [row.acting_user_id for row in rows] == [world.bob_id, world.bob_id]
    assert [list(row.record_display_ids or []) for row in rows] == [[], [plan]]  # what each request carried

    # The stream Bob could have followed: the run finished, so it replays to done and closes.
    stream = world.bob.get(asked.json()["events_url"])
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    kinds = [line.removeprefix("event: ") for line in stream.text.splitlines() if line.startswith("event: ")]
    assert kinds[:2] == ["activity", "activity"] and kinds[-2:] == ["answer", "done"] and "delta" in kinds
    assert SECRET not in stream.text and "Vault" not in stream.text  # none of the restricted doc's text
    assert f'"records":["{plan}"]' in stream.text and f'"records":["{vault}"]' not in stream.text


def test_only_the_owner_asks_and_an_empty_question_is_refused(world):
    conversation = world.bob.post(f"{world.base}/conversations", json={"title": "Mine"}).json()
    url = f"{world.base}/conversations/{conversation['id']}/questions"
    assert world.ada.post(url, json={"text": "What did Bob ask?"}).status_code == 404  # not even the org owner
    assert world.bob.post(url, json={"text": ""}).status_code == 400
    assert world.bob.get(f"{world.base}/conversations/{conversation['id']}").json()["turns"] == []


def test_a_worker_process_killed_mid_answer_is_taken_over_and_the_question_answered_once(
        world, fake_openai, ai_environ, fresh_database_url, tmp_path):
    """`tow worker` is killed (SIGKILL) while the model call of a chat run is in flight; once its lease has
    expired another worker claims the run again and completes it: one answer, attempts 2."""
    import os
    import signal
    import subprocess
    import sys
    from datetime import UTC, datetime, timedelta

    from tests.postgres_fixtures import SECRET
    from tow_http.composition import agent_run_handlers, build_agent_run_worker

    conversation = world.bob.post(f"{world.base}/conversations", json={"title": "Crash"}).json()
    held = fake_openai.queue_hold()  # the dying worker's model call never returns
    (tmp_path / "drill").mkdir()
    (tmp_path / "drill" / "tow.yaml").write_text("jobs:\n  lease_seconds: 10\n  poll_interval_seconds: 0.2\n")
    (tmp_path / "drill" / ".env").write_text("".join(f"{k}={v}\n" for k, v in {
        "APP_SECRET": SECRET, "DATABASE_URL": fresh_database_url, **ai_environ}.items()))
    worker = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "tow_http.cli", "--config", str(tmp_path / "drill" / "tow.yaml"), "worker"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    try:
        asked = world.bob.post(f"{world.base}/conversations/{conversation['id']}/questions",
                               json={"text": "Still there?"}).json()
        assert held.arrived.wait(60), "the worker process never called the model"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
        held.release.set()
    run = world.bob.get(f"{world.base}/agent-runs/{asked['run_id']}").json()
    assert (run["status"], run["attempts"]) == ("running", 1)  # the dead worker still holds its lease

    fake_openai.queue_response(text="Yes, answered by the second worker.")
    container = world.container
    later = lambda: datetime.now(UTC) + timedelta(seconds=11)  # noqa: E731 - past the dead worker's lease
    takeover = build_agent_run_worker(container.engine(), container.config(),
                                      agent_run_handlers(container.engine(), container.config(),
                                                         container.ai_services()), clock=later)
    assert takeover.drain() == 1
    run = world.bob.get(f"{world.base}/agent-runs/{asked['run_id']}").json()
    assert (run["status"], run["attempts"]) == ("completed", 2)
    turns = world.bob.get(f"{world.base}/conversations/{conversation['id']}").json()["turns"]
    assert [(t["role"], t["text"]) for t in turns] == [("user", "Still there?"),
                                                       ("assistant", "Yes, answered by the second worker.")]
