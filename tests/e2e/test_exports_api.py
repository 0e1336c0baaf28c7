"""Exports over the API and through the job worker: who may request what, what a file contains, who may
download it, the headers it is sent with, the audit trail, and retention (with an injected clock)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.org_world import World
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
    from tests.postgres_fixtures import SECRET
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


# --- SPEC §2 immediate revocation, exports included: a file is refused once its requester's access shrinks ---


def group_with(world: World, name: str, *members: int) -> int:
    group = world.ada.post(f"{world.base}/groups", json={"name": name})
    assert group.status_code == 201, group.text
    for user_id in members:
        assert world.ada.put(f"{world.base}/groups/{group.json()['id']}/members/{user_id}").status_code == 200
    return group.json()["id"]


def assert_refused(world: World, client, export: dict, reason: str, because: str) -> None:
    """Refused on every path that shows the export, with the reason, and audited; the file is not sent."""
    response = download(client, export)
    assert response.status_code == 404, response.text
    message = response.json()["error"]["message"]
    assert because in message and "request a new one" in message and "content-disposition" not in response.headers
    shown = client.get(f"/api/exports/{export['id']}").json()
    assert shown["download_url"] is None and because in shown["refused"]
    listed = {e["id"]: e for e in client.get("/api/exports").json()["items"]}[export["id"]]
    assert listed["download_url"] is None and listed["refused"] == shown["refused"]
    refusals = world.ada.get(f"{world.base}/audit?action=export.download_refused").json()["items"]
    assert refusals[0]["target"] == f"export:{export['id']}" and refusals[0]["details"]["reason"] == reason


def test_an_export_made_in_a_group_is_refused_once_its_requester_leaves_the_group(world):
    red = group_with(world, "Red", world.cy_id)
    plans = world.create(world.ada, type="doc", scope={"kind": "group", "id": red}, title="Red plans", body="red")
    assert world.cy.get(f"{world.base}/records/{plans['display_id']}").status_code == 200
    export = request(world, world.cy)
    drain(world)
    assert "Red plans" in titles(download(world.cy, export).json())
    assert world.ada.delete(f"{world.base}/groups/{red}/members/{world.cy_id}").status_code in (200, 204)
    assert world.cy.get(f"{world.base}/records/{plans['display_id']}").status_code == 404  # gone for her ...
    assert_refused(world, world.cy, export, "access_shrank", "your access changed")  # ... and so is the file
    page = world.cy.get(f"/o/{world.org}/exports").text
    assert "Not downloadable: your access changed" in page and f"/api/exports/{export['id']}/download" not in page
    again = request(world, world.cy)
    drain(world)
    response = download(world.cy, again)
    assert response.status_code == 200 and "Red plans" not in titles(response.json())


def test_an_export_is_refused_once_a_direct_project_grant_is_revoked(world):
    export = request(world, world.bob)  # Bob is a viewer of the restricted APP
    drain(world)
    assert "APP ships monthly" in titles(download(world.bob, export).json())
    grants = world.ada.get(f"{world.base}/projects/{world.projects['APP']}/grants").json()
    grant = next(g for g in grants if g["user_id"] == world.bob_id)
    assert world.ada.delete(f"{world.base}/projects/{world.projects['APP']}/grants/{grant['id']}").status_code in (
        200, 204)
    assert_refused(world, world.bob, export, "access_shrank", "your access changed")


def test_an_export_is_refused_once_a_grant_through_a_group_is_revoked(world):
    blue = group_with(world, "Blue", world.cy_id)
    grant = world.ada.post(f"{world.base}/projects/{world.projects['SEC']}/grants",
                           json={"group_id": blue, "role": "viewer"}).json()
    export = request(world, world.cy)
    drain(world)
    assert "Pen test plan" in titles(download(world.cy, export).json())
    world.ada.delete(f"{world.base}/projects/{world.projects['SEC']}/grants/{grant['id']}")
    assert_refused(world, world.cy, export, "access_shrank", "your access changed")


def test_an_export_is_refused_once_an_open_project_becomes_restricted(world):
    world.create(world.ada, type="doc", scope=world.scope("OPS"), title="Runbook", body="ops")
    export = request(world, world.cy)
    drain(world)
    assert "Runbook" in titles(download(world.cy, export).json())
    patched = world.ada.patch(f"{world.base}/projects/{world.projects['OPS']}", json={"visibility": "restricted"})
    assert patched.status_code == 200, patched.text
    assert_refused(world, world.cy, export, "access_shrank", "your access changed")


def test_exports_are_refused_once_the_requesters_organisation_role_is_lowered(world):
    assert world.ada.patch(f"{world.base}/members/{world.cy_id}", json={"role": "admin"}).status_code == 200
    mine, whole = request(world, world.cy), request(world, world.cy, "organisation")
    drain(world)
    assert "Pen test plan" in titles(download(world.cy, mine).json())  # an admin reads every project
    assert download(world.cy, whole).status_code == 200
    assert world.ada.patch(f"{world.base}/members/{world.cy_id}", json={"role": "member"}).status_code == 200
    assert_refused(world, world.cy, whole, "no_longer_owner_or_admin", "owners and admins")
    assert_refused(world, world.cy, mine, "access_shrank", "your access changed")


def test_an_export_is_refused_once_its_requester_is_removed_from_the_organisation(world):
    export = request(world, world.cy)
    drain(world)
    assert world.ada.delete(f"{world.base}/members/{world.cy_id}").status_code in (200, 204)
    response = download(world.cy, export)
    assert response.status_code == 404 and "no longer a member" in response.json()["error"]["message"]
    assert world.cy.get(f"/api/exports/{export['id']}").json()["download_url"] is None
    refusals = world.ada.get(f"{world.base}/audit?action=export.download_refused").json()["items"]
    assert [(e["actor_id"], e["details"]["reason"]) for e in refusals] == [(world.cy_id, "left_organisation")]


def test_an_export_still_downloads_when_its_requesters_access_grew_or_shrank_outside_it(world):
    empty = group_with(world, "Empty", world.bob_id)  # a group without records
    export = request(world, world.bob)
    drain(world)
    world.ada.post(f"{world.base}/projects/{world.projects['SEC']}/grants", json={"user_id": world.bob_id,
                                                                                  "role": "member"})
    world.ada.patch(f"{world.base}/members/{world.bob_id}", json={"role": "admin"})
    world.ada.delete(f"{world.base}/groups/{empty}/members/{world.bob_id}")  # held nothing of Empty's
    response = download(world.bob, export)
    assert response.status_code == 200 and world.bob.get(f"/api/exports/{export['id']}").json()["refused"] is None
    assert titles(response.json()) == {"Handbook", "APP ships monthly", "Bob's own notes"}  # what it held


def test_the_access_an_export_needs_is_read_when_its_file_is_written_not_when_it_is_requested(world):
    """The worker writes the file later than the request: access gained in between is in the file, so
    it must be what the download is checked against — or the file would outlive that access."""
    green = group_with(world, "Green")
    world.create(world.ada, type="doc", scope={"kind": "group", "id": green}, title="Green plans", body="g")
    export = request(world, world.cy)  # not in Green yet
    world.ada.put(f"{world.base}/groups/{green}/members/{world.cy_id}")
    drain(world)
    assert "Green plans" in titles(download(world.cy, export).json())
    world.ada.delete(f"{world.base}/groups/{green}/members/{world.cy_id}")
    assert_refused(world, world.cy, export, "access_shrank", "your access changed")
    # ... and access lost before the file is written is simply not in it.
    before = request(world, world.bob)
    grants = world.ada.get(f"{world.base}/projects/{world.projects['APP']}/grants").json()
    world.ada.delete(f"{world.base}/projects/{world.projects['APP']}/grants/{grants[0]['id']}")
    drain(world)
    response = download(world.bob, before)
    assert response.status_code == 200 and "APP ships monthly" not in titles(response.json())


def test_an_export_written_before_its_access_was_recorded_is_refused(world):
    export = request(world, world.bob)
    drain(world)
    world.sql("UPDATE exports SET scopes = NULL WHERE id = :id", id=export["id"])  # as migration 0013 left it
    assert_refused(world, world.bob, export, "access_not_recorded", "before TOW recorded")


def test_an_export_holding_only_a_memory_diff_of_a_group_is_refused_once_its_requester_leaves_it(world):
    violet = group_with(world, "Violet", world.cy_id)
    proposed = world.cy.post(f"{world.base}/memory-diffs", json={
        "scope": {"kind": "group", "id": violet}, "rationale": "violet only",
        "operations": [{"op": "create", "title": "Violet ships soon", "fields": {"memory_type": "fact"}}]})
    assert proposed.status_code == 201, proposed.text
    export = request(world, world.cy)
    drain(world)
    document = download(world.cy, export).json()
    assert [d["rationale"] for d in document["memory_diffs"]] == ["violet only"]  # no Violet record, one diff
    world.ada.delete(f"{world.base}/groups/{violet}/members/{world.cy_id}")
    assert_refused(world, world.cy, export, "access_shrank", "your access changed")


def test_openapi_says_an_export_is_refused_once_access_shrinks(world):
    paths = world.ada.get("/api/openapi.json").json()["paths"]
    download_doc = paths["/api/exports/{export_id}/download"]["get"]["description"]
    assert "left a group" in download_doc and "request a new export" in download_doc
    assert "refused" in paths["/api/exports/{export_id}"]["get"]["description"]
    assert "access shrinks" in paths["/api/organisations/{org_id}/exports"]["post"]["description"]
