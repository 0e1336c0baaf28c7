"""Benchmark: how long the browser pages take to render as an organisation grows.

Builds the real app through the composition root on a fresh embedded PostgreSQL, creates N docs (a tree:
every tenth doc is a top-level page, the others its sub-pages) and N tickets in one project, then times
each page with Litestar's test client (request → page handler → core use cases → PostgreSQL → Jinja2),
median of repeated requests. Run: `.venv/bin/python bench/pages.py` (a few minutes).
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from litestar.testing import TestClient

from tow_core import knowledge
from tow_core.access import Scope
from tow_core.records import RecordType
from tow_http.composition import Container
from tow_http.config import load_config

SIZES = (200, 2_000)
REPEATS = 15
PAGES = ("/o/1/docs", "/o/1/tickets?project=APP", "/o/1/tickets?project=APP&view=board",
         "/o/1/search?q=release+process", "/o/1/r/DOC-1", "/o/1/settings")


def seed(container: Container, client: TestClient, n: int, already: int) -> None:
    services = container.services()
    with services.transaction() as stores:
        principal = stores.directory.principal(1)
        ws = knowledge.Workspace(stores.records, stores.directory, principal, 1, history=stores.history)
        project = stores.directory.project(1)
        roots: list[int] = []
        for i in range(already, n):
            parent = {} if i % 10 == 0 or not roots else {"parent_id": roots[-1]}
            doc = knowledge.create_record(ws, record_type=RecordType.DOC, scope=Scope.organisation(1), project=None,
                                          title=f"Release process part {i}", body=f"Step {i}: ship on Tuesday.",
                                          fields=parent)
            if i % 10 == 0:
                roots.append(doc.id)
            knowledge.create_record(ws, record_type=RecordType.TICKET, scope=Scope.project(1, 1),
                                    project=project.access, title=f"Ticket {i}", body="release work")


def time_page(client: TestClient, path: str) -> float:
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        response = client.get(path)
        timings.append(time.perf_counter() - start)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return statistics.median(timings) * 1000


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
            client.post("/api/organisations/1/projects", json={"key": "APP", "name": "App", "visibility": "open"})
            print(f"Machine: {platform.machine()}, Python {sys.version.split()[0]}")
            print("| page | " + " | ".join(f"{n:,} docs + {n:,} tickets" for n in SIZES) + " |")
            results: dict[str, list[float]] = {p: [] for p in PAGES}
            done = 0
            for n in SIZES:
                seed(container, client, n, done)
                done = n
                for path in PAGES:
                    results[path].append(time_page(client, path))
            for path, figures in results.items():
                print(f"| `{path}` | " + " | ".join(f"{f:.0f} ms" for f in figures) + " |")
            container.engine().dispose()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
