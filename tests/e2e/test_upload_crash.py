"""A process killed mid-upload leaves no partial file visible and no row without its file (SPEC §5).

A child process (``upload_crash_child.py``) uploads a slowly streamed file through the real use case,
``FsUploadStore`` and ``PgUploadRecords``, and is SIGKILLed at a random moment — while streaming, while
syncing, between the durable file and the row's commit (every third run aims exactly there), or after
it finished. After every kill: each row's file exists with the recorded size and SHA-256; every visible
file is complete (the expected bytes); leftovers are only temporary files and orphan files, which
``verify_uploads(repair=True)`` quarantines, after which store and rows agree exactly.
A real `tow serve` is also SIGKILLed while an upload's body streams in over HTTP (a quarter, most, all of it
sent), then started again on the same database: the same checks hold, and the session survived the process.
``KILL_STATS`` feeds the pytest terminal summary.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from tow_adapters.fs_upload_store import FsUploadStore
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_core.access import OrgRole
from tow_core.identity import WorkflowMode
from tow_core.upload_integrity import verify_uploads

KILL_STATS = {"runs": 0, "kills": 0, "between_file_and_row": 0, "completed": 0, "orphans": 0, "partials": 0,
              "serve_kills": 0}
RUNS = 20
CHUNKS, CHUNK_SIZE, DELAY = 12, 16 * 1024, 0.01
CHILD = Path(__file__).with_name("upload_crash_child.py")


def expected_content() -> bytes:
    return b"".join(bytes([i % 256]) * CHUNK_SIZE for i in range(CHUNKS))


def wait_for(process: subprocess.Popen, line: str, seen: list[str] | None = None) -> bool:
    while True:
        got = process.stdout.readline()
        if not got:
            return False
        if seen is not None:
            seen.append(got.strip())
        if got.strip() == line:
            return True


def check_consistent(engine: sa.Engine, store: FsUploadStore) -> None:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT storage_name, size_bytes, sha256 FROM uploads")).all()
    whole = expected_content()
    for name, size, sha in rows:  # never a row without its (complete) file
        with store.open(name) as content:
            data = content.read()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha)
    for entry in store.entries():  # every visible file is complete
        if not entry.partial:
            with store.open(entry.storage_name) as content:
                assert content.read() == whole, "a partial file is visible under a storage name"


def test_sigkill_at_random_points_never_leaves_a_partial_file_or_an_orphan_row(engine, fresh_database_url, tmp_path):
    PgSchemaMigrator(engine).upgrade()
    with engine.begin() as conn:
        directory = PgDirectory(conn)
        user = directory.add_user("kim@example.com", "Kim", None, server_admin=False)
        org = directory.add_organisation("Acme", WorkflowMode.FOUNDER)
        directory.set_membership(org.id, user.id, OrgRole.MEMBER)
    root = tmp_path / "uploads"
    store = FsUploadStore(root)
    rng = random.Random(5)
    streaming_seconds = CHUNKS * DELAY
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    forker = subprocess.Popen(
        [sys.executable, str(CHILD), fresh_database_url, str(root), str(org.id), str(user.id), str(CHUNKS),
         str(CHUNK_SIZE), str(DELAY)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        for run in range(RUNS):
            forker.stdin.write("go\n")
            forker.stdin.flush()
            pid_line = forker.stdout.readline()
            assert pid_line.startswith("pid "), pid_line + forker.stderr.read()
            pid = int(pid_line.split()[1])
            assert wait_for(forker, "ready"), forker.stderr.read()
            if run % 3 == 0:  # aim at the window between the durable file and the row's commit
                assert wait_for(forker, "stored"), forker.stderr.read()
                KILL_STATS["between_file_and_row"] += 1
            else:
                time.sleep(rng.uniform(0, streaming_seconds * 1.5))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            seen: list[str] = []
            assert wait_for(forker, "reaped", seen), forker.stderr.read()
            KILL_STATS["completed" if "committed" in seen else "kills"] += 1
            KILL_STATS["runs"] += 1
            check_consistent(engine, store)
    finally:
        forker.stdin.close()
        forker.wait(timeout=30)
        forker.stdout.close()
        forker.stderr.close()

    assert KILL_STATS["kills"] >= RUNS // 2, KILL_STATS
    with engine.connect() as conn:
        names = {row[0] for row in conn.execute(sa.text("SELECT storage_name FROM uploads"))}
    report = verify_uploads(store, names, now=datetime.now(UTC) + timedelta(hours=2), grace=timedelta(hours=1),
                            repair=True)
    KILL_STATS["orphans"] += len(report.orphan_files)
    KILL_STATS["partials"] += len(report.partial_files)
    assert not report.missing_files and report.clean
    assert {e.storage_name for e in store.entries()} == names  # store and rows agree exactly after repair


SERVE_KILLS = (0.25, 0.6, 1.0)  # share of the body sent when `tow serve` is SIGKILLed (1.0: all of it, no answer yet)


def _stream_then_kill(server, org: int, cookie: str, share: float) -> None:
    """POST an upload whose body trickles in, and SIGKILL the server once ``share`` of it was sent."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("POST", f"/api/organisations/{org}/uploads?filename=slow.bin")
        for name, value in (("Content-Length", str(CHUNKS * CHUNK_SIZE)), ("Content-Type", "application/octet-stream"),
                            ("Cookie", cookie), ("Origin", f"http://127.0.0.1:{server.port}")):
            conn.putheader(name, value)
        conn.endheaders()
        content = expected_content()
        for i in range(CHUNKS):
            if i >= share * CHUNKS:
                break
            conn.send(content[i * CHUNK_SIZE:(i + 1) * CHUNK_SIZE])
            time.sleep(DELAY)
        server.process.kill()  # SIGKILL: no cleanup, no answer
        server.process.wait(timeout=20)
    finally:
        conn.close()


def test_tow_serve_killed_mid_upload_leaves_no_partial_file_visible_and_no_row_without_its_file(
        engine, fresh_database_url, tmp_path):
    from tests.live_server import live_server, sign_up_owner

    root = tmp_path / "uploads"
    yaml = f"uploads:\n  upload_storage_path: {root}\n"
    store = FsUploadStore(root)
    owner = None
    for run, share in enumerate(SERVE_KILLS):
        (tmp_path / f"serve{run}").mkdir()
        with live_server(tmp_path / f"serve{run}", yaml, database_url=fresh_database_url) as server:
            if owner is None:
                owner = sign_up_owner(server, docs=0)
            cookie, org = owner  # the session outlives each killed process: it is a row, not process state
            _stream_then_kill(server, org, cookie, share)
            assert not server.alive
        KILL_STATS["serve_kills"] += 1
        check_consistent(engine, store)  # no row without its whole file; no partial file under a stored name
    with engine.connect() as conn:
        names = {row[0] for row in conn.execute(sa.text("SELECT storage_name FROM uploads"))}
    report = verify_uploads(store, names, now=datetime.now(UTC) + timedelta(hours=2), grace=timedelta(hours=1),
                            repair=True)
    assert not report.missing_files and report.clean
    assert {e.storage_name for e in store.entries()} == names
