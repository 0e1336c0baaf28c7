"""Benchmark: time to the first streamed token of a chat answer (issue 13, item 4).

Starts a real `tow serve --migrate` (embedded PostgreSQL, its in-process workers) on loopback, pointed at
the fake OpenAI server of the tests (tests/fake_openai.py, in this process) which streams Responses API
events. Then, ``--questions`` times (default 20): queue a scripted answer, `POST .../questions`, open the
run's `events_url` and time from the POST to the first `delta` event on the stream; each answer is read to
its `done` before the next question. In the same run, the baseline: the first `response.output_text.delta`
read straight from the fake through the OpenAI SDK (stream=True). Reports median and p90 of both and the
ratio. ``--poll SECONDS`` sets `jobs.poll_interval_seconds` (how long an idle agent-run worker waits before
looking for a new run again).

Run: `.venv/bin/python bench/chat_ttft.py [--questions 20] [--poll 2.0]` (under a minute). Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import openai  # noqa: E402
from tests.fake_openai import FakeOpenAIServer  # noqa: E402
from tests.live_server import LiveServer, _wait_until_ready, free_port, send, sign_up_owner  # noqa: E402

ANSWER = "We ship every Friday after the review, and hotfixes go out the same day they are approved."


def serve(tmp: Path, fake: FakeOpenAIServer, poll: float) -> LiveServer:
    port = free_port()
    (tmp / "tow.yaml").write_text(f"runtime:\n  bind_port: {port}\n  log_level: warning\n"
                                  f"database:\n  embedded_data_dir: ./pg\njobs:\n  poll_interval_seconds: {poll}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "EXA_API_KEY")}
    env |= {"APP_SECRET": "bench-secret-" + "z" * 40, "OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": fake.base_url,
            "APPROVED_PROVIDERS": fake.base_url}
    log = (tmp / "serve.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own CLI, with its in-process workers
        [sys.executable, "-m", "tow_http.cli", "--config", str(tmp / "tow.yaml"), "serve", "--migrate"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LiveServer(process, port, tmp / "serve.log")
    _wait_until_ready(server, 120)
    return server


def first_delta_via_tow(server: LiveServer, cookie: str, org: int, conversation: int) -> float:
    conn = server.connection(60)
    start = time.perf_counter()
    status, _, body = send(conn, "POST", f"/api/organisations/{org}/conversations/{conversation}/questions",
                           body={"text": "When do we ship?"}, cookie=cookie)
    assert status == 202, (status, body)
    conn.request("GET", json.loads(body)["events_url"], headers={"Cookie": cookie})
    response = conn.getresponse()
    assert response.status == 200
    first = None
    event = ""
    while True:  # read to done, so the next question starts with an idle worker
        line = response.fp.readline()
        if not line:
            break
        text = line.decode().strip()
        if text.startswith("event: "):
            event = text.removeprefix("event: ")
            if event == "delta" and first is None:
                first = time.perf_counter() - start
            if event == "done":
                break
    conn.close()
    assert first is not None, "no delta arrived"
    return first


def first_delta_direct(fake: FakeOpenAIServer) -> float:
    client = openai.OpenAI(api_key="sk-bench", base_url=fake.base_url, max_retries=0)
    start = time.perf_counter()
    with client.responses.create(model="gpt-bench", input="When do we ship?", stream=True, store=False) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                return time.perf_counter() - start
    raise AssertionError("no delta arrived")


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--poll", type=float, default=2.0, help="jobs.poll_interval_seconds")
    args = parser.parse_args()
    fake = FakeOpenAIServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            server = serve(Path(tmp), fake, args.poll)
            try:
                cookie, org = sign_up_owner(server, docs=0)
                status, _, body = server.request("POST", f"/api/organisations/{org}/conversations", cookie=cookie,
                                                 body={"title": "Bench"})
                assert status == 201, (status, body)
                conversation = json.loads(body)["id"]
                tow, direct = [], []
                for _ in range(args.questions):
                    fake.queue_response(text=ANSWER)
                    tow.append(first_delta_via_tow(server, cookie, org, conversation))
                    fake.queue_response(text=ANSWER)
                    direct.append(first_delta_direct(fake))
                    time.sleep(0.05)
            finally:
                server.process.terminate()
                server.process.wait(30)
    finally:
        fake.stop()
    assert not fake.violations, fake.violations
    med_tow, med_direct = statistics.median(tow), statistics.median(direct)
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}; jobs.poll_interval_seconds={args.poll}")
    print(f"TOW  (POST question -> first delta on the SSE stream), {len(tow)} questions: "
          f"median {med_tow * 1000:.0f} ms, p90 {p90(tow) * 1000:.0f} ms")
    print(f"fake via SDK (request -> first output_text.delta): median {med_direct * 1000:.1f} ms, "
          f"p90 {p90(direct) * 1000:.1f} ms")
    print(f"ratio (median TOW / median direct): {med_tow / med_direct:.0f}x")


if __name__ == "__main__":
    main()
