"""Notifications over HTTP through the real composition root and PostgreSQL: an assignment, a mention and a
comment on a watched ticket reach the people who read them, in the API and on the Notifications page (with the
shell's unread count); a grant revoked before reading leaves only "a record you can no longer see"; watching,
mention candidates and preferences work as the OpenAPI document says. World: tests/e2e/org_world.py (Ada owns
Acme; Bob is an APP viewer; Cy a plain member; OPS open; SEC restricted)."""

from __future__ import annotations

import re

import pytest

from tests.e2e.org_world import shared_world
from tests.e2e.test_pages_security import token_of

NAV = re.compile(r'id="nav-notifications"[^>]*>Notifications(?: <span class="count"[^>]*>(\d+)</span>)?</a>')


@pytest.fixture(scope="module")
def world(embedded_postgres, tmp_path_factory):
    yield from shared_world(embedded_postgres, tmp_path_factory, "notifications_api")


def mention(user_id: int, name: str) -> str:
    return f"@[{name}](user:{user_id})"


def mine(client, world, **params) -> dict:
    response = client.get("/api/notifications", params={"org_id": world.org, **params})
    assert response.status_code == 200, response.text
    return response.json()


def read_all(world) -> None:
    for client in (world.ada, world.bob, world.cy):
        assert client.post("/api/notifications/read-all").status_code == 200


def test_an_assignment_is_listed_counted_and_opened_from_the_page(world):
    read_all(world)
    ticket = world.create(world.ada, type="ticket", title="Fix the login page", scope=world.scope("OPS"),
                          fields={"assignee_id": world.bob_id})
    listing = mine(world.bob, world, unread="true")
    [item] = listing["items"]
    assert listing["unread"] == 1 and item["kind"] == "assigned" and item["actor"] == "Ada"
    assert item["record"]["display_id"] == ticket["display_id"] and item["read"] is False
    assert item["link"] == f"/o/{world.org}/r/{ticket['display_id']}"
    page = f"/o/{world.org}/notifications"
    html = world.bob.get(page).text
    assert int(NAV.search(html).group(1)) == 1 and "Ada assigned you" in html
    opened = world.bob.post(f"{page}/{item['id']}/open", data={"csrf_token": token_of(world.bob, page)},
                            follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == item["link"]
    assert NAV.search(world.bob.get(item["link"]).text).group(1) is None  # read: no count
    assert all(i["kind"] != "assigned" for i in mine(world.ada, world)["items"])  # never the actor


def test_mentions_notify_readers_only_and_a_revoked_grant_hides_the_record(world):
    read_all(world)
    body = f"{mention(world.bob_id, 'Bob')} and {mention(world.cy_id, 'Cy')}: the vault code changed"
    doc = world.create(world.ada, type="doc", title="Vault rotation", scope=world.scope("APP"), body=body)
    assert mine(world.cy, world)["unread"] == 0  # Cy does not read APP: nothing created
    [item] = mine(world.bob, world, unread="true")["items"]
    assert item["kind"] == "mentioned" and item["record"]["title"] == "Vault rotation"

    grants = world.ada.get(f"{world.base}/projects/{world.projects['APP']}/grants").json()
    grant = next(g for g in grants if g.get("user_id") == world.bob_id)
    assert world.ada.delete(f"{world.base}/projects/{world.projects['APP']}/grants/{grant['id']}").status_code == 204
    try:
        [access, lost] = mine(world.bob, world, unread="true")["items"]
        assert access["kind"] == "access"  # the revoked grant is news too
        assert lost["lost"] is True and lost["record"] is None and lost["actor"] is None and lost["link"] is None
        assert "Vault rotation" not in str(lost) and "no longer see" in lost["text"]
        html = world.bob.get(f"/o/{world.org}/notifications").text
        assert "Vault rotation" not in html and "a record you can no longer see" in html
        assert doc["display_id"] not in html
    finally:
        world.ada.post(f"{world.base}/projects/{world.projects['APP']}/grants",
                       json={"user_id": world.bob_id, "role": "viewer"})


def test_comments_reach_watchers_and_watching_can_be_switched(world):
    read_all(world)
    ticket = world.create(world.ada, type="ticket", title="Slow search", scope=world.scope("OPS"))
    watch = f"{world.base}/records/{ticket['display_id']}/watch"
    assert world.ada.get(watch).json() == {"display_id": ticket["display_id"], "watching": True}
    assert world.cy.put(watch, json={"watching": True}).json()["watching"] is True
    comment = world.bob.post(f"{world.base}/records/{ticket['display_id']}/comments", json={"body": "Same here"})
    assert comment.status_code == 201, comment.text
    assert [i["kind"] for i in mine(world.ada, world, unread="true")["items"]] == ["commented"]
    assert [i["kind"] for i in mine(world.cy, world, unread="true")["items"]] == ["commented"]
    assert world.cy.put(watch, json={"watching": False}).json()["watching"] is False
    world.ada.post(f"{world.base}/records/{ticket['display_id']}/comments", json={"body": "Looking"})
    assert len(mine(world.cy, world, unread="true")["items"]) == 1
    assert [i["kind"] for i in mine(world.bob, world, unread="true")["items"]] == ["commented"]  # commenter watches
    secret = world.create(world.ada, type="ticket", title="Hidden", scope=world.scope("SEC"))
    assert world.bob.put(f"{world.base}/records/{secret['display_id']}/watch",
                         json={"watching": True}).status_code == 404


def test_marking_read_touches_only_ones_own(world):
    read_all(world)
    world.create(world.ada, type="ticket", title="Mark me", scope=world.scope("OPS"), fields={"assignee_id": world.cy_id})
    [item] = mine(world.cy, world, unread="true")["items"]
    assert world.bob.post(f"/api/notifications/{item['id']}/read").json() == {"marked": 0}
    assert mine(world.cy, world)["unread"] == 1
    assert world.cy.post(f"/api/notifications/{item['id']}/read").json() == {"marked": 1}
    assert world.cy.post(f"/api/notifications/{item['id']}/read").json() == {"marked": 0}
    assert world.cy.get("/api/notifications", params={"org_id": 999}).status_code == 404


def test_mention_candidates_and_preferences(world):
    read_all(world)
    doc = world.create(world.ada, type="doc", title="App notes", scope=world.scope("APP"))
    found = world.ada.get(f"{world.base}/records/{doc['display_id']}/mentionable").json()
    assert [m["display_name"] for m in found] == ["Ada", "Bob"]  # Cy does not read APP
    assert world.ada.get(f"{world.base}/records/{doc['display_id']}/mentionable", params={"q": "bo"}).json() == [
        {"user_id": world.bob_id, "display_name": "Bob", "markup": mention(world.bob_id, "Bob")}]
    assert world.cy.get(f"{world.base}/records/{doc['display_id']}/mentionable").status_code == 404

    prefs = world.bob.get("/api/notification-preferences").json()["preferences"]
    assert {p["delivery"] for p in prefs} == {"in_app"}
    changed = world.bob.put("/api/notification-preferences", json={"assigned": "off"})
    assert changed.status_code == 200, changed.text
    assert {p["kind"]: p["delivery"] for p in changed.json()["preferences"]}["assigned"] == "off"
    bad = world.bob.put("/api/notification-preferences", json={"assigned": "loud"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "assigned"
    world.create(world.ada, type="ticket", title="Quiet", scope=world.scope("OPS"), fields={"assignee_id": world.bob_id})
    assert mine(world.bob, world)["unread"] == 0
    world.bob.put("/api/notification-preferences", json={"assigned": "in_app"})


def test_the_record_page_offers_watching(world):
    doc = world.create(world.cy, type="doc", title="Cy's page", scope=world.scope("OPS"))
    path = f"/o/{world.org}/r/{doc['display_id']}"
    assert 'id="watch-button" aria-pressed="false"' in world.bob.get(path).text
    response = world.bob.post(f"{path}/watch", data={"csrf_token": token_of(world.bob, path), "watching": "1"},
                              follow_redirects=False)
    assert response.status_code == 303
    assert 'id="watch-button" aria-pressed="true"' in world.bob.get(path).text


def test_the_profile_page_sets_where_each_kind_goes(world):
    path = f"/o/{world.org}/profile"
    html = world.cy.get(path).text
    assert 'id="pref-commented"' in html and 'id="pref-assigned"' in html and 'id="pref-digest"' in html
    saved = world.cy.post(f"{path}/notifications", data={"csrf_token": token_of(world.cy, path), "commented": "off",
                                                         "mentioned": "email", "digest": "daily"},
                          follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == f"{path}?saved=notifications"
    answer = world.cy.get("/api/notification-preferences").json()
    prefs = {p["kind"]: p["delivery"] for p in answer["preferences"]}
    assert (prefs["commented"], prefs["mentioned"], prefs["assigned"], answer["digest"]) == (
        "off", "email", "in_app", "daily")
    assert '<option value="daily" selected' in world.cy.get(path).text
    bad = world.cy.post(f"{path}/notifications", data={"csrf_token": token_of(world.cy, path), "commented": "loud"},
                        follow_redirects=False)
    assert bad.status_code == 422 and "in_app, email or off" in bad.text
    world.cy.put("/api/notification-preferences", json={"commented": "in_app", "mentioned": "in_app",
                                                         "digest": "immediate"})


def test_a_role_or_grant_change_tells_the_person_it_affects(world):
    read_all(world)
    members = f"{world.base}/members/{world.cy_id}"
    changed = world.ada.patch(members, json={"role": "admin"})
    assert changed.status_code == 200, changed.text
    grant = world.ada.post(f"{world.base}/projects/{world.projects['SEC']}/grants",
                           json={"user_id": world.cy_id, "role": "viewer"}).json()
    world.ada.delete(f"{world.base}/projects/{world.projects['SEC']}/grants/{grant['id']}")
    world.ada.patch(members, json={"role": "member"})
    items = mine(world.cy, world, unread="true")["items"]
    assert [i["kind"] for i in items] == ["access"] * 4 and items[0]["record"] is None
    assert items[0]["text"] == "Ada changed your role or access in this organisation"
    assert mine(world.ada, world, unread="true")["items"] == []  # never the actor


def test_a_snapshot_put_up_for_review_tells_who_may_write_it_and_nobody_who_may_not(world):
    read_all(world)
    snap = world.create(world.cy, type="snapshot", title="Ops state", body="where ops is", scope=world.scope("OPS"),
                        fields={"snapshot_type": "cto_state"})
    assert snap["status"] == "pending_review"
    reviews = {name: [i["text"] for i in mine(client, world, unread=True)["items"] if i["kind"] == "review"]
               for name, client in (("ada", world.ada), ("bob", world.bob), ("cy", world.cy))}
    text = f"Cy put {snap['display_id']} Ops state up for your review"
    assert reviews == {"ada": [text], "bob": [text], "cy": []}
    secret = world.create(world.ada, type="snapshot", title="Secret state", body="x", scope=world.scope("SEC"),
                          fields={"snapshot_type": "cto_state"})
    assert secret["status"] == "pending_review"
    for client in (world.bob, world.cy):
        assert all("Secret" not in i["text"] for i in mine(client, world)["items"])


def test_a_proposed_memory_diff_tells_its_reviewers_and_opens_on_the_diff(world):
    read_all(world)
    response = world.cy.post(f"{world.base}/memory-diffs", json={
        "scope": world.scope("OPS"), "rationale": "from the retro",
        "operations": [{"op": "create", "title": "Deploys freeze on Fridays", "body": "b",
                        "fields": {"memory_type": "fact"}}]})
    assert response.status_code == 201, response.text
    diff = response.json()
    reviews = {name: [i for i in mine(client, world, unread=True)["items"] if i["kind"] == "review"]
               for name, client in (("ada", world.ada), ("bob", world.bob), ("cy", world.cy))}
    assert [len(reviews[name]) for name in ("ada", "bob", "cy")] == [1, 1, 0]  # OPS's writers; never its author
    [item] = reviews["bob"]
    assert item["text"] == f"Cy proposed memory diff #{diff['id']} (1 change) for your review"
    assert item["memory_diff_id"] == diff["id"] and item["record"] is None
    assert item["link"] == f"/o/{world.org}/memory-diffs/{diff['id']}"
    page = f"/o/{world.org}/notifications"
    opened = world.bob.post(f"{page}/{item['id']}/open", data={"csrf_token": token_of(world.bob, page)},
                            follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == item["link"]
    assert "Deploys freeze on Fridays" in world.bob.get(item["link"]).text
    secret = world.ada.post(f"{world.base}/memory-diffs", json={
        "scope": world.scope("SEC"), "operations": [{"op": "create", "title": "Secret merger", "body": "b",
                                                     "fields": {"memory_type": "fact"}}]})
    assert secret.status_code == 201, secret.text
    for client in (world.bob, world.cy):  # SEC is restricted to Ada
        assert all(i["memory_diff_id"] != secret.json()["id"] for i in mine(client, world)["items"])


def test_a_group_grant_or_group_membership_change_tells_the_people_whose_access_changed(world):
    read_all(world)
    group = world.ada.post(f"{world.base}/groups", json={"name": "Auditors"})
    assert group.status_code == 201, group.text
    groups = f"{world.base}/groups/{group.json()['id']}"
    assert world.ada.put(f"{groups}/members/{world.cy_id}").status_code == 200
    assert [i["kind"] for i in mine(world.cy, world, unread="true")["items"]] == ["access"]  # joined a group
    read_all(world)
    grant = world.ada.post(f"{world.base}/projects/{world.projects['SEC']}/grants",
                           json={"group_id": group.json()["id"], "role": "viewer"})
    assert grant.status_code in (200, 201), grant.text
    assert world.ada.delete(f"{world.base}/projects/{world.projects['SEC']}/grants/{grant.json()['id']}"
                            ).status_code == 204
    assert [i["kind"] for i in mine(world.cy, world, unread="true")["items"]] == ["access", "access"]
    assert mine(world.bob, world, unread="true")["items"] == []  # not in the group: nothing changed for Bob
    read_all(world)
    assert world.ada.delete(f"{groups}/members/{world.cy_id}").status_code in (200, 204)
    assert world.ada.put(f"{groups}/members/{world.cy_id}").status_code == 200
    assert world.ada.delete(groups).status_code == 204  # Cy loses what it granted
    assert [i["kind"] for i in mine(world.cy, world, unread="true")["items"]] == ["access"] * 3
    assert mine(world.ada, world, unread="true")["items"] == []  # never the actor
