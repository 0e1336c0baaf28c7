"""Builtin accounts, sessions and invites over HTTP on a real PostgreSQL — written as attacks."""

from __future__ import annotations

import re

import sqlalchemy as sa
from litestar.testing import TestClient

from tow_http.session_cookie import SessionCookieSigner

FIRST = {"email": "Ada@Example.com", "display_name": "Ada", "password": "correct horse battery", "organisation_name": "Acme"}
COOKIE = "tow_session"


def bootstrap(client):
    response = client.post("/api/auth/register-first", json=FIRST)
    assert response.status_code == 201, response.text
    return response


def invite(client, org_id: int, **body) -> dict:
    response = client.post(f"/api/organisations/{org_id}/invites", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def register(client, token: str, email: str, password: str = "another good password"):
    return client.post("/api/auth/register", json={
        "invite_token": token, "email": email, "display_name": email.split("@")[0], "password": password,
    })


def test_first_account_is_server_admin_and_owner_and_gets_a_hardened_cookie(app_client):
    client = app_client()
    assert client.get("/api/auth/setup").json() == {"needs_first_account": True, "auth_mode": "builtin"}
    response = bootstrap(client)
    me = response.json()
    assert me["email"] == "ada@example.com" and me["is_server_admin"] is True
    assert me["memberships"][0]["role"] == "owner" and me["memberships"][0]["organisation_name"] == "Acme"
    set_cookie = response.headers["set-cookie"].lower()
    assert set_cookie.startswith(f"{COOKIE}=")
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie and "secure" not in set_cookie
    assert "max-age=2592000" in set_cookie
    assert client.get("/api/me").json()["id"] == me["id"]
    assert client.get("/api/auth/setup").json()["needs_first_account"] is False


def test_registration_after_the_first_account_needs_an_invite(app_client):
    client = app_client()
    bootstrap(client)
    again = app_client().post("/api/auth/register-first", json={**FIRST, "email": "eve@example.com"})
    assert again.status_code == 403
    assert "invite" in again.json()["error"]["message"]


def test_cookie_is_secure_and_renamed_per_configuration(app_client, make_container):
    container = make_container(
        "security:\n  session_cookie_name: acme_sid\n  session_cookie_secure: true\n  session_max_age_seconds: 3600\n"
    )
    response = app_client(container).post("/api/auth/register-first", json=FIRST)
    set_cookie = response.headers["set-cookie"].lower()
    assert set_cookie.startswith("acme_sid=") and "; secure" in set_cookie and "max-age=3600" in set_cookie


def test_login_errors_are_generic_and_the_session_id_rotates(app_client):
    client = app_client()
    first_cookie = bootstrap(client).cookies[COOKIE]
    stranger = app_client()
    wrong_password = stranger.post("/api/auth/login", json={"email": FIRST["email"], "password": "nope nope nope"})
    unknown_email = stranger.post("/api/auth/login", json={"email": "nobody@example.com", "password": "nope nope"})
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json()
    relogin = client.post("/api/auth/login", json={"email": "ADA@example.com", "password": FIRST["password"]})
    assert relogin.status_code == 200
    assert relogin.cookies[COOKIE] != first_cookie


def test_login_is_throttled_per_account_and_address_with_retry_after(app_client):
    client = app_client()
    bootstrap(client)
    attacker = app_client()  # the same address ("testclient") as the owner's
    for _ in range(5):
        assert attacker.post("/api/auth/login", json={"email": FIRST["email"], "password": "guess guess"}).status_code == 401
    throttled = attacker.post("/api/auth/login", json={"email": FIRST["email"], "password": FIRST["password"]})
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["retry-after"]) <= 15 * 60
    assert throttled.json()["error"]["code"] == "throttled"


def test_login_is_throttled_per_client_ip_across_accounts(app_client):
    client = app_client()
    bootstrap(client)
    attacker = app_client()
    for n in range(20):
        attacker.post("/api/auth/login", json={"email": f"user{n}@example.com", "password": "guess guess"})
    throttled = attacker.post("/api/auth/login", json={"email": FIRST["email"], "password": FIRST["password"]})
    assert throttled.status_code == 429 and throttled.headers["retry-after"]


class FromAddress:
    """The app as reached from ``host``: Litestar's TestClient says every client is "testclient"."""

    def __init__(self, app, host: str) -> None:
        self.app, self.host = app, host

    async def __call__(self, scope, receive, send):
        await self.app({**scope, "client": (self.host, 50000)}, receive, send)


def client_at(container, host: str) -> TestClient:
    return TestClient(FromAddress(container.app(), host), base_url="http://127.0.0.1:8000",
                      raise_server_exceptions=False)


def login(client, email: str = FIRST["email"], password: str = "a wrong guess"):
    return client.post("/api/auth/login", json={"email": email, "password": password})


def test_a_strangers_failures_from_many_addresses_never_lock_the_owner_out_of_their_usual_address(make_container):
    container = make_container()
    home = client_at(container, "198.51.100.7")
    bootstrap(home)
    assert login(home, password=FIRST["password"]).status_code == 200  # the owner's usual address
    answers = [login(client_at(container, f"203.0.113.{n}")).status_code for n in range(1, 21) for _ in range(5)]
    assert answers == [401] * 100  # 5 from each of 20 addresses: the per-account count is reached
    stranger = client_at(container, "203.0.113.1")
    own_address = login(stranger, password=FIRST["password"])
    assert own_address.status_code == 429 and own_address.json()["error"]["code"] == "throttled"
    hotel = login(client_at(container, "192.0.2.44"), password=FIRST["password"])  # the owner, never seen there
    assert hotel.status_code == 429 and 1 <= int(hotel.headers["retry-after"]) <= 15 * 60
    assert login(home, password=FIRST["password"]).status_code == 200
    # The sign-in page follows the same rule: the usual address gets in, the stranger's does not.
    for client, expected in ((home, 303), (stranger, 429)):
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
        page = client.post("/login", follow_redirects=False,
                           data={"csrf_token": token, "email": FIRST["email"], "password": FIRST["password"]})
        assert page.status_code == expected, page.text


def test_throttled_sign_ins_never_reveal_whether_an_email_exists(make_container):
    container = make_container()
    bootstrap(client_at(container, "198.51.100.7"))
    seen = {}
    for email, address in (("ada@example.com", "203.0.113.1"), ("nobody@example.com", "203.0.113.2")):
        stranger = client_at(container, address)
        answers = [login(stranger, email) for _ in range(7)]
        seen[email] = [(a.status_code, a.json()) for a in answers]
        assert [a.status_code for a in answers] == [401] * 5 + [429] * 2
        assert all(a.headers["retry-after"] for a in answers[5:])
    assert seen["ada@example.com"] == seen["nobody@example.com"]
    with container.engine().connect() as conn:  # each refused attempt before the limit counts, nothing more
        assert conn.execute(sa.text("SELECT count(*) FROM login_failures")).scalar_one() == 10


def test_logout_revokes_the_session_server_side(app_client):
    client = app_client()
    cookie = bootstrap(client).cookies[COOKIE]
    assert client.post("/api/auth/logout").status_code == 204
    replay = app_client()
    replay.cookies.set(COOKIE, cookie)
    assert replay.get("/api/me").status_code == 401


def test_sign_out_everywhere_revokes_every_session(app_client):
    laptop = app_client()
    bootstrap(laptop)
    phone = app_client()
    assert phone.post("/api/auth/login", json={"email": FIRST["email"], "password": FIRST["password"]}).status_code == 200
    assert phone.post("/api/auth/logout-everywhere").status_code == 204
    assert laptop.get("/api/me").status_code == 401
    assert phone.get("/api/me").status_code == 401


def tampered(cookie: str) -> list[str]:
    token, _, signature = cookie.partition(".")
    flipped_token = chr(ord(token[3]) ^ 1)
    other = SessionCookieSigner("a-completely-different-secret-value-1234").sign(token)
    return [
        token[:3] + flipped_token + token[4:] + "." + signature,  # bit flip in the token
        token + "." + signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1],  # in the MAC
        cookie[:-1],  # truncated
        cookie[: len(token)],  # signature removed
        token + "." + SessionCookieSigner.new_token()[:43],  # someone else's signature
        other,  # signed with a wrong secret
        "",
    ]


def test_tampered_cookies_are_always_rejected(app_client):
    client = app_client()
    cookie = bootstrap(client).cookies[COOKIE]
    for value in tampered(cookie):
        attacker = app_client()
        attacker.cookies.set(COOKIE, value)
        assert attacker.get("/api/me").status_code == 401, value


def test_app_secret_rotation_accepts_and_reissues_old_cookies_only_with_previous_secret(app_client, make_container):
    old = make_container()
    client = app_client(old)
    cookie = bootstrap(client).cookies[COOKIE]
    new_secret = "the-new-app-secret-" + "y" * 30
    rotated = make_container(APP_SECRET=new_secret, APP_SECRET_PREVIOUS=old.config().secrets.app_secret)
    during = app_client(rotated)
    during.cookies.set(COOKIE, cookie)
    response = during.get("/api/me")
    assert response.status_code == 200
    reissued = response.cookies[COOKIE]
    assert reissued != cookie and SessionCookieSigner(new_secret).verify(reissued) is not None
    after = app_client(make_container(APP_SECRET=new_secret))
    after.cookies.set(COOKIE, cookie)
    assert after.get("/api/me").status_code == 401
    after.cookies.set(COOKIE, reissued)
    assert after.get("/api/me").status_code == 200


def test_cross_site_state_changes_are_refused_before_acting(app_client):
    client = app_client()
    bootstrap(client)
    evil = client.post("/api/auth/logout-everywhere", headers={"Origin": "https://evil.example"})
    fetch = client.post("/api/auth/logout-everywhere", headers={"Sec-Fetch-Site": "cross-site"})
    assert evil.status_code == 403 and evil.json()["error"]["code"] == "cross_site_request"
    assert fetch.status_code == 403
    assert client.get("/api/me").status_code == 200, "the refused requests must not have signed us out"
    same_origin = client.post("/api/auth/logout", headers={"Origin": "http://127.0.0.1:8000"})
    assert same_origin.status_code == 204


def test_deactivated_user_is_signed_out_at_once(app_client, make_container):
    container = make_container()
    client = app_client(container)
    bootstrap(client)
    with container.engine().begin() as conn:
        conn.execute(sa.text("UPDATE users SET is_active = false"))
    assert client.get("/api/me").status_code == 401
    relogin = app_client(container).post("/api/auth/login", json={"email": FIRST["email"], "password": FIRST["password"]})
    assert relogin.status_code == 401


def test_invite_lifecycle_and_distinct_refusals(app_client, make_container):
    container = make_container()
    owner = app_client(container)
    org_id = bootstrap(owner).json()["memberships"][0]["organisation_id"]

    created = invite(owner, org_id, role="member", email="Bob@Example.com")
    assert created["invite"]["state"] == "pending" and created["accept_url"].endswith(created["token"])
    with container.engine().connect() as conn:
        stored = conn.execute(sa.text("SELECT token_hash FROM invites")).scalar()
    assert created["token"] not in stored  # only the hash is kept

    assert register(app_client(container), created["token"], "mallory@example.com").status_code == 403
    assert register(app_client(container), "not-a-real-token", "bob@example.com").status_code == 404
    bob = app_client(container)
    joined = register(bob, created["token"], "bob@example.com")
    assert joined.status_code == 201 and joined.json()["memberships"][0]["role"] == "member"
    used = register(app_client(container), created["token"], "bob@example.com")
    assert used.status_code == 409 and "already been used" in used.json()["error"]["message"]

    revoked = invite(owner, org_id)
    assert owner.delete(f"/api/organisations/{org_id}/invites/{revoked['invite']['id']}").status_code == 204
    gone = register(app_client(container), revoked["token"], "carol@example.com")
    assert gone.status_code == 409 and "revoked" in gone.json()["error"]["message"]

    expired = invite(owner, org_id)
    with container.engine().begin() as conn:
        conn.execute(sa.text("UPDATE invites SET expires_at = now() - interval '1 minute' WHERE id = :id"),
                     {"id": expired["invite"]["id"]})
    late = register(app_client(container), expired["token"], "dave@example.com")
    assert late.status_code == 409 and "expired" in late.json()["error"]["message"]

    states = {i["id"]: i["state"] for i in owner.get(f"/api/organisations/{org_id}/invites").json()}
    assert states == {created["invite"]["id"]: "used", revoked["invite"]["id"]: "revoked",
                      expired["invite"]["id"]: "expired"}

    # A plain member may not invite, list or revoke; nobody outside the organisation learns it exists.
    assert bob.post(f"/api/organisations/{org_id}/invites", json={}).status_code == 403
    assert bob.get(f"/api/organisations/{org_id}/invites").status_code == 403
    assert bob.post(f"/api/organisations/{org_id}/invites", json={"role": "owner"}).status_code == 403


def test_signed_in_user_accepts_an_invite_into_another_organisation(app_client, make_container):
    container = make_container()
    owner = app_client(container)
    org_id = bootstrap(owner).json()["memberships"][0]["organisation_id"]
    bob = app_client(container)
    register(bob, invite(owner, org_id)["token"], "bob@example.com")
    other_org = owner.post("/api/auth/register-first", json=FIRST)  # cannot: use the DB to make a second org
    assert other_org.status_code == 403
    with container.engine().begin() as conn:
        second = conn.execute(sa.text("INSERT INTO organisations (name) VALUES ('Beta') RETURNING id")).scalar()
        conn.execute(sa.text("INSERT INTO memberships (organisation_id, user_id, role) "
                             "SELECT :o, id, 'owner' FROM users WHERE email = 'ada@example.com'"), {"o": second})
    # The owner of Acme cannot create invites for Beta's id through Acme... but is owner of Beta now:
    beta_invite = invite(owner, second, role="admin")
    accepted = bob.post("/api/invites/accept", json={"token": beta_invite["token"]})
    assert accepted.status_code == 200
    roles = {m["organisation_id"]: m["role"] for m in accepted.json()["memberships"]}
    assert roles == {org_id: "member", second: "admin"}
    switched = bob.put("/api/me/active-organisation", json={"organisation_id": second})
    assert switched.status_code == 200 and switched.json()["active_organisation_id"] == second


def test_admin_of_another_organisation_cannot_touch_this_ones_invites(app_client, make_container):
    container = make_container()
    owner = app_client(container)
    org_id = bootstrap(owner).json()["memberships"][0]["organisation_id"]
    with container.engine().begin() as conn:
        other = conn.execute(sa.text("INSERT INTO organisations (name) VALUES ('Other') RETURNING id")).scalar()
    outsider = app_client(container)
    register(outsider, invite(owner, org_id)["token"], "out@example.com")
    with container.engine().begin() as conn:  # outsider is admin of Other only
        conn.execute(sa.text("DELETE FROM memberships WHERE user_id = (SELECT id FROM users WHERE email = :e)"),
                     {"e": "out@example.com"})
        conn.execute(sa.text("INSERT INTO memberships (organisation_id, user_id, role) SELECT :o, id, 'admin' "
                             "FROM users WHERE email = :e"), {"o": other, "e": "out@example.com"})
    created = invite(owner, org_id)
    assert outsider.get(f"/api/organisations/{org_id}/invites").status_code == 404
    assert outsider.post(f"/api/organisations/{org_id}/invites", json={}).status_code == 404
    assert outsider.delete(f"/api/organisations/{org_id}/invites/{created['invite']['id']}").status_code == 404
    # an invite id of this organisation under the outsider's own organisation's path does nothing either
    assert outsider.delete(f"/api/organisations/{other}/invites/{created['invite']['id']}").status_code == 404
    assert register(app_client(container), created["token"], "new@example.com").status_code == 201
