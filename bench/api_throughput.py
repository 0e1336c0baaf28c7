"""Benchmark: requests/s and latency of TOW's request path beside bare Litestar baselines (issue 16 item 1).

In one run, on one machine, with `wrk` (Debian's package: a compiled load generator, so the client does not
compete with the server for Python's CPU):
  (a) a bare Litestar handler answering the same bytes as TOW's list (bench/baseline_app.py ``bytes``);
  (b) a bare Litestar handler doing one SQL round trip through the same engine and driver (``sql``);
  (c) TOW (`tow serve`, one process, its workers off) signed in as the owner: the list
      ``GET /api/organisations/{org}/records?type=doc&limit=20`` (20 small docs), get by display ID,
      keyword search, and a server-rendered page (the docs list);
  and the availability issue's flood: sign-in page latency while 16 clients without a cookie flood a
  protected path (wrk), beside the same page unflooded.
All servers share one embedded PostgreSQL. Each server runs alone while it is measured.

Run: ``.venv/bin/python bench/api_throughput.py [--seconds 8] [--connections 16]`` (about two minutes).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.live_server import free_port, live_server, sign_up_owner  # noqa: E402

from tow_adapters.postgres.embedded import EmbeddedPostgres  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, *, seconds: int, connections: int, cookie: str | None = None) -> dict:
    """requests/s, p50 and p99 (ms) and non-2xx count of one wrk run (two threads: one per core)."""
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout  # noqa: S603
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def percentile(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * _UNITS[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rate, "p50": percentile("50"), "p99": percentile("99"), "non2xx": int(errors.group(1)) if errors
            else 0}


@contextmanager
def baseline(mode: str, env: dict):
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baseline_app.py"), mode, str(port)],  # noqa: S603
                               env={**os.environ, **env, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/{mode}", timeout=2).read()  # noqa: S310
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/{mode}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def row(name: str, result: dict, against: dict | None = None, *, base_a: dict, base_b: dict) -> str:
    return (f"| {name} | {result['rps']:,.0f} | {result['p50']:.1f} ms | {result['p99']:.1f} ms | "
            f"{result['rps'] / base_a['rps']:.0%} | {result['rps'] / base_b['rps']:.0%} | {result['non2xx']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    load = {"seconds": args.seconds, "connections": args.connections}
    print(f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {sys.version.split()[0]}; "
          f"wrk -t2 -c{args.connections} -d{args.seconds}s")
    with tempfile.TemporaryDirectory(prefix="tow-bench-") as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            postgres = EmbeddedPostgres(Path(tmp) / "pg" / "data")
            postgres.start()
        try:
            postgres.ensure_database("throughput")
            url = postgres.url("throughput")
            (Path(tmp) / "tow").mkdir()
            with live_server(Path(tmp) / "tow", database_url=url) as server:
                cookie, org = sign_up_owner(server, docs=20)
                base = f"http://127.0.0.1:{server.port}"
                listing = f"/api/organisations/{org}/records?type=doc&limit=20"
                status, _, body = server.request("GET", listing, cookie=cookie)
                assert status == 200, status
                display_id = re.search(rb'"display_id":"(DOC-\d+)"', body).group(1).decode()
                tow = {
                    "list": wrk(base + listing, cookie=cookie, **load),
                    "get": wrk(f"{base}/api/organisations/{org}/records/{display_id}", cookie=cookie, **load),
                    "search": wrk(f"{base}/api/organisations/{org}/search?q=text&mode=keyword", cookie=cookie,
                                  **load),
                    "page": wrk(f"{base}/o/{org}/docs", cookie=cookie, **load),
                }
                login_alone = wrk(f"{base}/login", seconds=args.seconds, connections=1)
                flood = subprocess.Popen(["wrk", "-t1", "-c16", f"-d{args.seconds + 2}s",  # noqa: S603,S607
                                          base + listing], stdout=subprocess.DEVNULL)
                time.sleep(1)
                login_flooded = wrk(f"{base}/login", seconds=args.seconds, connections=1)
                flood.wait()
            (Path(tmp) / "body.json").write_bytes(body)
            with baseline("bytes", {"TOW_BENCH_BODY": str(Path(tmp) / "body.json")}) as bare:
                base_a = wrk(bare, **load)
            with baseline("sql", {"TOW_BENCH_DATABASE_URL": url, "TOW_BENCH_ORG": str(org)}) as sql:
                base_b = wrk(sql, **load)
        finally:
            postgres.stop()
    print(f"\nbody of the list: {len(body):,} bytes\n")
    print("| server | requests/s | p50 | p99 | of (a) | of (b) | non-2xx |\n|---|---:|---:|---:|---:|---:|---:|")
    print(row("(a) bare Litestar, same bytes", base_a, base_a=base_a, base_b=base_b))
    print(row("(b) bare Litestar, one SQL round trip", base_b, base_a=base_a, base_b=base_b))
    for name, label in (("list", "TOW list (20 docs)"), ("get", "TOW get by display ID"),
                        ("search", "TOW keyword search"), ("page", "TOW docs page (HTML)")):
        print(row(label, tow[name], base_a=base_a, base_b=base_b))
    print("\n| sign-in page `GET /login`, one client | requests/s | p50 | p99 |\n|---|---:|---:|---:|")
    for name, result in (("alone", login_alone), ("while 16 cookie-less clients flood the list", login_flooded)):
        print(f"| {name} | {result['rps']:,.0f} | {result['p50']:.1f} ms | {result['p99']:.1f} ms |")


if __name__ == "__main__":
    main()
