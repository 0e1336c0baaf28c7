"""Availability under hostile load, against a real `tow serve` process on loopback (issue 11).

Bounded loads only (counts and seconds), only to 127.0.0.1. Each assertion is what a user relies on:
no 5xx and a live process under mixed load, a cookie-less flood that does not hold up signed-in people,
and SIGTERM stopping the server while it is under load.
"""

from __future__ import annotations

import signal
import statistics
import threading
import time

import pytest

from tests.live_server import hammer, live_server, send, sign_up_owner, together

CRASH_SIGNS = ("Traceback", "generator already executing", "the connection is closed", "QueuePool limit",
               "INTRANS")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("availability")) as running:
        cookie, org = sign_up_owner(running)
        yield running, cookie, org


def test_signed_in_requests_beside_cookie_less_ones_get_no_5xx_and_the_process_lives(server):
    running, cookie, org = server
    for _ in range(2):  # the bug showed on 5 of 6 tries of this mix
        signed, anonymous = together(
            lambda: hammer(running, f"/api/organisations/{org}/records?limit=5", clients=8,
                           requests_per_client=50, cookie=cookie, timeout=30),
            lambda: hammer(running, "/api/me", clients=2, requests_per_client=200, timeout=30))
        assert signed.statuses == {200: 400}, (signed.statuses, signed.errors[:3])
        assert anonymous.statuses == {401: 400}, (anonymous.statuses, anonymous.errors[:3])
        assert running.alive
    assert running.request("GET", "/api/health")[0] == 200
    log = running.log()
    assert not [sign for sign in CRASH_SIGNS if sign in log], log[-3000:]


def _signed_in_latencies(running, cookie: str, path: str, seconds: float) -> list[float]:
    latencies = []
    deadline = time.monotonic() + seconds
    conn = running.connection(timeout=60)
    try:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            status, _, _ = send(conn, "GET", path, cookie=cookie)
            latencies.append(time.perf_counter() - start)
            assert status == 200
            time.sleep(0.05)
    finally:
        conn.close()
    return latencies


def test_a_cookie_less_flood_does_not_hold_up_a_signed_in_request(server):
    running, cookie, org = server
    path = f"/api/organisations/{org}/records?limit=5"
    baseline = statistics.median(_signed_in_latencies(running, cookie, path, 2))
    flood, during = together(
        lambda: hammer(running, path, clients=16, seconds=5, timeout=30),
        lambda: _signed_in_latencies(running, cookie, path, 5))
    assert set(flood.statuses) == {401} and not flood.errors, (flood.statuses, flood.errors[:3])
    flooded = statistics.median(during)
    # Generous: the 16 flooding clients share these two cores with the server. Before the fix the signed-in
    # request waited for the pool's 30 s timeout.
    assert flooded <= max(25 * baseline, 1.0), f"median {flooded * 1000:.0f} ms flooded vs {baseline * 1000:.1f} ms"


def test_sigterm_stops_the_server_while_it_is_under_load(tmp_path):
    with live_server(tmp_path, runtime_yaml="  shutdown_grace_seconds: 3\n") as running:
        cookie, org = sign_up_owner(running, docs=1)
        load = threading.Thread(target=hammer, args=(running, f"/api/organisations/{org}/records"),
                                kwargs={"clients": 8, "seconds": 15, "cookie": cookie, "timeout": 5}, daemon=True)
        load.start()
        time.sleep(1.5)
        running.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert running.process.wait(timeout=30) == 0
        assert time.monotonic() - started < 3 + 10  # the grace period, then PostgreSQL stops
        load.join(timeout=20)
