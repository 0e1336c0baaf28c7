"""Benchmark: does `tow serve` stay up and answer under the loads of issue 11?

Starts a real `tow serve` (embedded PostgreSQL, default pool) on loopback and runs, each bounded in
count and time:
1. **mixed** — 400 signed-in `GET /api/organisations/{org}/records?limit=5` from 8 clients beside 400
   cookie-less `GET /api/me` from 2 clients, repeated ``--tries`` times; reports 5xx, connection failures
   and whether the process is still alive and answering.
2. **flood** — 16 clients without a cookie on a protected path for 8 s while one client loads the sign-in
   page (`GET /login`) every 0.25 s; reports that page's latency beside an unflooded baseline measured in
   the same run, and the flood's throughput.

Run: `.venv/bin/python bench/availability.py [--tries 6] [--only mixed|flood]` (about a minute).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.live_server import LoadResult, hammer, live_server, sign_up_owner, together  # noqa: E402


def sign_in_page_latency(server, seconds: float) -> LoadResult:
    result = LoadResult()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        status, _, _ = server.request("GET", "/login", timeout=60)
        result.statuses[status] += 1
        result.latencies.append(time.perf_counter() - start)
        time.sleep(0.25)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=6)
    parser.add_argument("--only", choices=("mixed", "flood"), help="run one scenario (each on a fresh server)")
    args = parser.parse_args()
    print(f"Machine: {platform.machine()}, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="tow-bench-") as tmp, live_server(Path(tmp)) as server:
        cookie, org = sign_up_owner(server)
        records = f"/api/organisations/{org}/records?limit=5"
        if args.only != "flood":
            print("| mixed try | signed-in 5xx | cookie-less 5xx | connection failures | process alive after |")
            print("|---|---|---|---|---|")
        for attempt in range(1, 0 if args.only == "flood" else args.tries + 1):
            signed, anonymous = together(
                lambda: hammer(server, records, clients=8, requests_per_client=50, cookie=cookie, timeout=40),
                lambda: hammer(server, "/api/me", clients=2, requests_per_client=200, timeout=40))
            answering = server.alive and _answers(server)
            print(f"| {attempt} | {signed.server_errors} of {sum(signed.statuses.values())} | "
                  f"{anonymous.server_errors} of {sum(anonymous.statuses.values())} | "
                  f"{len(signed.errors) + len(anonymous.errors)} | {'yes' if answering else 'NO'} |", flush=True)
            if not answering:
                break
        if not server.alive or args.only == "mixed":
            print("flood not measured" + ("" if server.alive else ": the process died (run with --only flood)"))
            return
        baseline = sign_in_page_latency(server, 3)
        flood, during = together(
            lambda: hammer(server, records, clients=16, seconds=8, timeout=40),
            lambda: sign_in_page_latency(server, 8))
        print("\n| sign-in page `GET /login` | median | p95 | max |\n|---|---|---|---|")
        for name, load in (("no flood", baseline), ("16 cookie-less clients flooding", during)):
            print(f"| {name} | {load.median * 1000:.1f} ms | {load.percentile(95) * 1000:.1f} ms | "
                  f"{max(load.latencies) * 1000:.1f} ms |")
        total = sum(flood.statuses.values())
        print(f"\nflood: {total / 8:.0f} requests/s answered, statuses {dict(flood.statuses)}, "
              f"{len(flood.errors)} connection failures")


def _answers(server) -> bool:
    try:
        return server.request("GET", "/api/health", timeout=5)[0] == 200
    except OSError:
        return False


if __name__ == "__main__":
    main()
