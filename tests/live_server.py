"""A real `tow serve` process on loopback and bounded load against it, for the availability tests
(tests/e2e/test_availability.py) and bench/availability.py.

The load is plain `http.client` over keep-alive connections, one per thread; every loop is bounded in
count and time and only ever targets 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

FIRST = {"email": "ada@example.com", "display_name": "Ada", "password": "correct horse battery",
         "organisation_name": "Acme"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    process: subprocess.Popen
    port: int
    log_path: Path

    def connection(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, *, body: object = None, cookie: str | None = None,
                timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
        conn = self.connection(timeout)
        try:
            return send(conn, method, path, body=body, cookie=cookie)
        finally:
            conn.close()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def send(conn: http.client.HTTPConnection, method: str, path: str, *, body: object = None,
         cookie: str | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Origin": f"http://127.0.0.1:{conn.port}"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if cookie:
        headers["Cookie"] = cookie
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


@contextmanager
def live_server(tmp_path: Path, yaml_text: str = "", *, runtime_yaml: str = "", database_url: str | None = None,
                ready_timeout: float = 90, port_flag: bool = False,
                environ: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """`tow serve --migrate` on a free loopback port (embedded PostgreSQL unless ``database_url``); stopped
    with SIGTERM afterwards (SIGKILL if it does not stop within 20 s, which the caller can detect). The port is
    in tow.yaml, or given as `--port` with ``port_flag``. ``environ`` adds variables (OPENAI_API_KEY, ...)."""
    port = free_port()
    bind = "" if port_flag else f"  bind_port: {port}\n"
    (tmp_path / "tow.yaml").write_text(f"runtime:\n{bind}  log_level: warning\n{runtime_yaml}"
                                       f"database:\n  embedded_data_dir: ./pg\n{yaml_text}")
    env = _environment(database_url, environ)
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "tow_http.cli", "--config", str(tmp_path / "tow.yaml"), "serve", "--migrate",
             "--no-worker", *(["--port", str(port)] if port_flag else [])], env=env, stdout=log,
            stderr=subprocess.STDOUT)
    server = LiveServer(process, port, log_path)
    try:
        _wait_until_ready(server, ready_timeout)
        yield server
    finally:
        if server.alive:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)


def _environment(database_url: str | None, environ: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "OPENAI_API_KEY", "EXA_API_KEY")}
    env["APP_SECRET"] = APP_SECRET
    if database_url:
        env["DATABASE_URL"] = database_url
    return {**env, **(environ or {})}


APP_SECRET = "live-server-secret-" + "z" * 40  # every live process shares it, as the processes of one deployment do


@dataclass
class LiveWorker:
    process: subprocess.Popen
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the process dies on the spot, leases and all (a crash, not a shutdown)."""
        self.process.kill()
        self.process.wait(timeout=20)


@contextmanager
def live_worker(tmp_path: Path, yaml_text: str = "", *, database_url: str, environ: dict[str, str] | None = None,
                name: str = "worker", ready_timeout: float = 90) -> Iterator[LiveWorker]:
    """`tow worker` (a process of its own, as on another machine) on ``database_url``; it has started once it
    says so. Stopped with SIGTERM afterwards (it finishes the work in hand), SIGKILL after 20 s."""
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml_text)
    log_path = tmp_path / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "tow_http.cli", "--config", str(config), "worker"],
            env=_environment(database_url, environ), stdout=log, stderr=subprocess.STDOUT)
    worker = LiveWorker(process, log_path)
    try:
        deadline = time.monotonic() + ready_timeout
        while "TOW worker: running" not in worker.log():
            if not worker.alive or time.monotonic() > deadline:
                raise RuntimeError(f"tow worker did not start:\n{worker.log()[-3000:]}")
            time.sleep(0.1)
        yield worker
    finally:
        if worker.alive:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)


def _wait_until_ready(server: LiveServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive:
            raise RuntimeError(f"tow serve exited early:\n{server.log()[-3000:]}")
        try:
            if server.request("GET", "/api/ready", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"tow serve did not become ready:\n{server.log()[-3000:]}")


def sign_up_owner(server: LiveServer, docs: int = 5) -> tuple[str, int]:
    """Registers the first account and a few docs; returns (Cookie header value, organisation id)."""
    status, headers, body = server.request("POST", "/api/auth/register-first", body=FIRST)
    assert status == 201, (status, body)
    cookie = headers["set-cookie"].split(";", 1)[0]
    org = json.loads(body)["active_organisation_id"]
    for i in range(docs):
        status, _, body = server.request("POST", f"/api/organisations/{org}/records", cookie=cookie, body={
            "type": "doc", "scope": {"kind": "organisation"}, "title": f"Doc {i}", "body": "text"})
        assert status == 201, (status, body)
    return cookie, org


@dataclass
class LoadResult:
    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # connection failures, time-outs

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")


def hammer(server: LiveServer, path: str, *, clients: int, requests_per_client: int | None = None,
           seconds: float | None = None, cookie: str | None = None, timeout: float = 60) -> LoadResult:
    """``clients`` threads each sending GET ``path`` on its own keep-alive connection, either
    ``requests_per_client`` times or for ``seconds`` (both bounded)."""
    assert requests_per_client or seconds
    result = LoadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + (seconds or 600)

    def client() -> None:
        conn = server.connection(timeout)
        sent = 0
        try:
            while time.monotonic() < deadline and (requests_per_client is None or sent < requests_per_client):
                sent += 1
                start = time.perf_counter()
                try:
                    status, _, _ = send(conn, "GET", path, cookie=cookie)
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        result.errors.append(f"{type(exc).__name__}: {exc}")
                    conn.close()
                    conn = server.connection(timeout)
                    continue
                with lock:
                    result.statuses[status] += 1
                    result.latencies.append(time.perf_counter() - start)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def together(*loads) -> list[LoadResult]:
    """Runs several ``hammer`` calls (zero-argument callables) at the same time."""
    results: list[LoadResult | None] = [None] * len(loads)

    def run(i: int) -> None:
        results[i] = loads[i]()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(loads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results  # type: ignore[return-value]
