"""Crash drills (issue 17 item 4): a `tow worker` process is killed with SIGKILL while it is in the middle of an
export, an embedding batch and an agent run, all three at once; a second `tow worker` process takes each over
once the dead one's lease (``jobs.lease_seconds``, here the minimum, 10 s) has run out, and completes it once:
one export file (no partial one visible), each record's vectors stored once and its outbox entry gone, one
answer to the question.

"In the middle" is made certain rather than timed: the embedding request and the model call are held by the
fake OpenAI server until the kill, and the export is blocked on a lock this test holds on ``ticket_links`` (which
the export's snapshot reads after it has begun) — the kill lands while its query waits. (A `tow serve` killed mid-upload:
tests/e2e/test_upload_crash.py.)
"""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from tests.e2e.org_world import World
from tests.live_server import live_worker

DOCS = 5
CRASH_STATS: dict[str, object] = {}


@pytest.fixture
def drill(make_container, ai_environ, tmp_path, fresh_database_url):
    yaml = (f"exports:\n  export_storage_path: {tmp_path / 'exports'}\n"
            "jobs:\n  lease_seconds: 10\n  poll_interval_seconds: 0.2\n")
    world = World(make_container(yaml, **ai_environ))
    for i in range(DOCS):
        world.create(world.ada, type="doc", scope={"kind": "organisation"}, title=f"Runbook {i}",
                     body=f"crashmarker{i}x steps")
    return world, yaml, {**ai_environ, "DATABASE_URL": fresh_database_url}, tmp_path


def _wait(engine: sa.Engine, sql: str, *, until, timeout: float = 60, **params):
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            got = conn.execute(sa.text(sql), params).all()
        if until(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_a_worker_killed_mid_export_mid_embedding_and_mid_run_leaves_each_to_be_completed_once(drill, fake_openai):
    world, yaml, environ, tmp_path = drill
    engine = world.container.engine()
    url = environ.pop("DATABASE_URL")
    conversation = world.ada.post(f"{world.base}/conversations", json={"title": "Crash"}).json()
    lock = engine.connect()
    lock.begin()
    lock.execute(sa.text("LOCK TABLE ticket_links IN ACCESS EXCLUSIVE MODE"))  # the export will wait here
    try:
        embedding_held = fake_openai.queue_hold()
        with live_worker(tmp_path, yaml, database_url=url, environ=environ, name="doomed") as doomed:
            assert embedding_held.arrived.wait(60), doomed.log()[-2000:]  # the embedding batch is mid-call
            model_held = fake_openai.queue_hold()
            asked = world.ada.post(f"{world.base}/conversations/{conversation['id']}/questions",
                                   json={"text": "What does the runbook say?"}).json()
            assert model_held.arrived.wait(60), doomed.log()[-2000:]  # the agent run is mid-call
            export = world.ada.post(f"{world.base}/exports", json={"kind": "organisation"}).json()
            # pg_stat_activity keeps only the start of a query's text: the wait on the lock is what shows.
            waiting = _wait(engine, "SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                                    "WHERE NOT l.granted AND c.relname = 'ticket_links'", until=bool)
            assert waiting, ("the export never reached the locked table", doomed.log()[-3000:])
            doomed.kill()  # SIGKILL: no lease is given back, nothing is finished
    finally:
        lock.rollback()
        lock.close()
        for hold in (locals().get("embedding_held"), locals().get("model_held")):
            if hold is not None:
                hold.release.set()

    with engine.connect() as conn:
        job = conn.execute(sa.text("SELECT j.status, j.attempts FROM exports e JOIN jobs j ON j.id = e.job_id "
                                   "WHERE e.id = :id"), {"id": export["id"]}).one()
        run = conn.execute(sa.text("SELECT status, attempts FROM agent_runs WHERE id = :id"),
                           {"id": asked["run_id"]}).one()
        leased = conn.execute(sa.text("SELECT count(*) FROM embedding_outbox WHERE leased_until > now()")).scalar()
    assert (tuple(job), tuple(run)) == (("running", 1), ("running", 1)) and leased >= DOCS  # all three mid-way

    killed_at = time.monotonic()
    with live_worker(tmp_path, yaml, database_url=url, environ=environ, name="takeover") as takeover:
        done = _wait(engine, "SELECT (SELECT count(*) FROM exports WHERE id = :e AND completed_at IS NOT NULL) "
                             "+ (SELECT count(*) FROM agent_runs WHERE id = :r AND status = 'completed') "
                             "+ (SELECT count(*) = 0 FROM embedding_outbox)::int",
                     until=lambda rows: rows[0][0] == 3, timeout=90, e=export["id"], r=asked["run_id"])
        assert done[0][0] == 3, takeover.log()[-3000:]
    recovered = time.monotonic() - killed_at

    with engine.connect() as conn:
        job = conn.execute(sa.text("SELECT j.status, j.attempts, e.file_name FROM exports e "
                                   "JOIN jobs j ON j.id = e.job_id WHERE e.id = :id"), {"id": export["id"]}).one()
        run = conn.execute(sa.text("SELECT status, attempts FROM agent_runs WHERE id = :id"),
                           {"id": asked["run_id"]}).one()
        answers = conn.execute(sa.text("SELECT count(*) FROM conversation_turns WHERE conversation_id = :c "
                                       "AND role = 'assistant'"), {"c": conversation["id"]}).scalar()
        chunks = conn.execute(sa.text(
            "SELECT r.title, count(*) FROM embedding_chunks c JOIN records r ON r.id = c.record_id "
            "WHERE r.title LIKE 'Runbook %' AND c.chunk = 0 GROUP BY r.title")).all()
    assert (job.status, job.attempts) == ("completed", 2)  # re-leased once, completed once
    assert (run.status, run.attempts, answers) == ("completed", 2, 1)
    assert sorted(chunks) == [(f"Runbook {i}", 1) for i in range(DOCS)]

    visible = sorted(p.name for p in (tmp_path / "exports").iterdir() if not p.name.startswith("."))
    assert visible == [job.file_name]  # one export file; a partial one, if any, stays a hidden temporary
    document = json.loads(world.ada.get(f"/api/exports/{export['id']}/download").content)
    assert {r["title"] for r in document["records"]} >= {f"Runbook {i}" for i in range(DOCS)}
    CRASH_STATS.update(recovered_seconds=round(recovered, 1))
