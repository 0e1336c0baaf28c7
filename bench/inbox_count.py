"""Benchmark: what the inbox count in the shell's navigation costs every page (issue 14 item 3).

Builds the real app through the composition root on a fresh embedded PostgreSQL with about 1,000 records (600
docs, 300 tickets, 100 memory items over the organisation, an open and a restricted project and private
scopes), 30 pending memory diffs, 10 snapshots in review, one conversation of 400 turns of which 20 carry a
pending action, and 20 failed agent runs. Then times pages with the count (as served) and without it (the
frame's count replaced by zero, so the only difference is the four counting queries), median of repeated
requests through Litestar's test client, and the four counting queries alone inside one transaction.
Run: `.venv/bin/python bench/inbox_count.py`.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from litestar.testing import TestClient

from tow_core import inbox, knowledge, memory_review
from tow_core.access import Scope
from tow_core.conversations import NewConversation, NewTurn, TurnRole
from tow_core.memory_diffs import CreateItem
from tow_core.memory_review import MemoryDesk
from tow_core.records import RecordType
from tow_core.use_cases import frame as frame_module
from tow_http.composition import Container
from tow_http.config import load_config

REPEATS = 40
PAGES = ("/o/1/today", "/o/1/tickets?project=APP", "/o/1/memory", "/o/1/settings")


def seed(container: Container) -> None:
    services = container.services()
    now = datetime.now(UTC)
    with services.transaction() as stores:
        principal = stores.directory.principal(1)
        ws = knowledge.Workspace(stores.records, stores.directory, principal, 1, history=stores.history)
        app, sec = stores.directory.project(1), stores.directory.project(2)
        scopes = [(Scope.organisation(1), None), (Scope.project(1, 1), app.access), (Scope.project(1, 2), sec.access),
                  (Scope.private(1, 1), None)]
        for i in range(1000):
            record_type = RecordType.DOC if i < 600 else RecordType.TICKET if i < 900 else RecordType.MEMORY
            scope, access = scopes[i % 4]
            fields = {"memory_type": "fact"} if record_type is RecordType.MEMORY else {}
            knowledge.create_record(ws, record_type=record_type, scope=scope, project=access,
                                    title=f"Record {i}", body=f"Body {i}", fields=fields)
        for i in range(10):
            scope, access = scopes[i % 4]
            knowledge.create_record(ws, record_type=RecordType.SNAPSHOT, scope=scope, project=access,
                                    title=f"Snapshot {i}", fields={"snapshot_type": "cto_state"})
        for i in range(30):
            scope, access = scopes[i % 4]
            memory_review.propose_diff(MemoryDesk(ws, stores.memory_diffs), scope=scope, project=access,
                                       operations=[CreateItem(f"Fact {i}", "", {"memory_type": "fact"})])
        conversation = stores.conversations.create(NewConversation(1, 1, None, "Planning"), at=now)
        for i in range(400):
            action = ({"tool": "propose_ticket", "pending_action": {"id": f"{i}-1", "kind": "ticket",
                                                                     "title": f"T{i}", "applied": None}},)
            stores.conversations.add_turn(conversation.id, NewTurn(
                TurnRole.ASSISTANT if i % 2 else TurnRole.USER, f"turn {i}",
                tool_activity=action if i % 20 == 1 else ({"tool": "search", "arguments": {"q": "x"}},)), at=now)
    with container.engine().begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO agent_runs (kind, owner_id, organisation_id, status, error_code, error, input, created_at, "
            "finished_at) SELECT 'chat', 1, 1, 'failed', 'handler_failed', 'it broke', CAST(:input AS jsonb), now(), "
            "now() FROM generate_series(1, 20)"), {"input": json.dumps({})})


def median_ms(call) -> float:
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000


def get(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])


def main() -> None:
    from tow_adapters.postgres.embedded import EmbeddedPostgres  # bench-only: a throwaway server

    with tempfile.TemporaryDirectory(prefix="tow-bench-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = EmbeddedPostgres(Path(tmp) / "pg")
        url = server.start()
        try:
            config_path = Path(tmp) / "tow.yaml"
            config_path.write_text("")
            config = load_config(config_path, environ={"APP_SECRET": "bench-secret-" + "x" * 40})
            container = Container(config=config, database_url=url)
            container.schema_migrator().upgrade()
            client = TestClient(container.app(), base_url="http://127.0.0.1:8000")
            client.post("/api/auth/register-first", json={"email": "ada@example.com", "display_name": "Ada",
                                                          "password": "correct horse battery",
                                                          "organisation_name": "Acme"})
            for key, visibility in (("APP", "open"), ("SEC", "restricted")):
                client.post("/api/organisations/1/projects", json={"key": key, "name": key, "visibility": visibility})
            seed(container)
            counted = client.get("/api/organisations/1/inbox").json()["counts"]
            print(f"Machine: {platform.machine()}, Python {sys.version.split()[0]}; inbox counts: {counted}")

            services = container.services()

            def count_alone() -> None:
                with services.transaction() as stores:
                    desk = inbox.InboxDesk(stores.records, stores.memory_diffs, stores.conversations,
                                           stores.agent_runs)
                    inbox.count(desk, inbox.Within(1, 1, None, frozenset({1, 2}), unscoped=True))

            print(f"four counting queries in one transaction: {median_ms(count_alone):.2f} ms")
            where = inbox.Within(1, 1, None, frozenset({1, 2}), unscoped=True)
            for name, query in (
                ("memory diffs", lambda s: s.memory_diffs.count_pending_writable(1, 1, None)),
                ("snapshots", lambda s: s.records.count_readable(1, 1, inbox._snapshots(where))),
                ("chat actions", lambda s: s.conversations.count_open_actions(1, 1, frozenset({1, 2}), unscoped=True)),
                ("failed runs", lambda s: s.agent_runs.count_failed_undismissed(1, 1, frozenset({1, 2}),
                                                                                unscoped=True)),
                ("an empty transaction", lambda s: None),
            ):
                def one(q=query) -> None:
                    with services.transaction() as stores:
                        q(stores)
                print(f"  {name}: {median_ms(one):.2f} ms")
            print("| page | with the count | without | difference |\n|---|---:|---:|---:|")
            real_count = frame_module.inbox.count
            for path in PAGES:
                for _ in range(5):  # warm up
                    get(client, path)
                with_count = median_ms(lambda p=path: get(client, p))
                frame_module.inbox.count = lambda desk, where: inbox.InboxCounts()
                try:
                    without = median_ms(lambda p=path: get(client, p))
                finally:
                    frame_module.inbox.count = real_count
                print(f"| `{path}` | {with_count:.1f} ms | {without:.1f} ms | {with_count - without:+.1f} ms |")
            container.engine().dispose()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
