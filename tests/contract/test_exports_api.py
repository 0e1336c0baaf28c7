"""Exports over the API and through the job worker: who may request what, what a file contains, who may
download it, the headers it is sent with, the audit trail, and retention (with an injected clock)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.contract.org_world import World
from tow_http.composition import build_job_worker


@pytest.fixture
def world(make_container, tmp_path):
    container = make_container(f"exports:\n  export_storage_path: {tmp_path / 'exports'}\n")
    world = World(container)
    world.create(world.ada, type="doc", scope={"kind": "organisation"}, title="Handbook", body="Welcome")
    world.create(world.ada, type="doc", scope=world.scope("SEC"), title="Pen test plan", body="secret")
    world.create(world.ada, type="memory", scope=world.scope("APP"), title="APP ships monthly",
                 fields={"memory_type": "fact"})
    world.create(world.bob, type="doc", scope={"kind": "user", "id": world.bob_id}, title="Bob's own notes", body="mine")
    world.create(world.cy, type="doc", scope={"kind": "user", "id": world.cy_id}, title="Cy's own notes", body="hers")
    return world


def drain(world: World, clock=None) -> int:
    container = world.container
    return build_job_worker(container.engine(), container.config(), container.export_files(),
                            container.upload_store(), clock=clock).drain()


def request(world: World, client, kind: str = "member") -> dict:
    response = client.post(f"{world.base}/exports", json={"kind": kind})
    assert response.status_code == 202, response.text
    return response.json()


def download(client, export: dict):
    return client.get(f"/api/exports/{export['id']}/download")


def titles(document: dict) -> set[str]:
    return {r["title"] for r in document["records"]}


def test_a_member_export_holds_what_the_member_can_read_and_their_private_records(world):
    export = request(world, world.bob)
    assert export["status"] == "queued" and export["download_url"] is None
    assert drain(world) == 1
    shown = world.bob.get(f"/api/exports/{export['id']}").json()
    assert shown["status"] == "completed" and shown["download_url"] == f"/api/exports/{export['id']}/download"
    response = download(world.bob, export)
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "private" in response.headers["cache-control"]
    document = json.loads(response.content)
    assert (document["format"], document["version"], document["kind"]) == ("tow-export", 1, "member")
    # Bob: organisation doc, APP (viewer grant) and his own notes; not SEC, not Cy's private notes.
    assert titles(document) == {"Handbook", "APP ships monthly", "Bob's own notes"}
    assert "people" not in document and "members" not in document


def test_an_organisation_export_has_the_structure_and_no_private_records(world):
    export = request(world, world.ada, "organisation")
    drain(world)
    document = download(world.ada, export).json()
    assert document["kind"] == "organisation"
    assert titles(document) == {"Handbook", "Pen test plan", "APP ships monthly"}
    assert {m["user"] for m in document["members"]} == {"ada@example.com", "bob@example.com", "cy@example.com"}
    assert [p["key"] for p in document["projects"]] == ["APP", "OPS", "SEC"]
    app = document["projects"][0]
    assert app["grants"] == [{"user": "bob@example.com", "group": None, "role": "viewer",
                              "created_at": app["grants"][0]["created_at"]}]
    assert {"prefix": "DOC", "last_number": 4} in document["sequences"]  # private docs keep their numbers
    assert document["attachments"] == []


def test_only_owners_and_admins_request_the_organisation_export_and_outsiders_get_404(world):
    response = world.bob.post(f"{world.base}/exports", json={"kind": "organisation"})
    assert response.status_code == 403 and response.json()["error"]["field"] == "kind"
    assert world.client().post(f"{world.base}/exports", json={}).status_code == 401
    world.ada.delete(f"{world.base}/members/{world.cy_id}")
    assert world.cy.post(f"{world.base}/exports", json={}).status_code == 404  # no longer a member
    bad = world.bob.post(f"{world.base}/exports", json={"kind": "everything"})
    assert bad.status_code in (400, 422) and "kind" in bad.text


def test_only_the_requester_sees_and_downloads_an_export(world):
    export = request(world, world.ada, "organisation")
    drain(world)
    for other in (world.bob, world.cy):
        assert download(other, export).status_code == 404
        assert other.get(f"/api/exports/{export['id']}").status_code == 404
        assert export["id"] not in [e["id"] for e in other.get("/api/exports").json()["items"]]
    assert [e["id"] for e in world.ada.get("/api/exports").json()["items"]] == [export["id"]]
    assert world.client().get(f"/api/exports/{export['id']}/download").status_code == 401


def test_a_requester_who_lost_the_access_can_no_longer_download(world):
    export = request(world, world.cy)
    drain(world)
    assert download(world.cy, export).status_code == 200
    assert world.ada.delete(f"{world.base}/members/{world.cy_id}").status_code in (200, 204)
    assert download(world.cy, export).status_code == 404


def test_a_download_before_completion_is_a_conflict(world):
    export = request(world, world.bob)
    response = download(world.bob, export)
    assert response.status_code == 409 and "queued" in response.json()["error"]["message"]


def test_requests_and_downloads_are_audited(world):
    export = request(world, world.bob)
    drain(world)
    download(world.bob, export)
    entries = world.ada.get(f"{world.base}/audit?action=export.requested&action=export.downloaded").json()["items"]
    assert [(e["action"], e["actor_id"], e["target"]) for e in entries] == [
        ("export.downloaded", world.bob_id, f"export:{export['id']}"),
        ("export.requested", world.bob_id, f"export:{export['id']}"),
    ]


def test_exports_are_deleted_after_the_retention_time(world, tmp_path):
    export = request(world, world.bob)
    now = datetime.now(UTC)
    drain(world, clock=lambda: now)
    files = list((tmp_path / "exports").iterdir())
    assert len(files) == 1
    drain(world, clock=lambda: now + timedelta(hours=47, minutes=59))
    assert download(world.bob, export).status_code == 200
    drain(world, clock=lambda: now + timedelta(hours=48, seconds=1))
    assert list((tmp_path / "exports").iterdir()) == []
    assert world.bob.get(f"/api/exports/{export['id']}").status_code == 404


def test_tow_worker_once_runs_the_queued_exports(world, tmp_path, fresh_database_url, capsys):
    from tests.contract.conftest import SECRET
    from tow_http import cli

    export = request(world, world.bob)
    (tmp_path / ".env").write_text(f"APP_SECRET={SECRET}\nDATABASE_URL={fresh_database_url}\n")
    assert cli.main(["--config", str(tmp_path / "tow0.yaml"), "worker", "--once"]) == 0
    assert "ran 1 job(s)" in capsys.readouterr().out
    assert world.bob.get(f"/api/exports/{export['id']}").json()["status"] == "completed"
    assert download(world.bob, export).status_code == 200


def test_an_export_that_cannot_be_written_fails_without_leaking_internals(make_container, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    world = World(make_container(f"jobs:\n  max_attempts: 1\nexports:\n  export_storage_path: {blocked}\n"))
    export = request(world, world.bob)
    drain(world)
    shown = world.bob.get(f"/api/exports/{export['id']}").json()
    assert shown["status"] == "failed" and shown["download_url"] is None
    assert "request a new one" in shown["error"] and str(blocked) not in shown["error"]
    assert download(world.bob, export).status_code == 409


def test_a_member_export_lists_only_attachments_of_records_the_member_can_read(world):
    for display_id, name in (("DOC-1", "open.txt"), ("DOC-2", "pentest.txt")):  # Handbook, Pen test plan (SEC)
        upload = world.ada.post(f"{world.base}/uploads", params={"filename": name}, content=name.encode(),
                                headers={"content-type": "application/octet-stream"}).json()
        assert world.ada.put(f"{world.base}/records/{display_id}/attachments/{upload['id']}").status_code == 200
    export = world.bob.post(f"{world.base}/exports", json={"include_attachment_contents": True}).json()
    drain(world)
    attachments = download(world.bob, export).json()["attachments"]
    assert [(a["record"], a["original_name"], a["content_base64"]) for a in attachments] == [
        ("DOC-1", "open.txt", "b3Blbi50eHQ=")]
