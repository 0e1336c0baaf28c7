"""Doc pages over HTTP on a real PostgreSQL, written as attacks where access matters: revisions, the
page tree and breadcrumbs, recursive scope moves, delete (SPEC §2, §4)."""

from __future__ import annotations

import pytest

from tests.e2e.org_world import shared_world


@pytest.fixture(scope="module")
def world(embedded_postgres, tmp_path_factory):
    yield from shared_world(embedded_postgres, tmp_path_factory, "docs_api")


def doc(world, client, title, scope, parent=None, body=""):
    fields = {"parent_id": parent["id"]} if parent else {}
    return world.create(client, type="doc", scope=scope, title=title, body=body, fields=fields)


ORG = {"kind": "organisation"}


def test_every_text_save_keeps_a_revision_readable_only_by_the_docs_readers(world):
    ada, bob, base = world.ada, world.bob, world.base
    plan = doc(world, ada, "Plan", world.scope("OPS"), body="v1 body")
    url = f"{base}/records/{plan['display_id']}"
    assert ada.patch(url, json={"version": 1, "title": "Plan B"}).status_code == 200
    assert bob.patch(url, json={"version": 2, "status": "archived"}).status_code == 200  # no text change
    assert bob.patch(url, json={"version": 3, "status": "active", "body": "v4 body"}).status_code == 200
    revisions = bob.get(f"{url}/revisions").json()
    assert [(r["version"], r["title"], r["body"]) for r in revisions] == [
        (3, "Plan B", "v1 body"), (1, "Plan", "v1 body")]
    assert [r["replaced_by"] for r in revisions] == [world.bob_id, world.ada_id]
    assert revisions[0]["saved_at"] <= revisions[0]["replaced_at"]
    assert [r["version"] for r in bob.get(f"{url}/revisions", params={"before_version": 3}).json()] == [1]

    secret = doc(world, ada, "Pentest", world.scope("SEC"), body="the root password is hunter2")
    secret_url = f"{base}/records/{secret['display_id']}"
    ada.patch(secret_url, json={"version": 1, "body": "rotated"})
    assert len(ada.get(f"{secret_url}/revisions").json()) == 1
    attempt = bob.get(f"{secret_url}/revisions")
    assert attempt.status_code == 404 and "hunter2" not in attempt.text
    ticket = world.create(ada, type="ticket", scope=ORG, title="Not a doc")
    assert ada.get(f"{base}/records/{ticket['display_id']}/revisions").status_code == 422


def test_a_parent_must_be_a_readable_doc_of_the_same_scope_without_cycles(world):
    ada, bob, base = world.ada, world.bob, world.base
    guide = doc(world, bob, "Guide", ORG)
    chapter = doc(world, bob, "Chapter", ORG, parent=guide)
    assert chapter["fields"]["parent_id"] == guide["id"]
    hidden = doc(world, ada, "Incident log", world.scope("SEC"))
    ticket = world.create(bob, type="ticket", scope=ORG, title="A ticket")
    cases = [
        (dict(fields={"parent_id": hidden["id"]}), 404, "parent_id"),  # exists, but not for Bob
        (dict(fields={"parent_id": 10**9}), 404, "parent_id"),
        (dict(fields={"parent_id": ticket["id"]}), 422, "parent_id"),
        (dict(fields={"parent_id": guide["id"]}, scope={"kind": "user", "id": world.bob_id}), 422, "scope"),
    ]
    for extra, status, field in cases:
        body = {"type": "doc", "scope": ORG, "title": "Sub-page"} | extra
        response = bob.post(f"{base}/records", json=body)
        assert (response.status_code, response.json()["error"]["field"]) == (status, field), (extra, response.text)
        assert "Incident log" not in response.text
    guide_url = f"{base}/records/{guide['display_id']}"
    for parent in (guide, chapter):  # itself, and its own sub-page
        cycle = bob.patch(guide_url, json={"version": 1, "fields": {"parent_id": parent["id"]}})
        assert cycle.status_code == 422 and cycle.json()["error"]["field"] == "parent_id"
    assert world.record(bob, guide["display_id"])["fields"]["parent_id"] is None


def test_tree_and_breadcrumbs_show_readable_docs_and_never_a_hidden_ancestors_title(world):
    ada, bob, base = world.ada, world.bob, world.base
    handbook = doc(world, ada, "Handbook", world.scope("APP"))
    onboarding = doc(world, ada, "Onboarding", world.scope("APP"), parent=handbook)
    laptops = doc(world, ada, "Laptops", world.scope("APP"), parent=onboarding)
    doc(world, ada, "Salaries", world.scope("SEC"))

    tree = bob.get(f"{base}/docs/tree", params={"project": "APP"}).json()
    assert [(n["title"], [c["title"] for c in n["children"]]) for n in tree] == [("Handbook", ["Onboarding"])]
    assert tree[0]["children"][0]["children"][0]["display_id"] == laptops["display_id"]
    assert bob.get(f"{base}/docs/tree", params={"project": "SEC"}).status_code == 404
    assert "Salaries" not in bob.get(f"{base}/docs/tree").text
    crumbs = bob.get(f"{base}/docs/{laptops['display_id']}/breadcrumbs").json()
    assert crumbs["text"] == "Acme / APP project / Docs / Handbook / Onboarding / Laptops"
    assert crumbs["items"][-2] == {"kind": "doc", "title": "Onboarding", "display_id": onboarding["display_id"]}

    # A page below one Bob cannot read (as older data or an import could leave it; the API refuses this):
    # Bob sees the page, and "…" where the hidden ancestor is — never its title or display ID.
    board = doc(world, ada, "Board minutes 2026", world.scope("SEC"))
    agenda = doc(world, ada, "Agenda", ORG)
    world.sql("UPDATE records SET fields = jsonb_set(fields, '{parent_id}', to_jsonb(CAST(:p AS bigint))) "
              "WHERE id = :id", p=board["id"], id=agenda["id"])
    crumbs = bob.get(f"{base}/docs/{agenda['display_id']}/breadcrumbs")
    assert crumbs.json()["text"] == "Acme / Docs / … / Agenda"
    assert "Board minutes" not in crumbs.text and board["display_id"] not in crumbs.text
    assert ada.get(f"{base}/docs/{agenda['display_id']}/breadcrumbs").json()["text"] == (
        "Acme / Docs / Board minutes 2026 / Agenda")
    everything = bob.get(f"{base}/docs/tree")
    assert "Board minutes" not in everything.text
    assert agenda["display_id"] in [n["display_id"] for n in everything.json()]  # shown at the top
    assert bob.get(f"{base}/docs/{board['display_id']}/breadcrumbs").status_code == 404


def test_move_scope_moves_the_whole_subtree_or_nothing(world):
    ada, bob, base = world.ada, world.bob, world.base
    root = doc(world, bob, "Runbook", world.scope("OPS"))
    child = doc(world, bob, "Restarts", world.scope("OPS"), parent=root)
    grandchild = doc(world, bob, "Restart the queue", world.scope("OPS"), parent=child)
    family = [root, child, grandchild]

    def scopes(client):
        return [world.record(client, d["display_id"])["scope"] for d in family]

    moved = bob.post(f"{base}/docs/{root['display_id']}/move-scope", json={"scope": ORG})
    assert moved.status_code == 200 and moved.json()["scope"]["kind"] == "organisation"
    assert scopes(ada) == [{"kind": "organisation", "id": world.org}] * 3

    # Bob is a viewer on APP and has no access to SEC: no page moves.
    to_app = bob.post(f"{base}/docs/{root['display_id']}/move-scope", json={"scope": world.scope("APP")})
    assert to_app.status_code == 403
    assert bob.post(f"{base}/docs/{root['display_id']}/move-scope",
                    json={"scope": world.scope("SEC")}).status_code == 404
    assert bob.post(f"{base}/docs/{root['display_id']}/move-scope",
                    json={"scope": {"kind": "user", "id": world.ada_id}}).status_code == 404

    # A descendant in a scope Bob cannot write (Ada's private notes, planted below the grandchild): the
    # move fails whole — the pages Bob could move stay where they were — and nothing about it shows.
    notes = doc(world, ada, "Ada's private notes", {"kind": "user", "id": world.ada_id})
    world.sql("UPDATE records SET fields = jsonb_set(fields, '{parent_id}', to_jsonb(CAST(:p AS bigint))) "
              "WHERE id = :id", p=grandchild["id"], id=notes["id"])
    refused = bob.post(f"{base}/docs/{root['display_id']}/move-scope", json={"scope": world.scope("OPS")})
    assert refused.status_code == 403 and "private notes" not in refused.text
    assert scopes(ada) == [{"kind": "organisation", "id": world.org}] * 3
    assert world.record(ada, notes["display_id"])["scope"] == {"kind": "user", "id": world.ada_id}
    refused = bob.post(f"{base}/docs/{root['display_id']}/make-private")
    assert refused.status_code == 403 and scopes(ada) == [{"kind": "organisation", "id": world.org}] * 3
    world.sql("UPDATE records SET fields = fields - 'parent_id' WHERE id = :id", id=notes["id"])

    # Stale version: refused with 409, nothing moves.
    stale = bob.post(f"{base}/docs/{root['display_id']}/make-private", headers={"If-Match": '"1"'})
    assert stale.status_code == 409
    private = bob.post(f"{base}/docs/{root['display_id']}/make-private")
    assert private.status_code == 200
    assert scopes(bob) == [{"kind": "user", "id": world.bob_id}] * 3
    assert [ada.get(f"{base}/records/{d['display_id']}").status_code for d in family] == [404] * 3

    # A sub-page moved on its own leaves its parent: it becomes a top-level page of the new scope.
    alone = bob.post(f"{base}/docs/{grandchild['display_id']}/move-scope", json={"scope": ORG}).json()
    assert alone["fields"]["parent_id"] is None and alone["scope"]["kind"] == "organisation"


def test_moving_under_a_new_parent_moves_into_its_scope_with_the_same_checks(world):
    ada, bob, base = world.ada, world.bob, world.base
    ops_home = doc(world, ada, "Operations", world.scope("OPS"))
    app_home = doc(world, ada, "Application", world.scope("APP"))
    deploy = doc(world, bob, "Deploy", ORG)
    rollback = doc(world, bob, "Rollback", ORG, parent=deploy)
    url = f"{base}/records/{deploy['display_id']}"

    under_app = bob.patch(url, json={"version": 1, "fields": {"parent_id": app_home["id"]}})
    assert under_app.status_code == 403  # viewer on APP: cannot write there
    assert world.record(bob, rollback["display_id"])["scope"]["kind"] == "organisation"
    mine = {"kind": "user", "id": world.bob_id}
    both = bob.patch(url, json={"version": 1, "fields": {"parent_id": ops_home["id"]}, "scope": mine})
    assert both.status_code == 422 and both.json()["error"]["field"] == "scope"

    moved = bob.patch(url, json={"version": 1, "fields": {"parent_id": ops_home["id"]}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["scope"] == world.scope("OPS") and moved.headers["etag"] == f'"{moved.json()["version"]}"'
    assert world.record(bob, rollback["display_id"])["scope"] == world.scope("OPS")
    tree = ada.get(f"{base}/docs/tree", params={"project": "OPS"}).json()
    operations = next(n for n in tree if n["display_id"] == ops_home["display_id"])
    assert [(c["title"], [g["title"] for g in c["children"]]) for c in operations["children"]] == [
        ("Deploy", ["Rollback"])]


def test_delete_removes_a_leaf_page_and_refuses_pages_with_children_or_without_write_access(world):
    ada, bob, cy, base = world.ada, world.bob, world.cy, world.base
    parent = doc(world, ada, "Policies", ORG)
    leaf = doc(world, ada, "Travel policy", ORG, parent=parent, body="v1")
    ada.patch(f"{base}/records/{leaf['display_id']}", json={"version": 1, "body": "v2"})
    citing = doc(world, ada, "Index", ORG, body=f"See {leaf['display_id']}.")
    app_doc = doc(world, ada, "APP spec", world.scope("APP"))
    sec_doc = doc(world, ada, "SEC spec", world.scope("SEC"))

    assert bob.delete(f"{base}/docs/{parent['display_id']}").status_code == 409
    assert bob.delete(f"{base}/docs/{app_doc['display_id']}").status_code == 403  # viewer
    assert cy.delete(f"{base}/docs/{sec_doc['display_id']}").status_code == 404
    ticket = world.create(ada, type="ticket", scope=ORG, title="Not a doc")
    assert ada.delete(f"{base}/docs/{ticket['display_id']}").status_code == 422
    assert world.record(ada, sec_doc["display_id"])["title"] == "SEC spec"

    assert bob.delete(f"{base}/docs/{leaf['display_id']}").status_code == 204
    assert ada.get(f"{base}/records/{leaf['display_id']}").status_code == 404
    assert ada.get(f"{base}/records/{leaf['display_id']}/revisions").status_code == 404
    assert ada.get(f"{base}/records/{citing['display_id']}/references").json() == []
    assert ada.delete(f"{base}/docs/{parent['display_id']}").status_code == 204
