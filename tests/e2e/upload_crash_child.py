"""Uploader processes for test_upload_crash, forked from this one so that imports are paid once.

For each ``go`` line on stdin this process forks an uploader and prints ``pid N``; the uploader prints
``ready`` once connected, runs one upload through the real use case (streamed slowly, then committed)
and prints ``stored`` when the file is durable but its row not yet committed (then pauses briefly, so
the parent can aim a SIGKILL exactly there), ``committed`` at the end. This process then prints
``reaped`` when the uploader has ended, however it ended.

argv: DATABASE_URL UPLOAD_ROOT ORG_ID USER_ID CHUNKS CHUNK_SIZE DELAY_SECONDS
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime

from tow_adapters.fs_upload_store import FsUploadStore
from tow_adapters.pillow_images import PillowRasterImageInspector
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.records import PgRecordStore
from tow_adapters.postgres.uploads import PgUploadRecords
from tow_core.access import OrgRole, Principal
from tow_core.attachments import UploadDesk, upload_file


class AnnouncingStore(FsUploadStore):
    def put(self, chunks, *, max_bytes):
        stored = super().put(chunks, max_bytes=max_bytes)
        print("stored", flush=True)
        time.sleep(0.05)
        return stored


def upload_once() -> None:
    url, root, org, user, chunks, chunk_size, delay = sys.argv[1:8]
    org_id, user_id, count, size, pause = int(org), int(user), int(chunks), int(chunk_size), float(delay)
    engine = create_engine(url, PoolOptions(pool_size=1, max_overflow=0))
    store = AnnouncingStore(root)
    principal = Principal.build(user_id, org_roles={org_id: OrgRole.MEMBER})

    def slow_body():
        for i in range(count):
            time.sleep(pause)
            yield bytes([i % 256]) * size

    with engine.connect() as warm:  # connect before announcing, so kills land in the upload itself
        warm.exec_driver_sql("SELECT 1")
    print("ready", flush=True)
    with engine.begin() as conn:
        desk = UploadDesk(principal, PgUploadRecords(conn), store, PgRecordStore(conn), PgDirectory(conn),
                          datetime.now(UTC))
        upload_file(desk, PillowRasterImageInspector(), org_id=org_id, chunks=slow_body(), original_name="slow.bin",
                    max_bytes=count * size)
    print("committed", flush=True)


def main() -> None:
    for line in sys.stdin:
        if line.strip() != "go":
            continue
        pid = os.fork()
        if pid == 0:
            try:
                upload_once()
            finally:
                os._exit(0)
        print(f"pid {pid}", flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)


if __name__ == "__main__":
    main()
