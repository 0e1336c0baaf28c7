"""Several processes, one database (SPEC §11, issue 17 item 2): two `tow serve --no-worker` processes and two
`tow worker` processes on one PostgreSQL and one S3 upload store (a real SeaweedFS on loopback), as N app
machines behind a reverse proxy and workers on other machines would run.

What a user relies on: a session made on one app process works on the other (and signing out on one signs out
on both); a grant revoked through one is enforced by the other on the very next request; 200 background jobs
(exports, chat agent runs answered through the fake OpenAI server, and the embeddings of the records) are each
done exactly once; a file uploaded through one downloads whole through the other; invite links use
``runtime.public_app_url`` and redirects stay relative, so both follow the address the proxy serves.

The upload store is the ``shared_store`` fixture (its ``uploads:`` section and the environment it needs): the S3
store, the multi-machine choice; a shared filesystem directory would be the other.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from contextlib import ExitStack

import pytest
import sqlalchemy as sa

from tests.fake_openai import FakeOpenAIServer
from tests.live_server import LiveServer, live_server, live_worker
from tests.seaweedfs import ACCESS_KEY_ID, SECRET_ACCESS_KEY

PUBLIC_URL = "http://tow.example.test"  # the reverse proxy's address, configured on every app process
EXPORTS, CHATS, DOCS = 100, 100, 40  # 200 jobs (exports + chat runs), and 40 records to embed
STATS: dict[str, object] = {}
_numbers = itertools.count()


@pytest.fixture(scope="module")
def shared_store(seaweedfs) -> tuple[str, dict[str, str]]:
    """The ``uploads:`` section every process gets and the environment it needs: one bucket and prefix."""
    yaml = (f"uploads:\n  backend: s3\n  s3:\n    endpoint_url: {seaweedfs.endpoint_url}\n"
            f"    bucket: {seaweedfs.bucket}\n    key_prefix: several{next(_numbers)}/\n")
    return yaml, {"TOW_S3_ACCESS_KEY_ID": ACCESS_KEY_ID, "TOW_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}


@pytest.fixture(scope="module")
def openai():
    server = FakeOpenAIServer().start()
    yield server
    server.stop()
    assert not server.violations, server.violations


@pytest.fixture(scope="module")
def deployment(embedded_postgres, tmp_path_factory, shared_store, openai):
    """Two app processes (A started first: it migrates) and two workers on one fresh database."""
    name = f"several{next(_numbers)}"
    embedded_postgres.ensure_database(name)
    url = embedded_postgres.url(name)
    exports = tmp_path_factory.mktemp("exports")
    store_yaml, store_environ = shared_store
    shared = (f"{store_yaml}exports:\n  export_storage_path: {exports}\n"
              "jobs:\n  poll_interval_seconds: 0.2\n  ai_queue_max_concurrency: 2\n")
    environ = {"OPENAI_API_KEY": "sk-test-fake-openai", "OPENAI_BASE_URL": openai.base_url,
               "APPROVED_PROVIDERS": openai.base_url, "AUTO_EXTRACTION": "false", **store_environ}
    runtime = f"  public_app_url: {PUBLIC_URL}\n"
    with ExitStack() as stack:
        apps = [stack.enter_context(live_server(tmp_path_factory.mktemp(f"app{i}"), shared, runtime_yaml=runtime,
                                                database_url=url, environ=environ)) for i in range(2)]
        workers_dir = tmp_path_factory.mktemp("workers")
        workers = [stack.enter_context(live_worker(workers_dir, shared, database_url=url, environ=environ,
                                                   name=f"worker{i}")) for i in range(2)]
        engine = sa.create_engine(url)
        stack.callback(engine.dispose)
        yield apps, workers, engine, exports


def json_of(server: LiveServer, method: str, path: str, *, cookie: str | None = None, body: object = None,
            expect: int = 200) -> dict:
    status, _, raw = server.request(method, path, cookie=cookie, body=body)
    assert status == expect, (method, path, status, raw[:500])
    return json.loads(raw) if raw else {}


def cookie_of(headers: dict[str, str]) -> str:
    return headers["set-cookie"].split(";", 1)[0]


@pytest.fixture(scope="module")
def people(deployment):
    """Ada owns Acme (registered on A); Bob joins through an invite made on A, registering on B."""
    (a, b), _, _, _ = deployment
    status, headers, raw = a.request("POST", "/api/auth/register-first", body={
        "email": "ada@example.com", "display_name": "Ada", "password": "correct horse battery",
        "organisation_name": "Acme"})
    assert status == 201, raw
    ada, org = cookie_of(headers), json.loads(raw)["active_organisation_id"]
    invite = json_of(a, "POST", f"/api/organisations/{org}/invites", cookie=ada, body={}, expect=201)
    status, headers, raw = b.request("POST", "/api/auth/register", body={
        "invite_token": invite["token"], "email": "bob@example.com", "display_name": "Bob",
        "password": "another good password"})
    assert status == 201, raw
    return {"ada": ada, "bob": cookie_of(headers), "bob_id": json.loads(raw)["id"], "org": org,
            "invite_url": invite["accept_url"]}


def test_a_session_made_on_one_process_works_on_the_other_and_signing_out_ends_it_on_both(deployment):
    (a, b), _, _, _ = deployment
    status, headers, raw = a.request("POST", "/api/auth/login", body={"email": "ada@example.com",
                                                                      "password": "correct horse battery"})
    assert status == 200, raw
    cookie = cookie_of(headers)
    assert json_of(b, "GET", "/api/me", cookie=cookie)["email"] == "ada@example.com"
    assert b.request("POST", "/api/auth/logout", cookie=cookie)[0] == 204
    assert a.request("GET", "/api/me", cookie=cookie)[0] == 401  # the session row is gone for every process
    assert b.request("GET", "/api/me", cookie=cookie)[0] == 401


@pytest.fixture(autouse=True)
def _people_first(request):
    if "deployment" in request.fixturenames:
        request.getfixturevalue("people")


def test_a_grant_revoked_through_one_process_is_enforced_by_the_other_on_the_next_request(deployment, people):
    (a, b), _, _, _ = deployment
    org, ada, bob = people["org"], people["ada"], people["bob"]
    base = f"/api/organisations/{org}"
    project = json_of(a, "POST", f"{base}/projects", cookie=ada, expect=201,
                      body={"key": "SEC", "name": "Security", "visibility": "restricted"})
    doc = json_of(a, "POST", f"{base}/records", cookie=ada, expect=201, body={
        "type": "doc", "scope": {"kind": "project", "id": project["id"]}, "title": "Pen test", "body": "findings"})
    path = f"{base}/records/{doc['display_id']}"
    assert b.request("GET", path, cookie=bob)[0] == 404  # restricted, no grant yet
    grant = json_of(b, "POST", f"{base}/projects/{project['id']}/grants", cookie=ada,
                    body={"user_id": people["bob_id"], "role": "viewer"})
    assert json_of(a, "GET", path, cookie=bob)["title"] == "Pen test"  # granted on B, honoured on A
    assert json_of(b, "GET", path, cookie=bob)["title"] == "Pen test"
    assert a.request("DELETE", f"{base}/projects/{project['id']}/grants/{grant['id']}", cookie=ada)[0] == 204
    assert b.request("GET", path, cookie=bob)[0] == 404  # revoked on A, enforced by B at once
    listed = json_of(b, "GET", f"{base}/records?type=doc", cookie=bob)
    assert doc["display_id"] not in json.dumps(listed)


def test_invite_links_use_the_public_address_and_redirects_stay_relative_on_both(deployment, people):
    (a, b), _, _, _ = deployment
    assert people["invite_url"].startswith(f"{PUBLIC_URL}/invite/")
    for server in (a, b):
        invite = json_of(server, "POST", f"/api/organisations/{people['org']}/invites", cookie=people["ada"],
                         body={}, expect=201)
        assert invite["accept_url"] == f"{PUBLIC_URL}/invite/{invite['token']}"
        status, headers, _ = server.request("GET", f"/o/{people['org']}/today")  # not signed in: to the login
        assert status in (302, 303) and headers["location"].startswith("/login"), (status, headers)
        # A browser behind the proxy sends the public origin (and the proxy's Host): both processes accept it,
        # and refuse another site's.
        for origin, expected in ((PUBLIC_URL, 401), ("http://evil.example.test", 403)):
            conn = server.connection()
            try:
                conn.request("POST", "/api/auth/login", body=json.dumps({"email": "ada@example.com",
                                                                          "password": "wrong password!"}),
                             headers={"Origin": origin, "Host": "tow.example.test", "Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                assert response.status == expected, (origin, response.status)
            finally:
                conn.close()


def test_a_file_uploaded_through_one_process_downloads_whole_through_the_other(deployment, people):
    (a, b), _, _, _ = deployment
    body = bytes(range(256)) * 4096  # 1 MiB
    conn = a.connection()
    try:
        conn.request("POST", f"/api/organisations/{people['org']}/uploads?filename=plan.bin", body=body, headers={
            "Cookie": people["ada"], "Origin": f"http://127.0.0.1:{a.port}",
            "Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        stored = json.loads(response.read())
        assert response.status == 201, stored
    finally:
        conn.close()
    status, headers, content = b.request("GET", f"/api/uploads/{stored['id']}/content", cookie=people["ada"])
    assert (status, content == body) == (200, True), (status, headers)
    status, _, _ = b.request("GET", f"/api/uploads/{stored['id']}/content", cookie=people["bob"])
    assert status == 404  # Bob may not see Ada's unattached upload, on either process


def _wait_for(engine: sa.Engine, sql: str, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            got = conn.execute(sa.text(sql)).scalar_one()
        if got >= expected or time.monotonic() > deadline:
            return got
        time.sleep(0.25)


def test_two_hundred_jobs_spread_over_two_workers_are_each_done_exactly_once(deployment, people, openai):
    (a, b), workers, engine, exports_dir = deployment
    org, ada = people["org"], people["ada"]
    base = f"/api/organisations/{org}"
    started = time.monotonic()
    for i in range(DOCS):
        json_of((a, b)[i % 2], "POST", f"{base}/records", cookie=ada, expect=201, body={
            "type": "doc", "scope": {"kind": "organisation"}, "title": f"Note {i}", "body": f"marker{i}x here"})
    export_ids = [json_of((a, b)[i % 2], "POST", f"{base}/exports", cookie=ada, body={"kind": "member"},
                          expect=202)["id"] for i in range(EXPORTS)]
    asked = []
    for i in range(CHATS):
        server = (a, b)[i % 2]
        conversation = json_of(server, "POST", f"{base}/conversations", cookie=ada, body={"title": f"Q{i}"},
                               expect=201)
        asked.append(json_of(server, "POST", f"{base}/conversations/{conversation['id']}/questions", cookie=ada,
                             body={"text": f"question {i}?"}, expect=202) | {"conversation": conversation["id"]})
    queued = time.monotonic()

    done_jobs = _wait_for(engine, "SELECT count(*) FROM jobs WHERE status = 'completed'", EXPORTS, 180)
    done_runs = _wait_for(engine, "SELECT count(*) FROM agent_runs WHERE status = 'completed'", CHATS, 180)
    embedded = _wait_for(engine, "SELECT count(*) FROM embedding_chunks c JOIN records r ON r.id = c.record_id "
                         "WHERE c.chunk = 0 AND r.title LIKE 'Note %'", DOCS, 180)
    finished = time.monotonic()
    assert all(w.alive for w in workers), [w.log()[-2000:] for w in workers]
    assert (done_jobs, done_runs, embedded) == (EXPORTS, CHATS, DOCS)

    with engine.connect() as conn:
        jobs = conn.execute(sa.text("SELECT status, attempts, count(*) FROM jobs GROUP BY 1, 2")).all()
        runs = conn.execute(sa.text("SELECT status, attempts, count(*) FROM agent_runs GROUP BY 1, 2")).all()
        files = conn.execute(sa.text("SELECT id, file_name FROM exports WHERE id = ANY(:ids)"),
                             {"ids": export_ids}).all()
        answers = Counter(conn.execute(sa.text(
            "SELECT conversation_id FROM conversation_turns WHERE role = 'assistant'")).scalars())
    assert [tuple(r) for r in jobs] == [("completed", 1, EXPORTS)]  # each claimed once, completed once
    assert [tuple(r) for r in runs] == [("completed", 1, CHATS)]
    assert len(files) == EXPORTS and all(name for _, name in files)
    assert sorted(p.name for p in exports_dir.iterdir() if p.is_file()) == sorted(name for _, name in files)
    assert answers == Counter({q["conversation"]: 1 for q in asked})  # one answer per question, none twice
    assert len(openai.requests_to("/v1/responses")) == CHATS  # each model call made once
    texts = [text for r in openai.requests_to("/v1/embeddings")
             for text in (r.body["input"] if isinstance(r.body["input"], list) else [r.body["input"]])]
    for i in range(DOCS):
        assert sum(f"marker{i}x" in text for text in texts) == 1, f"Note {i} embedded other than once"
    STATS.update(jobs=EXPORTS + CHATS, embeddings=DOCS, queue_seconds=round(queued - started, 1),
                 drain_seconds=round(finished - queued, 1))
    both = [w.log() for w in workers]
    assert not [log for log in both if "Traceback" in log], both
