"""Records over HTTP on a real PostgreSQL: numbering, access, concurrency, lifecycles, references, search."""

from __future__ import annotations

import pytest

FIRST = {"email": "ada@example.com", "display_name": "Ada", "password": "correct horse battery",
         "organisation_name": "Acme"}


@pytest.fixture
def world(app_client):
    """Ada owns Acme; Bob is a plain member; project APP is restricted with Bob as viewer; OPS is open;
    SEC is restricted without Bob."""
    ada = app_client()
    org = ada.post("/api/auth/register-first", json=FIRST).json()["active_organisation_id"]
    bob = app_client()
    token = ada.post(f"/api/organisations/{org}/invites", json={}).json()["token"]
    bob_id = bob.post("/api/auth/register", json={"invite_token": token, "email": "bob@example.com",
                                                  "display_name": "Bob", "password": "another good password"}).json()["id"]
    projects = {}
    for key, visibility in (("APP", "restricted"), ("OPS", "open"), ("SEC", "restricted")):
        projects[key] = ada.post(f"/api/organisations/{org}/projects",
                                 json={"key": key, "name": key, "visibility": visibility}).json()["id"]
    ada.post(f"/api/organisations/{org}/projects/{projects['APP']}/grants", json={"user_id": bob_id, "role": "viewer"})
    return {"ada": ada, "bob": bob, "org": org, "bob_id": bob_id, "projects": projects}


def create(client, org, **body):
    response = client.post(f"/api/organisations/{org}/records", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_display_ids_follow_type_prefixes_and_project_keys(world):
    ada, org, p = world["ada"], world["org"], world["projects"]
    doc = create(ada, org, type="doc", scope={"kind": "organisation"}, title="Handbook")
    app1 = create(ada, org, type="ticket", scope={"kind": "project", "id": p["APP"]}, title="Login bug",
                  fields={"ticket_type": "bug", "priority": 1})
    app2 = create(ada, org, type="ticket", scope={"kind": "project", "id": p["APP"]}, title="Another")
    tkt = create(ada, org, type="ticket", scope={"kind": "organisation"}, title="Office chairs")
    mem = create(ada, org, type="memory", scope={"kind": "organisation"}, title="We ship weekly",
                 fields={"memory_type": "commitment", "confidence": 0.9})
    assert [doc["display_id"], app1["display_id"], app2["display_id"], tkt["display_id"], mem["display_id"]] == [
        "DOC-1", "APP-1", "APP-2", "TKT-1", "MEM-1"]
    assert app1["fields"]["priority"] == 1 and app1["fields"]["labels"] == [] and app1["status"] == "backlog"
    assert mem["status"] == "active" and mem["fields"]["importance"] == 3


def test_bad_fields_are_named(world):
    """400: the request does not match the OpenAPI document; 422: a rule it cannot state (which fields a type
    takes; the document lists every field's own bounds, which the core checks with 422 too)."""
    ada, org = world["ada"], world["org"]
    cases = [
        ({"type": "memory", "scope": {"kind": "organisation"}, "title": "x"}, 422, "memory_type"),
        ({"type": "ticket", "scope": {"kind": "organisation"}, "title": "x", "fields": {"priority": 9}}, 422,
         "priority"),
        ({"type": "ticket", "scope": {"kind": "organisation"}, "title": "x", "fields": {"colour": "red"}}, 422,
         "colour"),
        ({"type": "doc", "scope": {"kind": "organisation"}, "title": "   "}, 400, "title"),
        ({"type": "doc", "scope": {"kind": "galaxy"}, "title": "x"}, 400, "scope.kind"),
        ({"type": "risk", "scope": {"kind": "organisation"}, "title": "x", "fields": {"severity": "high"}}, 422,
         "severity"),
    ]
    for body, status, field in cases:
        response = ada.post(f"/api/organisations/{org}/records", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["field"] == field


def test_restricted_records_are_invisible_and_viewers_cannot_write(world):
    ada, bob, org, p = world["ada"], world["bob"], world["org"], world["projects"]
    secret = create(ada, org, type="doc", scope={"kind": "project", "id": p["SEC"]}, title="Pentest findings")
    app_doc = create(ada, org, type="doc", scope={"kind": "project", "id": p["APP"]}, title="APP design")
    assert bob.get(f"/api/organisations/{org}/records/{secret['display_id']}").status_code == 404
    assert bob.get(f"/api/organisations/{org}/records/{app_doc['display_id']}").status_code == 200
    denied = bob.patch(f"/api/organisations/{org}/records/{app_doc['display_id']}", json={"version": 1, "title": "x"})
    assert denied.status_code == 403
    assert bob.post(f"/api/organisations/{org}/records", json={
        "type": "doc", "scope": {"kind": "project", "id": p["SEC"]}, "title": "x"}).status_code == 404
    assert bob.post(f"/api/organisations/{org}/records", json={
        "type": "doc", "scope": {"kind": "project", "id": p["APP"]}, "title": "x"}).status_code == 403
    # on an open project every member writes
    assert bob.post(f"/api/organisations/{org}/records", json={
        "type": "doc", "scope": {"kind": "project", "id": p["OPS"]}, "title": "Runbook"}).status_code == 201
    # private scopes are their owner's alone
    mine = create(bob, org, type="doc", scope={"kind": "user", "id": world["bob_id"]}, title="My notes")
    assert ada.get(f"/api/organisations/{org}/records/{mine['display_id']}").status_code == 404
    assert ada.post(f"/api/organisations/{org}/records", json={
        "type": "doc", "scope": {"kind": "user", "id": world["bob_id"]}, "title": "x"}).status_code == 404
    titles = {r["title"] for r in bob.get(f"/api/organisations/{org}/records").json()["items"]}
    assert titles == {"APP design", "Runbook", "My notes"}
    assert bob.get(f"/api/organisations/{org}/records/count").json() == {"count": 3}


def test_updates_need_the_loaded_version_and_never_overwrite_silently(world):
    ada, org = world["ada"], world["org"]
    doc = create(ada, org, type="doc", scope={"kind": "organisation"}, title="Plan", body="v1")
    url = f"/api/organisations/{org}/records/{doc['display_id']}"
    assert ada.get(url).headers["etag"] == '"1"'
    first = ada.patch(url, json={"body": "v2"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200 and first.json()["version"] == 2
    stale = ada.patch(url, json={"version": 1, "body": "v2 from a stale editor"})
    assert stale.status_code == 409
    assert "current version is 2" in stale.json()["error"]["message"]
    assert ada.get(url).json()["body"] == "v2"
    missing = ada.patch(url, json={"body": "no version"})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "version"


def test_lifecycles_are_enforced(world):
    ada, org = world["ada"], world["org"]
    dec = create(ada, org, type="decision", scope={"kind": "organisation"}, title="Use PostgreSQL",
                 fields={"context": "one database", "decision": "PostgreSQL everywhere"})
    url = f"/api/organisations/{org}/records/{dec['display_id']}"
    assert dec["status"] == "proposed"
    assert ada.patch(url, json={"version": 1, "status": "active"}).status_code == 200
    back = ada.patch(url, json={"version": 2, "status": "proposed"})
    assert back.status_code == 409 and "cannot go from active to proposed" in back.json()["error"]["message"]
    bogus = ada.patch(url, json={"version": 2, "status": "exploded"})
    assert bogus.status_code == 422 and bogus.json()["error"]["field"] == "status"


def test_moving_scope_needs_write_access_to_both(world):
    ada, bob, org, p = world["ada"], world["bob"], world["org"], world["projects"]
    runbook = create(bob, org, type="doc", scope={"kind": "project", "id": p["OPS"]}, title="Runbook")
    url = f"/api/organisations/{org}/records/{runbook['display_id']}"
    to_app = bob.patch(url, json={"version": 1, "scope": {"kind": "project", "id": p["APP"]}})
    assert to_app.status_code == 403  # viewer on APP
    to_sec = bob.patch(url, json={"version": 1, "scope": {"kind": "project", "id": p["SEC"]}})
    assert to_sec.status_code == 404
    private = bob.patch(url, json={"version": 1, "scope": {"kind": "user", "id": world["bob_id"]}})
    assert private.status_code == 200 and private.json()["scope"] == {"kind": "user", "id": world["bob_id"]}
    assert ada.get(url).status_code == 404


def test_references_and_backlinks_only_show_what_both_ends_allow(world):
    ada, bob, org, p = world["ada"], world["bob"], world["org"], world["projects"]
    secret = create(ada, org, type="ticket", scope={"kind": "project", "id": p["SEC"]}, title="Rotate the root keys")
    handbook = create(ada, org, type="doc", scope={"kind": "organisation"}, title="Handbook")
    ticket = create(ada, org, type="ticket", scope={"kind": "organisation"}, title="Update handbook",
                    body=f"See {handbook['display_id']} and {secret['display_id']}.")
    base = f"/api/organisations/{org}/records"
    backlinks = bob.get(f"{base}/{handbook['display_id']}/backlinks").json()
    assert [b["display_id"] for b in backlinks] == [ticket["display_id"]]
    refs_for_bob = bob.get(f"{base}/{ticket['display_id']}/references").json()
    assert [r["display_id"] for r in refs_for_bob] == [handbook["display_id"]]
    assert "Rotate the root keys" not in str(refs_for_bob)
    refs_for_ada = {r["display_id"] for r in ada.get(f"{base}/{ticket['display_id']}/references").json()}
    assert refs_for_ada == {handbook["display_id"], secret["display_id"]}
    assert bob.get(f"{base}/{secret['display_id']}/backlinks").status_code == 404


def test_keyword_search_is_filtered_highlighted_and_follows_the_project(world):
    ada, bob, org, p = world["ada"], world["bob"], world["org"], world["projects"]
    create(ada, org, type="doc", scope={"kind": "project", "id": p["SEC"]}, title="Kubernetes secrets",
           body="kubernetes credentials")
    create(ada, org, type="doc", scope={"kind": "project", "id": p["APP"]}, title="Deploy guide",
           body="We deploy with <b>Kubernetes</b> on Fridays")
    create(ada, org, type="risk", scope={"kind": "organisation"}, title="Kubernetes upgrade risk")
    url = f"/api/organisations/{org}/search"
    hits = bob.get(url, params={"q": "kubernetes"}).json()
    assert hits["mode"] == "keyword"
    assert [h["title"] for h in hits["items"]] == ["Kubernetes upgrade risk", "Deploy guide"]  # title beats body
    guide = hits["items"][1]
    assert "<mark>Kubernetes</mark>" in guide["snippet_html"] and "<b>" not in guide["snippet_html"]
    only_app = bob.get(url, params={"q": "kubernetes", "project": "APP"}).json()["items"]
    assert [h["title"] for h in only_app] == ["Deploy guide"]
    assert bob.get(url, params={"q": "kubernetes", "project": "SEC"}).status_code == 404
    risks = bob.get(url, params={"q": "kubernetes", "type": "risk"}).json()["items"]
    assert [h["type"] for h in risks] == ["risk"]
    assert len(ada.get(url, params={"q": "kubernetes"}).json()["items"]) == 3
    stop_words = bob.get(url, params={"q": "the"})  # nothing to match: an empty answer with a hint, not a 422
    assert stop_words.status_code == 200 and stop_words.json()["items"] == [] and stop_words.json()["hint"]


def test_lookup_resolves_display_ids_and_title_prefixes_readable_only(world):
    ada, bob, org, p = world["ada"], world["bob"], world["org"], world["projects"]
    onboarding = create(ada, org, type="doc", scope={"kind": "organisation"}, title="Onboarding checklist")
    hidden = create(ada, org, type="doc", scope={"kind": "project", "id": p["SEC"]}, title="Onboarding secrets")
    url = f"/api/organisations/{org}/lookup"
    assert [r["title"] for r in bob.get(url, params={"q": "onboard"}).json()] == ["Onboarding checklist"]
    assert [r["display_id"] for r in bob.get(url, params={"q": onboarding["display_id"]}).json()] == ["DOC-1"]
    assert bob.get(url, params={"q": hidden["display_id"]}).json() == []


def test_list_pages_with_a_cursor(world):
    ada, org = world["ada"], world["org"]
    for n in range(7):
        create(ada, org, type="risk", scope={"kind": "organisation"}, title=f"Risk {n}")
    seen, cursor = [], None
    while True:
        params = {"limit": 3, "type": "risk"} | ({"cursor": cursor} if cursor else {})
        page = ada.get(f"/api/organisations/{org}/records", params=params).json()
        seen += [r["title"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(f"Risk {n}" for n in range(7)) and len(seen) == 7
    assert ada.get(f"/api/organisations/{org}/records", params={"cursor": "garbage"}).status_code in (400, 422)


def test_snapshot_text_is_editable_only_before_activation(world):
    ada, org = world["ada"], world["org"]
    snap = create(ada, org, type="snapshot", scope={"kind": "organisation"}, title="State of Acme",
                  fields={"snapshot_type": "current_company_state"})
    url = f"/api/organisations/{org}/records/{snap['display_id']}"
    assert snap["status"] == "pending_review"
    assert ada.patch(url, json={"version": 1, "body": "edited in review"}).status_code == 200
    assert ada.patch(url, json={"version": 2, "status": "active"}).status_code == 200
    late = ada.patch(url, json={"version": 3, "body": "too late"})
    assert late.status_code == 422 and late.json()["error"]["field"] == "body"


def test_activating_a_snapshot_supersedes_the_previous_active_one_of_its_type_and_scope(world):
    ada, org, p = world["ada"], world["org"], world["projects"]
    base = f"/api/organisations/{org}/records"

    def snapshot(title, snapshot_type="weekly_review", scope=None):
        return create(ada, org, type="snapshot", scope=scope or {"kind": "organisation"}, title=title,
                      fields={"snapshot_type": snapshot_type})

    def activate(record):
        response = ada.patch(f"{base}/{record['display_id']}", json={"version": record["version"], "status": "active"})
        assert response.status_code == 200, response.text

    week1, week2 = snapshot("Week 1"), snapshot("Week 2")
    other_type = snapshot("State", "current_company_state")
    other_scope = snapshot("APP week", scope={"kind": "project", "id": p["APP"]})
    for record in (week1, other_type, other_scope):
        activate(record)
    activate(week2)
    status = {r["title"]: r["status"] for r in ada.get(base, params={"type": "snapshot"}).json()["items"]}
    assert status == {"Week 1": "superseded", "Week 2": "active", "State": "active", "APP week": "active"}


# --- SPEC §2 "every ID is checked": ids named in a body belong to the record's organisation ------------------


def other_organisation(world, app_client):
    """Eve belongs only to Other, which has a doc of its own (DOC-1 there)."""
    ada, eve = world["ada"], app_client()
    other = ada.post("/api/organisations", json={"name": "Other"}).json()["id"]
    token = ada.post(f"/api/organisations/{other}/invites", json={}).json()["token"]
    eve_id = eve.post("/api/auth/register", json={"invite_token": token, "email": "eve@example.com",
                                                  "display_name": "Eve", "password": "another good password"}).json()["id"]
    create(ada, other, type="doc", scope={"kind": "organisation"}, title="Other's doc")
    return other, eve_id


def refused(response, field: str) -> str:
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    return response.json()["error"]["message"]


def test_a_risk_owner_must_be_a_member_of_the_organisation(world, app_client):
    ada, org, bob_id = world["ada"], world["org"], world["bob_id"]
    _, eve_id = other_organisation(world, app_client)
    url = f"/api/organisations/{org}/records"
    for owner in (eve_id, 10**9):  # a user of another organisation; no user at all
        body = {"type": "risk", "scope": {"kind": "organisation"}, "title": "Vendor lock-in",
                "fields": {"owner_id": owner}}
        assert "member of the organisation" in refused(ada.post(url, json=body), "owner_id")
    risk = create(ada, org, type="risk", scope={"kind": "organisation"}, title="Vendor lock-in",
                  fields={"owner_id": bob_id})
    assert risk["fields"]["owner_id"] == bob_id
    patched = ada.patch(f"{url}/{risk['display_id']}", json={"version": 1, "fields": {"owner_id": eve_id}})
    refused(patched, "owner_id")
    assert ada.get(f"{url}/{risk['display_id']}").json()["fields"]["owner_id"] == bob_id
    ticket = {"type": "ticket", "scope": {"kind": "organisation"}, "title": "x", "fields": {"assignee_id": eve_id}}
    refused(ada.post(url, json=ticket), "assignee_id")  # the same rule for a ticket's assignee, on create too
    # An owner who left stays the owner of what they owned: ids kept from before are not checked again.
    ada.delete(f"/api/organisations/{org}/members/{bob_id}")
    kept = ada.patch(f"{url}/{risk['display_id']}", json={"version": 1, "fields": {"severity": 5}})
    assert kept.status_code == 200 and kept.json()["fields"]["owner_id"] == bob_id


def test_a_risk_owner_from_the_page_form_is_checked_the_same_way(world, app_client):
    from tests.e2e.test_pages_security import token_of

    ada, org = world["ada"], world["org"]
    _, eve_id = other_organisation(world, app_client)
    form = {"csrf_token": token_of(ada, f"/o/{org}/risks"), "type": "risk", "title": "Key person leaves",
            "scope": "organisation", "severity": "3", "likelihood": "3", "mitigation": "", "owner_id": str(eve_id)}
    response = ada.post(f"/o/{org}/records", follow_redirects=False, data=form)
    assert response.status_code == 422 and "owner_id must name a member of the organisation" in response.text
    assert ada.get(f"/api/organisations/{org}/records", params={"type": "risk"}).json()["items"] == []


def test_an_organisation_scope_naming_another_organisation_is_refused(world, app_client):
    ada, org = world["ada"], world["org"]
    other, _ = other_organisation(world, app_client)
    url = f"/api/organisations/{org}/records"
    foreign = {"kind": "organisation", "id": other}
    refused(ada.post(url, json={"type": "doc", "scope": foreign, "title": "Where?"}), "scope_id")
    refused(ada.post(url, json={"type": "doc", "scope": {"kind": "organisation", "id": 10**9}, "title": "x"}),
            "scope_id")
    doc = create(ada, org, type="doc", scope={"kind": "organisation", "id": org}, title="Here")  # its own id: fine
    refused(ada.patch(f"{url}/{doc['display_id']}", json={"version": 1, "scope": foreign}), "scope_id")
    diff = ada.post(f"/api/organisations/{org}/memory-diffs", json={
        "scope": foreign, "operations": [{"op": "create", "title": "x", "fields": {"memory_type": "fact"}}]})
    refused(diff, "scope_id")
    assert ada.get(f"/api/organisations/{other}/records").json()["items"][0]["title"] == "Other's doc"  # untouched


def test_source_references_must_be_records_the_writer_can_read_and_never_tell_which_exist(world):
    ada, bob, org, p = world["ada"], world["bob"], world["org"], world["projects"]
    handbook = create(ada, org, type="doc", scope={"kind": "organisation"}, title="Handbook")  # DOC-1
    secret = create(ada, org, type="doc", scope={"kind": "project", "id": p["SEC"]}, title="Pen test")  # DOC-2
    plan = create(ada, org, type="doc", scope={"kind": "project", "id": p["APP"]}, title="APP plan")  # DOC-3
    url = f"/api/organisations/{org}/records"

    def memory(client, *sources):
        return client.post(url, json={"type": "memory", "scope": {"kind": "organisation"}, "title": "A fact",
                                      "fields": {"memory_type": "fact", "source_references": list(sources)}})

    unreadable = refused(memory(bob, secret["display_id"]), "source_references")
    missing = refused(memory(bob, "DOC-99"), "source_references")
    assert unreadable == missing.replace("DOC-99", secret["display_id"])  # one answer for both
    assert memory(ada, secret["display_id"]).status_code == 201  # Ada reads SEC
    item = memory(bob, handbook["display_id"], plan["display_id"])
    assert item.status_code == 201 and item.json()["fields"]["source_references"] == ["DOC-1", "DOC-3"]
    mem = item.json()["display_id"]
    adding = bob.patch(f"{url}/{mem}", json={"version": 1, "fields": {"source_references": ["DOC-1", "DOC-2"]}})
    refused(adding, "source_references")
    # A citation that became unreadable later (Bob loses APP) does not block editing what cites it ...
    grant = next(g for g in ada.get(f"/api/organisations/{org}/projects/{p['APP']}/grants").json()
                 if g["user_id"] == world["bob_id"])
    ada.delete(f"/api/organisations/{org}/projects/{p['APP']}/grants/{grant['id']}")
    edited = bob.patch(f"{url}/{mem}", json={"version": 1, "title": "A fact, retitled",
                                               "fields": {"source_references": ["DOC-3", "DOC-1"]}})
    assert edited.status_code == 200, edited.text
    # ... but citing it again once dropped is adding it, and is refused.
    dropped = bob.patch(f"{url}/{mem}", json={"version": 2, "fields": {"source_references": ["DOC-1"]}})
    assert dropped.status_code == 200
    refused(bob.patch(f"{url}/{mem}", json={"version": 3, "fields": {"source_references": ["DOC-1", "DOC-3"]}}),
            "source_references")


def test_openapi_says_which_ids_in_a_body_are_checked(world):
    paths = world["ada"].get("/api/openapi.json").json()["paths"]
    create_doc = paths["/api/organisations/{org_id}/records"]["post"]["description"]
    assert "owner_id" in create_doc and "source_references" in create_doc and "scope_id" in create_doc
    assert "source_references" in paths["/api/organisations/{org_id}/records/{display_id}"]["patch"]["description"]
    assert "source_references" in paths["/api/organisations/{org_id}/memory-diffs"]["post"]["description"]
