"""The job worker's housekeeping against PostgreSQL and the filesystem: the files of deleted uploads are
removed after the deletion commits (and only then), finished jobs are purged after the retention unless an
export still names them, and export files no export row names are deleted once older than the grace."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.e2e.org_world import World
from tow_core.housekeeping import ORPHAN_EXPORT_GRACE
from tow_core.upload_integrity import verify_uploads
from tow_http.composition import build_job_worker, upload_row_names


@pytest.fixture
def world(make_container, tmp_path):
    container = make_container(f"uploads:\n  upload_storage_path: {tmp_path / 'uploads'}\n"
                               f"exports:\n  export_storage_path: {tmp_path / 'exports'}\n")
    return World(container)


def drain(world: World, clock=None) -> int:
    c = world.container
    return build_job_worker(c.engine(), c.config(), c.export_files(), c.upload_store(), clock=clock).drain()


def scalar(world: World, statement: str, **params):
    with world.container.engine().connect() as conn:
        return conn.execute(sa.text(statement), params).scalar()


def attached_doc(world: World, title: str, content: bytes = b"confidential minutes\n") -> tuple[dict, str]:
    """A doc with one attachment; returns the doc and the attachment's storage name."""
    doc = world.create(world.ada, type="doc", scope={"kind": "organisation"}, title=title, body="see attachment")
    upload = world.ada.post(f"{world.base}/uploads", params={"filename": "minutes.txt"}, content=content,
                            headers={"content-type": "application/octet-stream"})
    assert upload.status_code == 201, upload.text
    attached = world.ada.put(f"{world.base}/records/{doc['display_id']}/attachments/{upload.json()['id']}")
    assert attached.status_code == 200, attached.text
    name = scalar(world, "SELECT storage_name FROM uploads WHERE id = :id", id=upload.json()["id"])
    assert world.container.upload_store().exists(name)
    return doc, name


def assert_verify_clean(world: World) -> None:
    report = verify_uploads(world.container.upload_store(), upload_row_names(world.container),
                            now=datetime.now(UTC), grace=timedelta(0), repair=False)
    assert (report.orphan_files, report.partial_files, report.missing_files) == ([], [], [])


def test_deleting_a_doc_removes_its_attachments_file_once_the_worker_ran(world):
    doc, name = attached_doc(world, "Board minutes")
    _, kept = attached_doc(world, "Other minutes")
    assert world.ada.delete(f"{world.base}/docs/{doc['display_id']}").status_code == 204
    # The deletion committed; the file waits for the worker, queued in the same transaction.
    assert scalar(world, "SELECT count(*) FROM upload_deletions WHERE storage_name = :n", n=name) == 1
    drain(world)
    store = world.container.upload_store()
    assert not store.exists(name)
    assert store.exists(kept)
    assert scalar(world, "SELECT count(*) FROM upload_deletions") == 0
    assert_verify_clean(world)


def test_a_rolled_back_deletion_keeps_the_file_and_the_row(world):
    doc, name = attached_doc(world, "Board minutes")
    with world.container.engine().connect() as conn:
        transaction = conn.begin()
        conn.execute(sa.text("DELETE FROM records WHERE organisation_id = :org"), {"org": world.org})
        assert conn.execute(sa.text("SELECT count(*) FROM upload_deletions")).scalar() == 1
        transaction.rollback()
    drain(world)
    assert world.container.upload_store().exists(name)
    upload_id = scalar(world, "SELECT id FROM uploads WHERE storage_name = :n", n=name)
    assert world.ada.get(f"/api/uploads/{upload_id}/content").content == b"confidential minutes\n"
    assert_verify_clean(world)


def test_an_upload_deleted_without_its_after_commit_cleanup_still_loses_its_file(world):
    """The API deletes the file after the response; a process killed before that relies on the outbox."""
    _, name = attached_doc(world, "Board minutes")
    world.sql("DELETE FROM uploads WHERE storage_name = :n", n=name)  # as the API's transaction does
    drain(world)
    assert not world.container.upload_store().exists(name)
    assert_verify_clean(world)


def test_deleting_an_upload_through_the_api_leaves_nothing_queued(world):
    _, name = attached_doc(world, "Board minutes")
    upload_id = scalar(world, "SELECT id FROM uploads WHERE storage_name = :n", n=name)
    assert world.ada.delete(f"/api/uploads/{upload_id}").status_code == 204
    drain(world)
    assert not world.container.upload_store().exists(name)
    assert scalar(world, "SELECT count(*) FROM upload_deletions") == 0


def test_a_deleted_organisation_takes_every_file_with_it(world):
    _, first = attached_doc(world, "Board minutes")
    _, second = attached_doc(world, "Budget")
    with world.container.engine().begin() as conn:  # TOW has no API for it yet: as an operator would
        conn.execute(sa.text("DELETE FROM organisations WHERE id = :org"), {"org": world.org})
    drain(world)
    store = world.container.upload_store()
    assert not store.exists(first) and not store.exists(second)
    assert_verify_clean(world)


def test_a_crash_after_the_file_went_but_before_the_outbox_row_did_is_finished_by_the_next_run(world):
    _, name = attached_doc(world, "Board minutes")
    world.sql("DELETE FROM uploads WHERE storage_name = :n", n=name)
    world.container.upload_store().delete(name)  # the first run got this far, then died
    drain(world)
    assert scalar(world, "SELECT count(*) FROM upload_deletions") == 0
    assert_verify_clean(world)


def test_a_file_an_upload_row_names_again_is_not_deleted(world):
    """A restore can put back a row whose deletion is still queued: the row wins, its file stays."""
    _, name = attached_doc(world, "Board minutes")
    world.sql("INSERT INTO upload_deletions (storage_name) VALUES (:n)", n=name)
    drain(world)
    assert world.container.upload_store().exists(name)
    assert scalar(world, "SELECT count(*) FROM upload_deletions") == 0
    assert_verify_clean(world)


# --- finished jobs --------------------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def add_job(world: World, status: str, finished_at: datetime | None, *, run_after: datetime = T0) -> int:
    with world.container.engine().begin() as conn:
        return conn.execute(sa.text(
            "INSERT INTO jobs (kind, status, run_after, lease_expires_at, created_at, finished_at) VALUES "
            "('cleanup.probe', :status, :run_after, CASE WHEN :status = 'running' THEN :far END, :t0, :finished) "
            "RETURNING id"),
            {"status": status, "run_after": run_after, "far": T0 + timedelta(days=365), "t0": T0 - timedelta(days=9),
             "finished": finished_at}).scalar_one()


def test_finished_jobs_are_purged_after_the_retention_but_never_one_an_export_names(world):
    retention = timedelta(hours=world.container.config().settings.exports.retention_hours)
    now = T0 + timedelta(days=30)
    old_completed = add_job(world, "completed", now - retention - timedelta(minutes=1))
    old_failed = add_job(world, "failed", now - retention - timedelta(hours=5))
    recent_completed = add_job(world, "completed", now - retention + timedelta(minutes=1))
    waiting = add_job(world, "queued", None, run_after=now + timedelta(days=1))
    running = add_job(world, "running", None)
    named_by_export = add_job(world, "completed", now - retention - timedelta(days=3))
    world.sql("INSERT INTO exports (organisation_id, requested_by, kind, job_id, created_at, expires_at) "
              "VALUES (:org, :ada, 'member', :job, :t, :expires)",
              org=world.org, ada=world.ada_id, job=named_by_export, t=T0, expires=now + timedelta(hours=1))

    drain(world, clock=lambda: now)

    remaining = {row for row in range(old_completed, named_by_export + 1)
                 if scalar(world, "SELECT count(*) FROM jobs WHERE id = :id", id=row)}
    assert remaining == {recent_completed, waiting, running, named_by_export}
    assert old_failed not in remaining


def test_an_exports_job_goes_once_the_export_expired(world):
    export = world.bob.post(f"{world.base}/exports", json={"kind": "member"}).json()
    real_now = datetime.now(UTC)
    drain(world, clock=lambda: real_now)
    job_id = scalar(world, "SELECT job_id FROM exports WHERE id = :id", id=export["id"])
    retention = timedelta(hours=world.container.config().settings.exports.retention_hours)
    drain(world, clock=lambda: real_now + retention - timedelta(minutes=1))
    assert scalar(world, "SELECT count(*) FROM jobs WHERE id = :id", id=job_id) == 1
    drain(world, clock=lambda: real_now + retention + timedelta(minutes=1))
    assert scalar(world, "SELECT count(*) FROM exports WHERE id = :id", id=export["id"]) == 0
    assert scalar(world, "SELECT count(*) FROM jobs WHERE id = :id", id=job_id) == 0


# --- orphan export files ----------------------------------------------------------------------------------


def age(path, by: timedelta) -> None:
    at = (datetime.now(UTC) - by).timestamp()
    os.utime(path, (at, at))


def test_export_files_no_row_names_are_deleted_after_the_grace_but_a_running_jobs_file_survives(world):
    export = world.bob.post(f"{world.base}/exports", json={"kind": "member"}).json()
    drain(world)
    recorded = scalar(world, "SELECT file_name FROM exports WHERE id = :id", id=export["id"])
    directory = world.container.export_files()
    root = world.container.config().resolve_path(world.container.config().settings.exports.export_storage_path)
    age(root / recorded, ORPHAN_EXPORT_GRACE * 3)  # old, but its row names it
    old_orphan, young_orphan = root / "export-99-0123456789abcdef.json", root / "export-98-0123456789abcdef.json"
    stale_partial, operator_file = root / ".partial-abc123.tmp", root / "README.txt"
    for path in (old_orphan, young_orphan, stale_partial, operator_file):
        path.write_text("{}")
    for path in (old_orphan, stale_partial, operator_file):
        age(path, ORPHAN_EXPORT_GRACE + timedelta(minutes=5))
    age(young_orphan, ORPHAN_EXPORT_GRACE - timedelta(minutes=5))

    with directory.writing("export-97-0123456789abcdef.json") as out:  # a job still writing its export
        out.write('{"format": "tow-export"')
        out.flush()
        drain(world)  # another worker's sweep meanwhile
        out.write("}\n")
    assert (root / "export-97-0123456789abcdef.json").read_text() == '{"format": "tow-export"}\n'

    assert not old_orphan.exists() and not stale_partial.exists()
    assert young_orphan.exists() and operator_file.exists() and (root / recorded).exists()
    assert world.bob.get(f"/api/exports/{export['id']}/download").status_code == 200
