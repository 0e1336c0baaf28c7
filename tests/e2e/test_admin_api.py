"""Organisations, members, groups, projects, grants, access explanation/review and server admins over HTTP
on a real PostgreSQL — written as attacks. Every world is built through the API itself."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from tests.e2e.test_auth_api import bootstrap, invite, register
from tests.postgres_fixtures import SECRET

API = "/api"
HUGE = str(10**30)


@dataclass
class World:
    """Organisation A ("Acme", owner ada — the first account and so the server admin): ann (admin), mel
    (member, no grant on SEC), vic (member, direct viewer on SEC), rex (was in group Design, removed from A:
    his client keeps the old cookie). Group Design = [ann], granted viewer on SEC. Projects SEC (restricted)
    and OPEN (open). Organisation B ("Beta", created by ada through POST /organisations): bob (admin), bea
    (member) — neither in A; group Ops = [bob], project BETA (restricted) with Ops granted viewer."""

    container: object
    new_client: Callable[[], TestClient]  # a separate browser (its own cookie jar) on the world's app
    clients: dict = field(default_factory=dict)
    ids: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> int:
        return self.ids[name]

    def path(self, template: str) -> str:
        return API + template.format(**self.ids)


def ok(response, status: int = 200) -> dict | list | None:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    return response.json() if response.content else None


def join(world: World, name: str, org: str, role: str) -> None:
    """ada invites ``name`` into ``org`` with ``role``; they register in their own browser."""
    token = invite(world.clients["ada"], world[org], role=role)["token"]
    client = world.new_client()
    world.ids[name] = ok(register(client, token, f"{name}@example.com"), 201)["id"]
    world.clients[name] = client


def build_world(container, new_client: Callable[[], TestClient]) -> World:
    w = World(container, new_client)
    ada = w.clients["ada"] = new_client()
    w.clients["anonymous"] = new_client()
    me = bootstrap(ada).json()
    w.ids.update(ada=me["id"], A=me["memberships"][0]["organisation_id"])
    w.ids["B"] = ok(ada.post(f"{API}/organisations", json={"name": "Beta"}), 201)["id"]
    for name, org, role in [("ann", "A", "admin"), ("mel", "A", "member"), ("vic", "A", "member"),
                            ("rex", "A", "member"), ("bob", "B", "admin"), ("bea", "B", "member")]:
        join(w, name, org, role)
    w.ids["G"] = ok(ada.post(w.path("/organisations/{A}/groups"), json={"name": "Design"}), 201)["id"]
    for user in ("ann", "rex"):
        ok(ada.put(w.path(f"/organisations/{{A}}/groups/{{G}}/members/{{{user}}}")))
    for key, visibility in [("SEC", "restricted"), ("OPEN", "open")]:
        body = {"key": key, "name": key.title(), "visibility": visibility}
        w.ids[key] = ok(ada.post(w.path("/organisations/{A}/projects"), json=body), 201)["id"]
    grants = w.path("/organisations/{A}/projects/{SEC}/grants")
    w.ids["vic_grant"] = ok(ada.post(grants, json={"user_id": w["vic"], "role": "viewer"}))["id"]
    w.ids["G_grant"] = ok(ada.post(grants, json={"group_id": w["G"], "role": "viewer"}))["id"]
    w.ids["rex_grant"] = ok(ada.post(grants, json={"user_id": w["rex"], "role": "member"}))["id"]
    # Organisation B's own objects, made by its admin.
    bob = w.clients["bob"]
    w.ids["GB"] = ok(bob.post(w.path("/organisations/{B}/groups"), json={"name": "Ops"}), 201)["id"]
    ok(bob.put(w.path("/organisations/{B}/groups/{GB}/members/{bob}")))
    body = {"key": "BETA", "name": "Beta", "visibility": "restricted"}
    w.ids["PB"] = ok(bob.post(w.path("/organisations/{B}/projects"), json=body), 201)["id"]
    w.ids["B_grant"] = ok(bob.post(w.path("/organisations/{B}/projects/{PB}/grants"),
                                   json={"group_id": w["GB"], "role": "viewer"}))["id"]
    ok(ada.delete(w.path("/organisations/{A}/members/{rex}")), 204)
    return w


@pytest.fixture
def world(make_container, app_client) -> World:
    container = make_container()
    return build_world(container, lambda: app_client(container))


@pytest.fixture(scope="module")
def table_world(embedded_postgres, tmp_path_factory) -> Iterator[World]:
    """One world for the who-may-do-what table (and other read-only checks), built like ``make_container`` but
    once per module: the table only reads and makes requests that must be refused, and each actor's run checks
    that nothing changed. (Six worlds, one per actor, cost ~4 s of a file meant to stay under 20 s.)"""
    from dependency_injector import providers

    from tow_adapters.argon2_password_hasher import Argon2PasswordHasher
    from tow_http.composition import Container
    from tow_http.config import load_config

    name = f"t{os.getpid()}_admin_table"
    embedded_postgres.ensure_database(name)
    config_path = tmp_path_factory.mktemp("admin_table") / "tow.yaml"
    config_path.write_text("")
    container = Container(config=load_config(config_path, environ={"APP_SECRET": SECRET}),
                          database_url=embedded_postgres.url(name))
    container.password_hasher.override(providers.Object(Argon2PasswordHasher(time_cost=1, memory_cost=8,
                                                                             parallelism=1)))
    container.schema_migrator().upgrade()
    app = container.app()
    yield build_world(container, lambda: TestClient(app, base_url="http://127.0.0.1:8000",
                                                    raise_server_exceptions=False))
    container.engine().dispose()


STATE_PATHS = [  # what the attacks below aim at
    "/organisations/{A}", "/organisations/{A}/members", "/organisations/{A}/groups", "/organisations/{A}/projects",
    "/organisations/{A}/projects/{SEC}/grants", "/organisations/{B}/members", "/organisations/{B}/groups",
    "/organisations/{B}/projects/{PB}/grants", "/server/admins",
]


def state(w: World) -> dict:
    """Everything an attack could change, as ada (owner of both organisations and server admin) sees it."""
    return {p: ok(w.clients["ada"].get(w.path(p))) for p in STATE_PATHS}


# --- who may do what: one table -----------------------------------------------------------------

ACTORS = ("anonymous", "bea", "bob", "rex", "mel", "vic")
# anonymous: no cookie · bea: member of B only · bob: admin of B only · rex: removed from A, old cookie ·
# mel: member of A without a grant on SEC · vic: member of A, viewer of SEC.
TABLE = [
    # (method, path, body                                                                          anon bea  bob  rex  mel  vic)
    ("GET", "/organisations/{A}", None,                                                             (401, 404, 404, 404, 200, 200)),
    ("PATCH", "/organisations/{A}", {"name": "Pwned"},                                              (401, 404, 404, 404, 403, 403)),
    ("GET", "/organisations/{A}/members", None,                                                     (401, 404, 404, 404, 200, 200)),
    ("PATCH", "/organisations/{A}/members/{mel}", {"role": "admin"},                                (401, 404, 404, 404, 403, 403)),
    ("PATCH", "/organisations/{A}/members/{ada}", {"role": "member"},                               (401, 404, 404, 404, 403, 403)),
    ("DELETE", "/organisations/{A}/members/{ann}", None,                                            (401, 404, 404, 404, 403, 403)),
    ("GET", "/organisations/{A}/groups", None,                                                      (401, 404, 404, 404, 200, 200)),
    ("POST", "/organisations/{A}/groups", {"name": "Intruders"},                                    (401, 404, 404, 404, 403, 403)),
    ("PATCH", "/organisations/{A}/groups/{G}", {"name": "Renamed"},                                 (401, 404, 404, 404, 403, 403)),
    ("DELETE", "/organisations/{A}/groups/{G}", None,                                               (401, 404, 404, 404, 403, 403)),
    ("PUT", "/organisations/{A}/groups/{G}/members/{mel}", None,                                    (401, 404, 404, 404, 403, 403)),
    ("DELETE", "/organisations/{A}/groups/{G}/members/{ann}", None,                                 (401, 404, 404, 404, 403, 403)),
    ("GET", "/organisations/{A}/projects", None,                                                    (401, 404, 404, 404, 200, 200)),
    ("POST", "/organisations/{A}/projects", {"key": "HACK", "name": "Hack", "visibility": "open"},  (401, 404, 404, 404, 403, 403)),
    ("GET", "/organisations/{A}/projects/{SEC}", None,                                              (401, 404, 404, 404, 404, 200)),
    ("PATCH", "/organisations/{A}/projects/{SEC}", {"visibility": "open"},                          (401, 404, 404, 404, 404, 403)),
    ("PATCH", "/organisations/{A}/projects/{OPEN}", {"visibility": "restricted"},                   (401, 404, 404, 404, 403, 403)),
    ("GET", "/organisations/{A}/projects/{SEC}/grants", None,                                       (401, 404, 404, 404, 404, 200)),
    ("POST", "/organisations/{A}/projects/{SEC}/grants", {"user_id": "{mel}", "role": "admin"},     (401, 404, 404, 404, 404, 403)),
    ("DELETE", "/organisations/{A}/projects/{SEC}/grants/{vic_grant}", None,                        (401, 404, 404, 404, 404, 403)),
    ("GET", "/organisations/{A}/access/explain?user_id={ada}&scope=organisation:{A}", None,         (401, 404, 404, 404, 403, 403)),
    ("GET", "/organisations/{A}/access/review", None,                                               (401, 404, 404, 404, 403, 403)),
    ("POST", "/organisations", {"name": "Mine"},                                                    (401, 403, 403, 403, 403, 403)),
    ("GET", "/server/admins", None,                                                                 (401, 403, 403, 403, 403, 403)),
    ("PUT", "/server/admins/{mel}", None,                                                           (401, 403, 403, 403, 403, 403)),
    ("DELETE", "/server/admins/{ada}", None,                                                        (401, 403, 403, 403, 403, 403)),
]
VISIBLE_PROJECTS = {"mel": ["OPEN"], "vic": ["OPEN", "SEC"]}


def _body(w: World, body: dict | None) -> dict | None:
    if body is None:
        return None
    return {k: int(v.format(**w.ids)) if isinstance(v, str) and v.startswith("{") else v for k, v in body.items()}


@pytest.mark.parametrize("actor", ACTORS)
def test_who_may_do_what(table_world: World, actor: str) -> None:
    world = table_world
    before = state(world)
    client = world.clients[actor]
    column = ACTORS.index(actor)
    wrong = []
    for method, path, body, statuses in TABLE:
        response = client.request(method, world.path(path), json=_body(world, body))
        if response.status_code != statuses[column]:
            wrong.append(f"{method} {path}: expected {statuses[column]}, got {response.status_code} {response.text}")
        elif response.status_code >= 400:
            assert set(response.json()["error"]) >= {"code", "message"}
    assert not wrong, "\n".join(wrong)
    if actor in VISIBLE_PROJECTS:  # a project you cannot read is absent from the list, not just locked
        keys = [p["key"] for p in ok(client.get(world.path("/organisations/{A}/projects")))]
        assert keys == VISIBLE_PROJECTS[actor]
    assert state(world) == before, "a refused request changed something"


def test_removed_member_loses_everything_on_the_very_next_request(world: World) -> None:
    rex = world.clients["rex"]  # still holding the cookie from before the removal
    me = ok(rex.get(f"{API}/me"))
    assert all(m["organisation_id"] != world["A"] for m in me["memberships"])
    assert rex.get(world.path("/organisations/{A}/projects/{SEC}")).status_code == 404
    assert rex.put(f"{API}/me/active-organisation", json={"organisation_id": world["A"]}).status_code == 404
    # Their group membership and direct grant went with them: re-inviting does not restore old access.
    design = next(g for g in ok(world.clients["ada"].get(world.path("/organisations/{A}/groups"))))
    assert design["member_ids"] == [world["ann"]]
    grants = ok(world.clients["ada"].get(world.path("/organisations/{A}/projects/{SEC}/grants")))
    assert world["rex_grant"] not in [g["id"] for g in grants]
    token = invite(world.clients["ada"], world["A"])["token"]
    ok(rex.post(f"{API}/invites/accept", json={"token": token}))
    assert rex.get(world.path("/organisations/{A}/projects/{SEC}")).status_code == 404
    assert ok(rex.get(world.path("/organisations/{A}")))["id"] == world["A"]


# --- every ID is checked -----------------------------------------------------------------------------


def test_another_organisations_ids_never_act_even_for_an_owner_of_both(world: World) -> None:
    """ada owns A and B: every id is still checked against the organisation named in the path."""
    ada = world.clients["ada"]
    before = state(world)
    attacks = [
        # (method, path, body, status, field)
        ("PATCH", "/organisations/{A}/groups/{GB}", {"name": "Stolen"}, 404, None),
        ("DELETE", "/organisations/{A}/groups/{GB}", None, 404, None),
        ("PUT", "/organisations/{A}/groups/{GB}/members/{mel}", None, 404, None),
        ("DELETE", "/organisations/{A}/groups/{GB}/members/{bob}", None, 404, None),
        ("PUT", "/organisations/{A}/groups/{G}/members/{bob}", None, 422, "user_id"),
        ("PATCH", "/organisations/{A}/members/{bob}", {"role": "member"}, 404, None),
        ("DELETE", "/organisations/{A}/members/{bob}", None, 404, None),
        ("GET", "/organisations/{A}/projects/{PB}", None, 404, None),
        ("PATCH", "/organisations/{A}/projects/{PB}", {"visibility": "open"}, 404, None),
        ("GET", "/organisations/{A}/projects/{PB}/grants", None, 404, None),
        ("POST", "/organisations/{A}/projects/{PB}/grants", {"user_id": "{mel}", "role": "admin"}, 404, None),
        ("POST", "/organisations/{A}/projects/{SEC}/grants", {"group_id": "{GB}", "role": "admin"}, 404, None),
        ("POST", "/organisations/{A}/projects/{SEC}/grants", {"user_id": "{bob}", "role": "admin"}, 422, "user_id"),
        ("DELETE", "/organisations/{A}/projects/{SEC}/grants/{B_grant}", None, 404, None),
        ("DELETE", "/organisations/{B}/projects/{PB}/grants/{vic_grant}", None, 404, None),
        ("PATCH", "/organisations/{A}/projects/{SEC}", {"lead_user_id": "{bob}"}, 422, "lead_user_id"),
        ("POST", "/organisations/{A}/projects", {"key": "X1", "name": "X", "visibility": "open",
                                                 "lead_user_id": "{bea}"}, 422, "lead_user_id"),
        ("GET", "/organisations/{A}/access/explain?user_id={bob}&scope=project:{PB}", None, 404, None),
        ("GET", "/organisations/{A}/access/explain?user_id={mel}&scope=group:{GB}", None, 404, None),
        ("GET", "/organisations/{A}/access/explain?user_id={mel}&scope=organisation:{B}", None, 404, None),
        # ids beyond PostgreSQL's bigint: absent in a path, refused naming the field in a body, never a 500
        ("GET", "/organisations/{A}/projects/" + HUGE, None, 404, None),
        ("DELETE", "/organisations/{A}/projects/{SEC}/grants/" + HUGE, None, 404, None),
        # ... and in a body, beyond the declared bound (2**53 - 1): refused naming the field
        ("POST", "/organisations/{A}/projects/{SEC}/grants", {"group_id": int(HUGE), "role": "admin"}, 400,
         "group_id"),
    ]
    for method, path, body, status, field_name in attacks:
        response = ada.request(method, world.path(path), json=_body(world, body))
        assert response.status_code == status, (method, path, response.text)
        assert response.json()["error"].get("field") == field_name, (method, path, response.text)
    assert state(world) == before


def test_an_admin_of_b_cannot_reach_a_through_bs_paths(world: World) -> None:
    bob = world.clients["bob"]
    before = state(world)
    attacks = [
        ("GET", "/organisations/{B}/projects/{SEC}", None, 404),
        ("GET", "/organisations/{B}/projects/{SEC}/grants", None, 404),
        ("PATCH", "/organisations/{B}/groups/{G}", {"name": "Mine"}, 404),
        ("DELETE", "/organisations/{B}/groups/{G}", None, 404),
        ("DELETE", "/organisations/{B}/groups/{G}/members/{ann}", None, 404),
        ("PUT", "/organisations/{B}/groups/{GB}/members/{mel}", None, 422),
        ("PATCH", "/organisations/{B}/members/{ada}", {"role": "member"}, 403),  # ada is an owner of B too
        ("PATCH", "/organisations/{B}/members/{mel}", {"role": "admin"}, 404),
        ("POST", "/organisations/{B}/projects/{PB}/grants", {"group_id": "{G}", "role": "admin"}, 404),
        ("POST", "/organisations/{B}/projects/{PB}/grants", {"user_id": "{vic}", "role": "admin"}, 422),
        ("DELETE", "/organisations/{B}/projects/{PB}/grants/{vic_grant}", None, 404),
        ("DELETE", "/organisations/{B}/projects/{SEC}/grants/{vic_grant}", None, 404),
        ("GET", "/organisations/{B}/access/explain?user_id={vic}&scope=project:{SEC}", None, 404),
    ]
    for method, path, body, status in attacks:
        response = bob.request(method, world.path(path), json=_body(world, body))
        assert response.status_code == status, (method, path, response.text)
    assert state(world) == before


# --- owners and server admins ------------------------------------------------------------------------


def test_last_owner_cannot_be_demoted_or_removed(world: World) -> None:
    ada = world.clients["ada"]
    demote = ada.patch(world.path("/organisations/{A}/members/{ada}"), json={"role": "admin"})
    leave = ada.delete(world.path("/organisations/{A}/members/{ada}"))
    assert demote.status_code == leave.status_code == 409
    assert "owner" in demote.json()["error"]["message"]
    roles = {m["user_id"]: m["role"] for m in ok(ada.get(world.path("/organisations/{A}/members")))}
    assert roles[world["ada"]] == "owner"
    # Once someone else is owner, ada may step down; then the new owner is the last one.
    ok(ada.patch(world.path("/organisations/{A}/members/{ann}"), json={"role": "owner"}))
    ok(ada.patch(world.path("/organisations/{A}/members/{ada}"), json={"role": "admin"}))
    ann = world.clients["ann"]
    assert ann.delete(world.path("/organisations/{A}/members/{ann}")).status_code == 409


def test_only_owners_grant_or_remove_the_owner_role(world: World) -> None:
    ann, ada = world.clients["ann"], world.clients["ada"]  # ann is an admin
    assert ann.patch(world.path("/organisations/{A}/members/{mel}"), json={"role": "owner"}).status_code == 403
    assert ann.patch(world.path("/organisations/{A}/members/{ada}"), json={"role": "admin"}).status_code == 403
    assert ann.delete(world.path("/organisations/{A}/members/{ada}")).status_code == 403
    ok(ada.patch(world.path("/organisations/{A}/members/{mel}"), json={"role": "owner"}))
    assert ann.patch(world.path("/organisations/{A}/members/{mel}"), json={"role": "member"}).status_code == 403
    assert ann.delete(world.path("/organisations/{A}/members/{mel}")).status_code == 403
    # An admin still manages ordinary roles, and anyone may leave.
    assert ok(ann.patch(world.path("/organisations/{A}/members/{vic}"), json={"role": "admin"}))["role"] == "admin"
    ok(world.clients["vic"].delete(world.path("/organisations/{A}/members/{vic}")), 204)
    roles = {m["user_id"]: m["role"] for m in ok(ada.get(world.path("/organisations/{A}/members")))}
    assert roles == {world["ada"]: "owner", world["ann"]: "admin", world["mel"]: "owner"}
    bad = ada.patch(world.path("/organisations/{A}/members/{ann}"), json={"role": "emperor"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "role"


def test_server_admins_are_managed_by_server_admins_and_never_the_last_removed(world: World) -> None:
    ada, ann = world.clients["ada"], world.clients["ann"]
    last = ada.delete(world.path("/server/admins/{ada}"))
    assert last.status_code == 409 and "server admin" in last.json()["error"]["message"]
    assert ada.put(f"{API}/server/admins/999999").status_code == 404
    made = ok(ada.put(world.path("/server/admins/{ann}")))
    assert made["is_server_admin"] is True and "password" not in str(made)
    ok(ann.delete(world.path("/server/admins/{ada}")), 204)
    assert ada.get(f"{API}/server/admins").status_code == 403  # on the very next request
    listed = ok(ann.get(f"{API}/server/admins"))
    assert [u["id"] for u in listed] == [world["ann"]] and all("password" not in str(u) for u in listed)
    assert ann.delete(world.path("/server/admins/{ann}")).status_code == 409
    # Server admin grants no organisation role: ann (admin of A) sees nothing of B.
    assert ann.get(world.path("/organisations/{B}")).status_code == 404


# --- the acceptance walk-through ------------------------------------------------------------------------


def test_acceptance_walk_through(app_client) -> None:
    ada = app_client()
    org = bootstrap(ada).json()["memberships"][0]["organisation_id"]
    base = f"{API}/organisations/{org}"
    body = {"key": "SEC", "name": "Secret", "visibility": "restricted", "description": "M&A"}
    project = ok(ada.post(f"{base}/projects", json=body), 201)
    assert (project["visibility"], project["status"], project["lead_user_id"]) == ("restricted", "active", None)
    colleague = app_client()
    cole = ok(register(colleague, invite(ada, org)["token"], "cole@example.com"), 201)["id"]
    project_url = f"{base}/projects/{project['id']}"
    assert colleague.get(project_url).status_code == 404
    assert ok(colleague.get(f"{base}/projects")) == []

    group = ok(ada.post(f"{base}/groups", json={"name": "Deal team"}), 201)
    assert ok(ada.put(f"{base}/groups/{group['id']}/members/{cole}"))["member_ids"] == [cole]
    grant = ok(ada.post(f"{project_url}/grants", json={"group_id": group["id"], "role": "viewer"}))
    assert ok(colleague.get(project_url))["name"] == "Secret"
    assert [g["id"] for g in ok(colleague.get(f"{project_url}/grants"))] == [grant["id"]]
    assert colleague.patch(project_url, json={"name": "Mine now"}).status_code == 403
    explained = ok(colleague.get(f"{base}/access/explain", params={"scope": f"project:{project['id']}"}))
    assert explained["read"] == {"allowed": True, "rule": "project_grant_reads",
                                 "reason": "granted viewer through group Deal team"}
    assert explained["write"]["allowed"] is False and "viewer only reads" in explained["write"]["reason"]

    ok(ada.delete(f"{project_url}/grants/{grant['id']}"), 204)
    assert colleague.get(project_url).status_code == 404  # the colleague's very next request
    assert colleague.get(f"{project_url}/grants").status_code == 404
    assert ok(colleague.get(f"{base}/projects")) == []
    assert ok(ada.get(project_url))["name"] == "Secret"


# --- explaining and reviewing access -------------------------------------------------------------------


def test_access_review_lists_restricted_projects_with_group_derived_roles(world: World) -> None:
    ada = world.clients["ada"]
    ok(ada.put(world.path("/organisations/{A}/groups/{G}/members/{vic}")))
    ok(ada.post(world.path("/organisations/{A}/projects/{SEC}/grants"), json={"group_id": world["G"], "role": "member"}))
    review = ok(ada.get(world.path("/organisations/{A}/access/review")))
    assert review["organisation"]["id"] == world["A"]
    assert {(m["user_id"], m["role"]) for m in review["managers"]} == {(world["ada"], "owner"), (world["ann"], "admin")}
    assert [u["id"] for u in review["server_admins"]] == [world["ada"]]
    assert [p["project"]["key"] for p in review["restricted_projects"]] == ["SEC"]  # open projects are not listed
    by_grant = {g["grant"]["id"]: g for g in review["restricted_projects"][0]["grants"]}
    via_group = by_grant[world["G_grant"]]
    assert via_group["group"] == {"id": world["G"], "name": "Design"} and via_group["grant"]["role"] == "member"
    assert {(u["user_id"], u["effective_role"]) for u in via_group["users"]} == {
        (world["vic"], "member"),  # direct viewer, raised to member through the group
        (world["ann"], "admin"),  # an organisation admin acts as project admin
    }
    direct = by_grant[world["vic_grant"]]
    assert direct["group"] is None and [(u["user_id"], u["effective_role"]) for u in direct["users"]] == [
        (world["vic"], "member")]
    assert review["deactivated_grants"] == []
    assert "password" not in str(review)

    with world.container.engine().begin() as conn:  # no deactivation endpoint yet: do it in the database
        conn.execute(sa.text("UPDATE users SET is_active = false WHERE id = :id"), {"id": world["vic"]})
    held = ok(ada.get(world.path("/organisations/{A}/access/review")))["deactivated_grants"]
    assert [(d["project_key"], d["grant"]["id"], d["group"], d["user"]["user_id"], d["user"]["is_active"])
            for d in held] == [("SEC", world["vic_grant"], None, world["vic"], False),
                               ("SEC", world["G_grant"], {"id": world["G"], "name": "Design"}, world["vic"], False)]
    assert world.clients["vic"].get(world.path("/organisations/{A}")).status_code == 401


def test_explain_gives_the_granting_rule_for_read_and_write(world: World) -> None:
    ada, mel = world.clients["ada"], world.clients["mel"]

    def explain(client, user: str, scope: str) -> dict:
        query = {"user_id": world[user], "scope": scope.format(**world.ids)}
        return ok(client.get(world.path("/organisations/{A}/access/explain"), params=query))

    def rules(answer: dict) -> tuple:
        return answer["read"]["rule"], answer["write"]["rule"]

    assert rules(explain(ada, "vic", "project:{SEC}")) == ("project_grant_reads", None)
    assert explain(ada, "vic", "project:{SEC}")["read"]["reason"] == "granted viewer directly"
    assert rules(explain(ada, "ann", "project:{SEC}")) == ("is_org_manager", "is_org_manager")
    assert rules(explain(ada, "mel", "project:{OPEN}")) == ("project_open", "project_open")
    denied = explain(ada, "mel", "project:{SEC}")
    assert rules(denied) == (None, None) and denied["read"]["allowed"] is False
    assert "restricted project" in denied["read"]["reason"]
    assert rules(explain(ada, "ann", "group:{G}")) == ("in_group", "in_group")
    assert explain(ada, "ann", "group:{G}")["read"]["reason"] == "member of group Design"
    assert rules(explain(ada, "ada", "group:{G}")) == ("is_org_manager", "is_org_manager")
    assert rules(explain(ada, "mel", "group:{G}")) == (None, None)
    assert rules(explain(mel, "mel", "organisation:{A}")) == ("is_member", "is_member")
    assert rules(explain(ada, "mel", "user:{mel}")) == ("is_scope_user", "is_scope_user")
    private = explain(ada, "ada", "user:{mel}")  # not even an owner reads someone's private scope
    assert rules(private) == (None, None) and "private" in private["read"]["reason"]
    assert rules(explain(ada, "bob", "organisation:{A}")) == (None, None)  # not a member of A
    # A member may ask about themselves, but learns nothing about a restricted project they cannot read.
    assert ok(mel.get(world.path("/organisations/{A}/access/explain"), params={"scope": "organisation:{}".format(
        world["A"])}))["user_id"] == world["mel"]
    assert mel.get(world.path("/organisations/{A}/access/explain"),
                   params={"user_id": world["mel"], "scope": f"project:{world['SEC']}"}).status_code == 404


def test_explain_rejects_malformed_scopes(table_world: World) -> None:  # read-only: the shared world serves
    ada, org = table_world.clients["ada"], table_world["A"]
    for scope in ["", "project", "project:", "project:abc", "team:1", "project:-1", "project:1:2", "Project:1",
                  " project:1", "project:1\n", "project:" + "9" * 30]:
        response = ada.get(f"{API}/organisations/{org}/access/explain", params={"scope": scope})
        assert response.status_code == 400, (scope, response.text)  # the document gives the pattern
        assert response.json()["error"]["field"] == "scope"
    missing = ada.get(f"{API}/organisations/{org}/access/explain")
    assert missing.status_code == 400 and "scope" in missing.text


# --- shapes: PATCH semantics, filters, validation ---------------------------------------------------------


def test_patch_leaves_absent_fields_alone_null_clears_the_lead_and_archive_filters(world: World) -> None:
    ada = world.clients["ada"]
    org = ok(ada.patch(world.path("/organisations/{A}"), json={"workflow_mode": "founder"}))
    assert (org["name"], org["workflow_mode"]) == ("Acme", "founder")
    assert ok(ada.patch(world.path("/organisations/{A}"), json={})) == org
    assert ada.patch(world.path("/organisations/{A}"), json={"name": None}).status_code == 400
    assert ada.patch(world.path("/organisations/{A}"), json={"name": "   "}).json()["error"]["field"] == "name"
    assert ada.patch(world.path("/organisations/{A}"), json={"owner": 1}).status_code == 400  # unknown field

    url = world.path("/organisations/{A}/projects/{SEC}")
    led = ok(ada.patch(url, json={"lead_user_id": world["vic"], "description": "Secret stuff"}))
    assert (led["lead_user_id"], led["description"], led["name"]) == (world["vic"], "Secret stuff", "Sec")
    assert ok(ada.patch(url, json={"name": "Secret"}))["lead_user_id"] == world["vic"]  # absent: unchanged
    cleared = ok(ada.patch(url, json={"lead_user_id": None}))
    assert (cleared["lead_user_id"], cleared["name"], cleared["description"]) == (None, "Secret", "Secret stuff")
    assert ada.patch(url, json={"key": "NEW"}).status_code == 400  # the key never changes
    assert ok(ada.get(url))["key"] == "SEC"
    # vic becomes lead by grant, and a lead manages the project (but still not the organisation).
    ok(ada.post(world.path("/organisations/{A}/projects/{SEC}/grants"), json={"user_id": world["vic"], "role": "lead"}))
    vic = world.clients["vic"]
    assert ok(vic.patch(url, json={"description": "by the lead"}))["description"] == "by the lead"
    assert vic.post(world.path("/organisations/{A}/projects"), json={
        "key": "VIC", "name": "V", "visibility": "open"}).status_code == 403

    # Archiving is a status change; the list filters by status and still shows only what you can read.
    mel, projects = world.clients["mel"], world.path("/organisations/{A}/projects")
    archived = ok(ada.patch(world.path("/organisations/{A}/projects/{OPEN}"), json={"status": "archived"}))
    assert archived["status"] == "archived"
    assert [p["key"] for p in ok(ada.get(projects, params={"status": "archived"}))] == ["OPEN"]
    assert [p["key"] for p in ok(ada.get(projects, params={"status": "active"}))] == ["SEC"]
    assert [p["key"] for p in ok(mel.get(projects, params={"status": "active"}))] == []
    assert [p["key"] for p in ok(ada.get(projects))] == ["OPEN", "SEC"]
    bad = ada.get(projects, params={"status": "deleted"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "status"


def test_create_validation_and_conflicts_name_the_field(world: World) -> None:
    ada = world.clients["ada"]
    projects = world.path("/organisations/{A}/projects")
    cases = [
        ({"key": "SEC", "name": "Again", "visibility": "open"}, 409, "key"),
        ({"key": "sec", "name": "Lower", "visibility": "open"}, 400, "key"),  # the document gives the pattern
        ({"key": "OK", "name": "No visibility"}, 400, "visibility"),
        ({"key": "OK", "name": "Bad", "visibility": "public"}, 400, "visibility"),
        ({"key": "OK", "name": " ", "visibility": "open"}, 400, "name"),
    ]
    for body, status, field_name in cases:
        response = ada.post(projects, json=body)
        assert (response.status_code, response.json()["error"].get("field")) == (status, field_name), body
    groups = world.path("/organisations/{A}/groups")
    assert ada.post(groups, json={"name": "design"}).status_code == 409
    grants = world.path("/organisations/{A}/projects/{SEC}/grants")
    both = ada.post(grants, json={"user_id": world["mel"], "group_id": world["G"], "role": "viewer"})
    neither = ada.post(grants, json={"role": "viewer"})
    assert both.status_code == neither.status_code == 422
    regrant = ok(ada.post(grants, json={"user_id": world["vic"], "role": "member"}))
    assert regrant["id"] == world["vic_grant"] and regrant["role"] == "member"  # upsert: one grant per holder


def test_group_lifecycle_and_revocation_through_the_group(world: World) -> None:
    ada, mel = world.clients["ada"], world.clients["mel"]
    ok(ada.put(world.path("/organisations/{A}/groups/{G}/members/{mel}")))
    ok(ada.put(world.path("/organisations/{A}/groups/{G}/members/{mel}")))  # idempotent
    sec = world.path("/organisations/{A}/projects/{SEC}")
    assert ok(mel.get(sec))["key"] == "SEC"
    ok(ada.delete(world.path("/organisations/{A}/groups/{G}/members/{mel}")), 204)
    assert mel.get(sec).status_code == 404
    assert ada.delete(world.path("/organisations/{A}/groups/{G}/members/{mel}")).status_code == 404
    ok(ada.put(world.path("/organisations/{A}/groups/{G}/members/{mel}")))
    assert ok(ada.patch(world.path("/organisations/{A}/groups/{G}"), json={"name": "Studio"}))["name"] == "Studio"
    ok(ada.delete(world.path("/organisations/{A}/groups/{G}")), 204)
    assert mel.get(sec).status_code == 404  # the group's grants went with it
    grants = ok(ada.get(world.path("/organisations/{A}/projects/{SEC}/grants")))
    assert world["G_grant"] not in [g["id"] for g in grants]


def test_openapi_documents_open_means_writable_and_restricted_is_not_isolation(table_world: World) -> None:
    doc = ok(table_world.clients["anonymous"].get(f"{API}/openapi.json"))
    project_ops = doc["paths"]["/api/organisations/{org_id}/projects"]
    for operation in (project_ops["get"], project_ops["post"]):
        assert "read AND write" in operation["description"] and "not tenant isolation" in operation["description"]
    explain = doc["paths"]["/api/organisations/{org_id}/access/explain"]["get"]
    assert "scope" in [p["name"] for p in explain["parameters"]]
    assert "arrives with records" in explain["description"]
    schemas = doc["components"]["schemas"]
    for shape in ("UserOut", "MemberOut", "AccessReviewOut", "ReviewedUserOut"):
        assert "password" not in str(schemas[shape])
