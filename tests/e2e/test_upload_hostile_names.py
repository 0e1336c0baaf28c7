"""Hostile file names never write outside the upload root (issue 5 item 7).

Every generated name goes through the real upload use case into the real ``FsUploadStore`` and
``PgUploadRecords``; afterwards the whole sandbox around the root is scanned: every file must be a
sharded, server-named file inside the root, and every stored original name must be the sanitised one.
A second run sends names through the HTTP API (query parameter, header and multipart form).
``HOSTILE_STATS`` feeds the pytest terminal summary.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.org_world import World, shared_world
from tests.unit.test_upload_names import assert_safe, hostile_names
from tow_adapters.fs_upload_store import FsUploadStore
from tow_adapters.pillow_images import PillowRasterImageInspector
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.records import PgRecordStore
from tow_adapters.postgres.uploads import PgUploadRecords
from tow_core.access import OrgRole, Principal
from tow_core.attachments import UploadDesk, upload_file
from tow_core.identity import WorkflowMode
from tow_core.uploads import sanitise_filename

HOSTILE_STATS = {"names": 0, "outside_writes": 0}
SHARDED = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{32}")


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file() or p.is_symlink()]


def check_sandbox(sandbox: Path, root: Path) -> None:
    for path in files_under(sandbox):
        relative = path.relative_to(sandbox)
        inside = path.resolve().is_relative_to(root) and SHARDED.fullmatch(str(path.relative_to(root)))
        if not inside:
            HOSTILE_STATS["outside_writes"] += 1
        assert inside, f"a file appeared outside the upload store's layout: {relative}"


def test_a_thousand_hostile_names_through_the_use_case_write_nothing_outside_the_root(engine, tmp_path):
    PgSchemaMigrator(engine).upgrade()
    sandbox = tmp_path / "sandbox"
    root = (sandbox / "uploads").resolve()
    (sandbox / "elsewhere").mkdir(parents=True)
    store = FsUploadStore(root)
    with engine.begin() as conn:
        directory = PgDirectory(conn)
        user = directory.add_user("eve@example.com", "Eve", None, server_admin=False)
        org = directory.add_organisation("Acme", WorkflowMode.FOUNDER)
        directory.set_membership(org.id, user.id, OrgRole.MEMBER)
    principal = Principal.build(user.id, org_roles={org.id: OrgRole.MEMBER})
    images = PillowRasterImageInspector()

    with engine.begin() as conn:  # one transaction for all of them: the file system is what is under test
        desk = UploadDesk(principal, PgUploadRecords(conn), store, PgRecordStore(conn), PgDirectory(conn),
                          datetime.now(UTC))

        @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(name=hostile_names, body=st.binary(max_size=64))
        def upload_one(name, body):
            stored = upload_file(desk, images, org_id=org.id, chunks=[body], original_name=name, max_bytes=1024)
            HOSTILE_STATS["names"] += 1
            assert stored.original_name == sanitise_filename(name)
            assert_safe(stored.original_name)
            with store.open(stored.storage_name) as content:
                assert content.read() == body

        upload_one()
        rows = conn.execute(sa.text("SELECT storage_name, original_name FROM uploads")).all()
    check_sandbox(sandbox, root)
    assert len(rows) >= 1000
    assert {name for name, _ in rows} == {e.storage_name for e in store.entries()}
    for _, original in rows:
        assert_safe(original)


@pytest.fixture
def http_world(embedded_postgres, tmp_path_factory):
    yield from shared_world(embedded_postgres, tmp_path_factory, "hostile_http")


def test_hostile_names_over_http_in_query_header_and_form(http_world: World):
    world = http_world
    root = world.container.upload_store().root
    sandbox = root.parent
    url = f"{world.base}/uploads"
    # Lone surrogates cannot be sent as UTF-8 at all; every other hostile name can.
    encodable = hostile_names.filter(lambda n: not any(0xD800 <= ord(c) <= 0xDFFF for c in n))

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(name=encodable, how=st.sampled_from(["query", "header", "form"]))
    def upload_one(name, how):
        if how == "query":
            response = world.ada.post(url, params={"filename": name}, content=b"q")
        elif how == "header":
            response = world.ada.post(url, headers={"x-filename": quote(name, safe="")}, content=b"h")
        else:
            response = world.ada.post(url, files={"file": (name, b"f")})
        HOSTILE_STATS["names"] += 1
        if "\x00" in name and how != "form":  # text with NUL is refused at the edge (tow_http.input_guard)
            assert response.status_code == 400, response.text
            assert response.json()["error"]["field"] == {"query": "filename", "header": "x-filename"}[how]
            return
        assert response.status_code == 201, response.text
        kept = response.json()["name"]
        assert_safe(kept)
        if how != "form":  # multipart filenames pass through the client's own quoting first
            assert kept == sanitise_filename(name)

    upload_one()
    for path in files_under(sandbox):
        if path.name.endswith(".yaml"):
            continue  # the test's own configuration file
        inside = path.resolve().is_relative_to(root) and SHARDED.fullmatch(str(path.relative_to(root)))
        if not inside:
            HOSTILE_STATS["outside_writes"] += 1
        assert inside, f"a file appeared outside the upload store's layout: {path}"
