"""`tow serve` on the embedded PostgreSQL: serves, stops cleanly on SIGTERM/SIGINT, reuses its data."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def running_postgres_for(data_dir: Path) -> list[psutil.Process]:
    """Live (non-zombie) postgres processes serving ``data_dir``."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["status"] != psutil.STATUS_ZOMBIE and "postgres" in (proc.info["name"] or "") and str(
            data_dir
        ) in cmdline:
            found.append(proc)
    return found


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback test server)
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until_ready(base: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"tow serve exited early ({process.returncode}): {err.decode()[-2000:]}")
        try:
            if get(f"{base}/api/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail("tow serve did not become ready")


def start_serving(tmp_path: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["APP_SECRET"] = "l" * 48
    return subprocess.Popen(
        [sys.executable, "-m", "tow_http.cli", "--config", str(tmp_path / "tow.yaml"), "serve", "--migrate"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_serve_stops_its_postgres_on_signal_and_reuses_the_data_directory(tmp_path, stop_signal):
    port = free_port()
    (tmp_path / "tow.yaml").write_text(
        f"runtime:\n  bind_port: {port}\ndatabase:\n  embedded_data_dir: ./pg\n"
    )
    data_dir = (tmp_path / "pg").resolve()
    base = f"http://127.0.0.1:{port}"

    for run in (1, 2):
        process = start_serving(tmp_path, port)
        wait_until_ready(base, process)
        assert get(f"{base}/api/health") == (200, b'{"status":"ok"}')
        assert running_postgres_for(data_dir), "the embedded PostgreSQL should be running while serving"
        if run == 1:
            first_cluster = (data_dir / "global" / "pg_control").stat().st_ino
        else:  # the second run reused the cluster the first one created
            assert (data_dir / "global" / "pg_control").stat().st_ino == first_cluster
        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while running_postgres_for(data_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not running_postgres_for(data_dir), "TOW left its PostgreSQL running"
