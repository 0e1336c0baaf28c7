"""Upload store throughput and memory: streaming a large file in and out never holds it in memory.

Writes one file of SIZE_MIB through ``FsUploadStore.put`` from a generator of 64 KiB chunks (what the
HTTP layer hands it), then reads it back in 64 KiB chunks the way downloads do, and reports MiB/s and
the process's peak RSS growth (``resource.getrusage``). Run: ``.venv/bin/python bench/uploads.py [SIZE_MIB]``.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

from tow_adapters.fs_upload_store import FsUploadStore

CHUNK = 64 * 1024


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    block = os.urandom(CHUNK)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        store = FsUploadStore(Path(tmp) / "uploads")
        baseline = peak_rss_mib()
        started = time.perf_counter()
        stored = store.put((block for _ in range(size_mib * 1024 * 1024 // CHUNK)), max_bytes=size_mib * 1024 * 1024)
        write_seconds = time.perf_counter() - started
        started = time.perf_counter()
        with store.open(stored.storage_name) as content:
            while content.read(CHUNK):
                pass
        read_seconds = time.perf_counter() - started
        growth = peak_rss_mib() - baseline
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}")
    print(f"file: {size_mib} MiB in {CHUNK // 1024} KiB chunks")
    print(f"write (hash + fsync + rename): {write_seconds:.2f} s = {size_mib / write_seconds:.0f} MiB/s")
    print(f"read back: {read_seconds:.2f} s = {size_mib / read_seconds:.0f} MiB/s")
    print(f"peak RSS growth: {growth:.1f} MiB (file size {size_mib} MiB)")


if __name__ == "__main__":
    main()
