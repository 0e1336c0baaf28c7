"""Personal access tokens over HTTP on a real PostgreSQL (issue 15), written as attacks: wrong, expired,
revoked and read-only tokens, another organisation through a limited token, a bearer token on a page, a
cross-site bearer request, a deactivated user, tokens outliving sign out everywhere — and the leak check: a
token never reads more than its user, so every read path answers a bearer request exactly as it answers
that user's session cookie."""

from __future__ import annotations

import pytest

from tests.e2e.org_world import shared_world

BAD_TOKEN = 'Bearer error="invalid_token"'


@pytest.fixture(scope="module")
def world(embedded_postgres, tmp_path_factory):
    yield from shared_world(embedded_postgres, tmp_path_factory, "tokens_api")


def new_token(client, **body) -> dict:
    response = client.post("/api/me/tokens", json={"name": "script", **body})
    assert response.status_code == 201, response.text
    return response.json()


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def anonymous(world):
    return world.client()  # no cookie


def test_a_token_is_shown_once_listed_without_its_secret_and_works_on_the_api(world):
    created = new_token(world.bob, access="read")
    secret = created["secret"]
    assert secret.startswith("tow_pat_") and secret.startswith(created["token"]["prefix"])
    listed = world.bob.get("/api/me/tokens").json()
    assert [t["id"] for t in listed][:1] == [created["token"]["id"]] and secret not in str(listed)
    me = anonymous(world).get("/api/me", headers=bearer(secret))
    assert me.status_code == 200 and me.json()["id"] == world.bob_id
    assert world.bob.get("/api/me/tokens").json()[0]["last_used_at"] is not None


@pytest.mark.parametrize("header", ["Bearer tow_pat_" + "A" * 43, "Bearer not-a-tow-token", "Bearer "])
def test_a_wrong_token_is_401_invalid_token(world, header):
    response = anonymous(world).get("/api/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == BAD_TOKEN
    assert response.json()["error"]["code"] == "invalid_token"


def test_an_expired_token_is_401(world):
    secret = new_token(world.bob)["secret"]
    world.sql("UPDATE personal_access_tokens SET created_at = now() - interval '2 days', "
              "expires_at = now() - interval '1 second' WHERE prefix = :p", p=secret[:14])
    response = anonymous(world).get("/api/me", headers=bearer(secret))
    assert response.status_code == 401 and response.headers["www-authenticate"] == BAD_TOKEN


def test_a_revoked_token_is_401_and_only_its_owner_revokes_it(world):
    created = new_token(world.bob)
    token_id = created["token"]["id"]
    assert world.cy.delete(f"/api/me/tokens/{token_id}").status_code == 404
    assert world.bob.delete(f"/api/me/tokens/{token_id}").status_code == 204
    response = anonymous(world).get("/api/me", headers=bearer(created["secret"]))
    assert response.status_code == 401 and response.headers["www-authenticate"] == BAD_TOKEN


def test_a_read_only_token_is_refused_on_every_write(world):
    secret = new_token(world.bob, access="read")["secret"]
    client = anonymous(world)
    attempts = [client.post(f"{world.base}/records", headers=bearer(secret), json={
                    "type": "memory", "title": "via token", "scope": world.scope("OPS"),
                    "fields": {"memory_type": "fact"}}),
                client.post("/api/auth/logout-everywhere", headers=bearer(secret)),
                client.delete("/api/me/tokens/1", headers=bearer(secret))]
    for response in attempts:
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "token_read_only"
    assert client.get(f"{world.base}/records", headers=bearer(secret)).status_code == 200


def test_a_read_write_token_writes_as_its_user_without_csrf_even_from_another_site(world):
    secret = new_token(world.bob, access="read_write")["secret"]
    hostile = {**bearer(secret), "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    response = anonymous(world).post(f"{world.base}/records", headers=hostile, json={
        "type": "ticket", "title": "filed by a script", "scope": world.scope("OPS")})
    assert response.status_code == 201, response.text
    assert world.record(world.bob, response.json()["display_id"])["author_id"] == world.bob_id


def test_a_bearer_request_never_rides_on_the_browsers_cookie(world):
    # Bob's browser holds his cookie; a cross-site page adds a bearer token of its own: the cookie is dropped,
    # so the request is the (attacker's) token's alone, never Bob's session.
    secret = new_token(world.cy, access="read")["secret"]
    response = world.bob.get("/api/me", headers=bearer(secret))
    assert response.json()["id"] == world.cy_id


def test_a_token_limited_to_one_organisation_gets_404_elsewhere(world):
    other = world.ada.post("/api/organisations", json={"name": "Elsewhere"})
    assert other.status_code == 201, other.text
    other_id = other.json()["id"]
    limited = new_token(world.ada, organisation_id=world.org)["secret"]
    client = anonymous(world)
    assert client.get(f"/api/organisations/{other_id}/projects", headers=bearer(limited)).status_code == 404
    assert client.get(f"{world.base}/projects", headers=bearer(limited)).status_code == 200
    everywhere = new_token(world.ada)["secret"]
    assert client.get(f"/api/organisations/{other_id}/projects", headers=bearer(everywhere)).status_code == 200
    assert world.bob.post("/api/me/tokens", json={"name": "x", "organisation_id": other_id}).status_code == 404


def test_a_bearer_token_on_a_page_is_signed_out(world):
    secret = new_token(world.bob)["secret"]
    page = anonymous(world).get(f"/o/{world.org}/profile", headers=bearer(secret), follow_redirects=False)
    assert page.status_code in (302, 303, 401) and "/login" in page.headers.get("location", "/login")


def test_a_token_cannot_create_tokens(world):
    secret = new_token(world.bob, access="read_write")["secret"]
    response = anonymous(world).post("/api/me/tokens", headers=bearer(secret), json={"name": "more"})
    assert response.status_code == 403


def test_sign_out_everywhere_revokes_the_users_tokens(world):
    client, _ = world.join("dora")
    secret = new_token(client)["secret"]
    assert client.post("/api/auth/logout-everywhere").status_code in (200, 204)
    assert anonymous(world).get("/api/me", headers=bearer(secret)).status_code == 401


def test_a_deactivated_users_token_stops_working(world):
    client, user_id = world.join("eli")
    secret = new_token(client)["secret"]
    world.sql("UPDATE users SET is_active = false WHERE id = :u", u=user_id)
    assert anonymous(world).get("/api/me", headers=bearer(secret)).status_code == 401


def test_owners_see_and_revoke_members_tokens_and_members_do_not(world):
    created = new_token(world.cy, access="read")
    listed = world.ada.get(f"{world.base}/tokens")
    assert listed.status_code == 200
    mine = [t for t in listed.json() if t["token"]["id"] == created["token"]["id"]]
    assert mine and mine[0]["owner"]["email"] == "cy@example.com" and created["secret"] not in listed.text
    assert world.bob.get(f"{world.base}/tokens").status_code == 403
    assert world.ada.delete(f"{world.base}/tokens/{created['token']['id']}").status_code == 204
    assert anonymous(world).get("/api/me", headers=bearer(created["secret"])).status_code == 401
    audit = world.ada.get(f"{world.base}/audit", params={"action": "token.revoked"}).json()
    assert any(e["target"] == f"token:{created['token']['id']}" for e in audit["items"])


# --- the leak check: a token reads exactly what its user's session reads -------------------------------

def _reads(world, displays: list[str]) -> list[str]:
    base = world.base
    paths = [f"{base}/records", f"{base}/records?q=leakcheck", f"{base}/projects", "/api/agent-runs",
             f"{base}/memory-diffs"]
    return paths + [f"{base}/records/{d}" for d in displays]


@pytest.mark.parametrize("name", ["ada", "bob", "cy"])
def test_a_token_reads_exactly_what_its_users_session_reads(world, name):
    scopes = [world.scope("APP"), world.scope("OPS"), world.scope("SEC"), {"kind": "organisation"},
              {"kind": "user", "id": world.ada_id}]  # private: only Ada reads it
    displays = [world.create(world.ada, type="memory", title=f"leakcheck {i}", body="leakcheck", scope=scope,
                             fields={"memory_type": "fact"})["display_id"] for i, scope in enumerate(scopes)]
    session = getattr(world, name)
    tokens = [new_token(session, access="read")["secret"], new_token(session, organisation_id=world.org)["secret"]]
    for path in _reads(world, displays):
        by_cookie = session.get(path)
        for secret in tokens:
            by_token = anonymous(world).get(path, headers=bearer(secret))
            assert (by_token.status_code, _stable(by_token)) == (by_cookie.status_code, _stable(by_cookie)), path


def _stable(response) -> object:
    """The answer without the parts that differ between any two requests (none for these reads, but the
    request id of an error)."""
    return response.json() if response.headers.get("content-type", "").startswith("application/json") else None
