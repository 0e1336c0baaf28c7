"""Memory diffs over HTTP on a real PostgreSQL: propose → review → apply, staleness, and the access
rules attacked from every side (another organisation, an ungranted member, a viewer, a reviewer who
cannot read an item the diff changes)."""

from __future__ import annotations

import pytest

FIRST = {"email": "ada@example.com", "display_name": "Ada", "password": "correct horse battery",
         "organisation_name": "Acme"}


def join(inviter, org, client, email, name):
    token = inviter.post(f"/api/organisations/{org}/invites", json={}).json()["token"]
    response = client.post("/api/auth/register", json={"invite_token": token, "email": email, "display_name": name,
                                                       "password": "another good password"})
    assert response.status_code in (200, 201), response.text
    return response.json()["id"]


@pytest.fixture
def world(app_client):
    """Ada owns Acme; Bob is a member, *viewer* on the restricted project APP and not granted SEC
    (restricted). Eve belongs only to another organisation."""
    ada, bob, eve = app_client(), app_client(), app_client()
    org = ada.post("/api/auth/register-first", json=FIRST).json()["active_organisation_id"]
    bob_id = join(ada, org, bob, "bob@example.com", "Bob")
    other = ada.post("/api/organisations", json={"name": "Other"}).json()["id"]
    join(ada, other, eve, "eve@example.com", "Eve")
    projects = {key: ada.post(f"/api/organisations/{org}/projects",
                              json={"key": key, "name": key, "visibility": "restricted"}).json()["id"]
                for key in ("APP", "SEC")}
    ada.post(f"/api/organisations/{org}/projects/{projects['APP']}/grants", json={"user_id": bob_id, "role": "viewer"})
    return {"ada": ada, "bob": bob, "eve": eve, "org": org, "projects": projects}


def item(client, org, title, scope=None, **fields):
    response = client.post(f"/api/organisations/{org}/records", json={
        "type": "memory", "scope": scope or {"kind": "organisation"}, "title": title,
        "fields": {"memory_type": "fact", **fields}})
    assert response.status_code == 201, response.text
    return response.json()


def propose(client, org, operations, scope=None, expect=201, **extra):
    response = client.post(f"/api/organisations/{org}/memory-diffs",
                           json={"scope": scope or {"kind": "organisation"}, "operations": operations, **extra})
    assert response.status_code == expect, response.text
    return response.json()


def record(client, org, display_id):
    return client.get(f"/api/organisations/{org}/records/{display_id}").json()


def test_approval_applies_every_operation_and_created_items_are_searchable(world):
    ada, org = world["ada"], world["org"]
    source = ada.post(f"/api/organisations/{org}/records", json={
        "type": "doc", "scope": {"kind": "organisation"}, "title": "Release notes"}).json()["display_id"]
    weekly = item(ada, org, "We ship weekly")  # MEM-1
    friday = item(ada, org, "Deploys happen on Fridays")  # MEM-2
    old = item(ada, org, "Staging is optional")  # MEM-3
    diff = propose(ada, org, [
        {"op": "create", "title": "We ship continuously", "body": "Every merge deploys.",
         "fields": {"memory_type": "decision", "importance": 5}},
        {"op": "update", "item": "MEM-2", "base_version": 1, "title": "Deploys happen any weekday",
         "fields": {"confidence": 0.8}},
        {"op": "supersede", "items": [{"item": "MEM-1", "base_version": 1}], "by_operation": 0},
        {"op": "archive", "items": [{"item": "MEM-3", "base_version": 1}]},
    ], source="doc", source_id=source, rationale="from the release notes")
    assert diff["status"] == "pending" and diff["outcomes"] == [] and diff["source_id"] == source
    update = diff["operations"][1]["changes"][0]
    assert update["before"] == {"title": friday["title"], "fields": {"confidence": 1.0}}
    assert update["after"] == {"title": "Deploys happen any weekday", "fields": {"confidence": 0.8}}
    assert update["stale"] is None and update["current_version"] == 1
    assert record(ada, org, "MEM-1")["status"] == "active"  # nothing applies before review

    listed = ada.get(f"/api/organisations/{org}/memory-diffs").json()["items"]
    assert [(d["id"], d["status"], d["operation_count"]) for d in listed] == [(diff["id"], "pending", 4)]

    approved = ada.post(f"/api/organisations/{org}/memory-diffs/{diff['id']}/approve")
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved" and body["reviewer_id"] is not None and body["decided_at"]
    assert [o["result"] for o in body["outcomes"]] == ["applied"] * 4
    created = body["outcomes"][0]["display_ids"][0]
    assert created == "MEM-4" and body["operations"][0]["changes"][0]["display_id"] == "MEM-4"
    new = record(ada, org, created)
    assert new["status"] == "active" and new["scope"] == {"kind": "organisation", "id": org}
    assert new["fields"]["source_references"] == [source] and new["fields"]["importance"] == 5
    assert record(ada, org, "MEM-1")["status"] == "superseded"
    assert record(ada, org, "MEM-1")["fields"]["superseded_by"] == "MEM-4"
    assert record(ada, org, "MEM-2")["title"] == "Deploys happen any weekday"
    assert record(ada, org, "MEM-3")["status"] == "archived"
    assert weekly["version"] == old["version"] == 1
    hits = ada.get(f"/api/organisations/{org}/search", params={"q": "continuously"}).json()["items"]
    assert [h["display_id"] for h in hits] == ["MEM-4"]
    again = ada.post(f"/api/organisations/{org}/memory-diffs/{diff['id']}/approve")
    assert again.status_code == 409  # decided diffs never change again


def test_stale_operations_partially_apply_and_an_all_stale_diff_is_refused(world):
    ada, org = world["ada"], world["org"]
    item(ada, org, "Budget is 10k")  # MEM-1
    item(ada, org, "Hiring is frozen")  # MEM-2
    url = f"/api/organisations/{org}/memory-diffs"
    partial = propose(ada, org, [
        {"op": "update", "item": "MEM-1", "base_version": 1, "body": "Budget is 12k"},
        {"op": "archive", "items": [{"item": "MEM-2", "base_version": 1}]},
    ])
    only_stale = propose(ada, org, [{"op": "update", "item": "MEM-1", "base_version": 1, "title": "Budget 15k"}])
    edited = ada.patch(f"/api/organisations/{org}/records/MEM-1", json={"version": 1, "body": "edited directly"})
    assert edited.status_code == 200
    shown = ada.get(f"{url}/{partial['id']}").json()["operations"][0]["changes"][0]
    assert shown["current_version"] == 2 and "changed since the proposal" in shown["stale"]

    refused = ada.post(f"{url}/{only_stale['id']}/approve")
    assert refused.status_code == 409 and "Reject it" in refused.json()["error"]["message"]
    assert ada.get(f"{url}/{only_stale['id']}").json()["status"] == "pending"
    assert record(ada, org, "MEM-1")["body"] == "edited directly"

    body = ada.post(f"{url}/{partial['id']}/approve").json()
    assert body["status"] == "partially_applied"
    assert [(o["result"], o["display_ids"]) for o in body["outcomes"]] == [("stale", ["MEM-1"]),
                                                                        ("applied", ["MEM-2"])]
    assert "now version 2, proposed against 1" in body["outcomes"][0]["reason"]
    assert record(ada, org, "MEM-1")["body"] == "edited directly"
    assert record(ada, org, "MEM-2")["status"] == "archived"

    # proposing against a version that is already outdated is refused up front
    propose(ada, org, [{"op": "update", "item": "MEM-1", "base_version": 1, "title": "x"}], expect=409)


def test_reject_changes_nothing_and_records_the_review(world):
    ada, bob, org = world["ada"], world["bob"], world["org"]
    item(ada, org, "Office opens at 9")
    diff = propose(bob, org, [{"op": "update", "item": "MEM-1", "base_version": 1, "title": "Office opens at 8"},
                              {"op": "create", "title": "Coffee is free", "fields": {"memory_type": "fact"}}])
    url = f"/api/organisations/{org}/memory-diffs/{diff['id']}"
    rejected = ada.post(f"{url}/reject", json={"note": "not agreed"})
    assert rejected.status_code == 200, rejected.text
    body = rejected.json()
    assert (body["status"], body["review_note"], body["outcomes"]) == ("rejected", "not agreed", [])
    assert body["decided_at"] and body["reviewer_id"] is not None
    assert record(ada, org, "MEM-1")["version"] == 1
    assert ada.get(f"/api/organisations/{org}/records", params={"type": "memory"}).json()["items"].__len__() == 1
    assert ada.post(f"{url}/approve").status_code == 409
    assert ada.post(f"{url}/reject").status_code == 409
    assert [d["status"] for d in ada.get(f"/api/organisations/{org}/memory-diffs",
                                         params={"status": "rejected"}).json()["items"]] == ["rejected"]


def test_another_organisation_and_ungranted_members_see_nothing(world):
    ada, bob, eve, org, p = world["ada"], world["bob"], world["eve"], world["org"], world["projects"]
    item(ada, org, "Acme fact")
    sec = {"kind": "project", "id": p["SEC"]}
    item(ada, org, "Pentest finding", scope=sec)  # MEM-2
    open_diff = propose(ada, org, [{"op": "create", "title": "x", "fields": {"memory_type": "fact"}}])
    secret = propose(ada, org, [{"op": "archive", "items": [{"item": "MEM-2", "base_version": 1}]}], scope=sec)
    base = f"/api/organisations/{org}/memory-diffs"
    for diff in (open_diff, secret):
        for path in ("", "/approve", "/reject"):
            call = eve.get if not path else eve.post
            assert call(f"{base}/{diff['id']}{path}").status_code == 404
    assert eve.get(base).status_code == 404
    propose(eve, org, [{"op": "create", "title": "x", "fields": {"memory_type": "fact"}}], expect=404)
    # Bob is a member of Acme, but SEC is restricted and he has no grant
    for path in ("", "/approve", "/reject"):
        call = bob.get if not path else bob.post
        response = call(f"{base}/{secret['id']}{path}")
        assert response.status_code == 404 and "Pentest" not in response.text
    assert [d["id"] for d in bob.get(base).json()["items"]] == [open_diff["id"]]
    propose(bob, org, [{"op": "create", "title": "x", "fields": {"memory_type": "fact"}}], scope=sec, expect=404)
    propose(bob, org, [{"op": "archive", "items": [{"item": "MEM-2", "base_version": 1}]}], expect=404)
    assert ada.get(f"{base}/{secret['id']}").json()["status"] == "pending"


def test_a_viewer_cannot_review_and_nobody_reviews_items_they_cannot_read(world):
    ada, bob, org, p = world["ada"], world["bob"], world["org"], world["projects"]
    app = {"kind": "project", "id": p["APP"]}
    item(ada, org, "APP uses Postgres", scope=app)  # MEM-1, readable by Bob (viewer)
    item(ada, org, "Root keys rotate monthly", scope={"kind": "project", "id": p["SEC"]})  # MEM-2
    base = f"/api/organisations/{org}/memory-diffs"
    in_app = propose(ada, org, [{"op": "update", "item": "MEM-1", "base_version": 1, "title": "APP uses SQLite"}],
                     scope=app)
    assert bob.get(f"{base}/{in_app['id']}").status_code == 200
    assert bob.post(f"{base}/{in_app['id']}/approve").status_code == 403
    assert bob.post(f"{base}/{in_app['id']}/reject").status_code == 403
    propose(bob, org, [{"op": "create", "title": "x", "fields": {"memory_type": "fact"}}], scope=app, expect=403)

    # an organisation-wide diff that also changes an item of SEC: Bob may write the diff's scope, not read MEM-2
    mixed = propose(ada, org, [
        {"op": "create", "title": "Org wide fact", "fields": {"memory_type": "fact"}},
        {"op": "update", "item": "MEM-2", "base_version": 1, "body": "weekly now"},
    ])
    seen = bob.get(f"{base}/{mixed['id']}")
    assert seen.status_code == 200
    hidden = seen.json()["operations"][1]
    assert hidden == {"index": 1, "op": "update", "visible": False, "changes": []}
    assert "MEM-2" not in seen.text and "Root keys" not in seen.text and "weekly now" not in seen.text
    refused = bob.post(f"{base}/{mixed['id']}/approve")
    assert refused.status_code == 404
    assert "MEM-2" not in refused.text and "Root keys" not in refused.text
    assert bob.post(f"{base}/{mixed['id']}/reject").status_code == 404
    assert ada.get(f"{base}/{mixed['id']}").json()["status"] == "pending"
    assert ada.get(f"/api/organisations/{org}/records", params={"type": "memory"}).json()["items"].__len__() == 2
    assert record(ada, org, "MEM-2")["version"] == 1  # nothing applied
    assert ada.post(f"{base}/{mixed['id']}/approve").json()["status"] == "approved"


def test_bad_proposals_are_named_and_the_queue_pages(world):
    ada, org = world["ada"], world["org"]
    item(ada, org, "A fact")
    ada.post(f"/api/organisations/{org}/records", json={"type": "doc", "scope": {"kind": "organisation"},
                                                         "title": "Not memory"})
    empty = ada.post(f"/api/organisations/{org}/memory-diffs", json={"scope": {"kind": "organisation"},
                                                                    "operations": []})
    assert empty.status_code == 400 and empty.json()["error"]["field"] == "operations"  # documented: 1 to 100
    cases = [
        ([{"op": "create", "title": "x"}], "memory_type"),
        ([{"op": "create", "title": "x", "fields": {"memory_type": "fact", "superseded_by": "MEM-1"}}],
         "superseded_by"),
        ([{"op": "update", "item": "MEM-1", "base_version": 1}], "operations"),
        ([{"op": "update", "item": "MEM-1", "base_version": 1, "fields": {"importance": 9}}], "importance"),
        ([{"op": "archive", "items": [{"item": "MEM-1", "base_version": 1}]},
          {"op": "update", "item": "MEM-1", "base_version": 1, "title": "y"}], "operations"),
        ([{"op": "supersede", "items": [{"item": "MEM-1", "base_version": 1}]}], "by"),
        ([{"op": "supersede", "items": [{"item": "MEM-1", "base_version": 1}], "by_operation": 0}], "by_operation"),
    ]
    for operations, field in cases:
        response = ada.post(f"/api/organisations/{org}/memory-diffs",
                            json={"scope": {"kind": "organisation"}, "operations": operations})
        assert response.status_code == 422, (operations, response.text)
        assert response.json()["error"]["field"] == field, (operations, response.text)
    unknown_op = ada.post(f"/api/organisations/{org}/memory-diffs",
                          json={"scope": {"kind": "organisation"}, "operations": [{"op": "delete"}]})
    assert unknown_op.status_code in (400, 422)
    propose(ada, org, [{"op": "archive", "items": [{"item": "DOC-1", "base_version": 1}]}], expect=404)
    propose(ada, org, [{"op": "archive", "items": [{"item": "MEM-9", "base_version": 1}]}], expect=404)

    ids = [propose(ada, org, [{"op": "create", "title": f"fact {n}", "fields": {"memory_type": "fact"}}])["id"]
           for n in range(5)]
    ada.post(f"/api/organisations/{org}/memory-diffs/{ids[-1]}/reject")
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = ada.get(f"/api/organisations/{org}/memory-diffs", params=params).json()
        seen += [(d["id"], d["status"]) for d in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [(i, "pending") for i in reversed(ids[:-1])] + [(ids[-1], "rejected")]
    bad = ada.get(f"/api/organisations/{org}/memory-diffs", params={"cursor": "garbage"})
    assert bad.status_code == 422


def test_citations_in_a_diff_must_be_records_its_proposer_and_reviewer_can_read(world):
    ada, bob, org, projects = world["ada"], world["bob"], world["org"], world["projects"]
    url = f"/api/organisations/{org}/memory-diffs"
    secret = ada.post(f"/api/organisations/{org}/records", json={
        "type": "doc", "scope": {"kind": "project", "id": projects["SEC"]}, "title": "Pen test"}).json()["display_id"]
    known = item(ada, org, "We ship weekly")["display_id"]

    def create_citing(source):
        return [{"op": "create", "title": "A fact", "fields": {"memory_type": "fact", "source_references": [source]}}]

    answers = []
    for source in (secret, "DOC-99"):  # a record Bob cannot read; one that does not exist
        response = propose(bob, org, create_citing(source), expect=422)
        assert response["error"]["field"] == "source_references"
        answers.append(response["error"]["message"].replace(source, "X"))
    assert answers[0] == answers[1]  # nothing tells them apart
    update = [{"op": "update", "item": known, "base_version": 1, "fields": {"source_references": [secret]}}]
    assert propose(bob, org, update, expect=422)["error"]["field"] == "source_references"
    assert propose(bob, org, [{"op": "create", "title": "x", "fields": {"memory_type": "fact"}}],
                   scope={"kind": "project", "id": projects["SEC"]}, expect=404)  # unchanged: scope unreadable

    # Ada can read SEC and proposes; Bob (who can write the organisation scope) cannot apply it, Ada can.
    diff = propose(ada, org, create_citing(secret))
    refused = bob.post(f"{url}/{diff['id']}/approve")
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "source_references"
    assert ada.get(f"{url}/{diff['id']}").json()["status"] == "pending"  # nothing applied
    approved = ada.post(f"{url}/{diff['id']}/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
