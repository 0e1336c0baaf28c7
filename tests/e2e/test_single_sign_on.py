"""Single sign-on against a real OpenID Connect provider on loopback (PyPI ``oidc-provider-mock``, a
WSGI app in a thread): sign-in through its login page, just-in-time accounts, invites, group → role mapping,
the provider rotating its signing key, break-glass password sign-in and RP-initiated logout. The app is the
real one on PostgreSQL (tests/postgres_fixtures.py)."""

from __future__ import annotations

import html
import io
import re
import threading
from urllib.parse import parse_qs, urlsplit

import flask
import oidc_provider_mock
import pytest
import requests
import sqlalchemy as sa
import werkzeug.serving
from authlib import jose
from oidc_provider_mock import run_server_in_thread

from tests.e2e.sso_helpers import CLIENT_SECRET, CSRF, csrf, mock_login, sso_yaml, start
from tests.postgres_fixtures import SECRET
from tow_http.cli import main as cli_main

RULES = ("      - {organisation: Acme, role: member}\n"
         "      - {organisation: Acme, role: admin, when_group: tow-admins}\n"
         "      - {organisation: Beta, role: member, when_group: beta}\n")


@pytest.fixture
def provider():
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def rotating_provider():
    """oidc-provider-mock as its own WSGI app, plus one route of ours: POST /test/rotate-key gives the provider a
    new signing key (a new ``kid``) in place of the old one, as a provider rotating its keys does."""
    app = oidc_provider_mock.app()

    @app.post("/test/rotate-key")
    def rotate_key():
        flask.g.oidc_provider_mock_storage.jwk = jose.RSAKey.generate_key(is_private=True)
        return "", 204

    server = werkzeug.serving.make_server("localhost", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def sso(provider, make_container, app_client):
    container = make_container(sso_yaml(provider, rules=RULES), OIDC_CLIENT_SECRET=CLIENT_SECRET)
    return lambda: app_client(container)


def person(email: str, *, groups: list[str] | None = None, verified: bool = True, name: str = "") -> dict:
    claims = {"email": email, "email_verified": verified, "name": name or email.split("@")[0].title()}
    if groups is not None:
        claims["groups"] = groups
    return claims


def roles(client) -> dict[str, str]:
    return {m["organisation_name"]: m["role"] for m in client.get("/api/me").json()["memberships"]}


def test_the_login_page_offers_single_sign_on_and_hides_the_password_form(sso):
    page = sso().get("/login").text
    assert "Sign in with single sign-on" in page and 'name="password"' not in page
    assert "first person to sign in becomes its server admin" in page
    assert 'name="password"' in sso().get("/login?local=1").text  # break-glass


def test_first_login_through_the_providers_page_is_the_server_admin_and_owner(sso, provider):
    ada = sso()
    response = mock_login(ada, provider, "ada-sub", person("Ada@Example.com"), next_path="/welcome")
    assert response.status_code == 303 and response.headers["location"] == "/welcome"
    cookies = response.headers.get_list("set-cookie")
    assert any(c.startswith("tow_session=") and "HttpOnly" in c for c in cookies)
    assert any(c.startswith("tow_oidc=") and "Max-Age=0" in c for c in cookies)  # the login in flight is gone
    me = ada.get("/api/me").json()
    assert me["email"] == "ada@example.com" and me["display_name"] == "Ada" and me["is_server_admin"] is True
    assert roles(ada) == {"Acme": "owner"}
    # signing in again finds the same account by (issuer, subject)
    again = sso()
    mock_login(again, provider, "ada-sub")
    assert again.get("/api/me").json()["id"] == me["id"]


def test_pkce_state_and_nonce_go_to_the_provider_and_the_state_cookie_is_hardened(sso):
    response = sso().get("/auth/oidc/start", follow_redirects=False)
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["state"][0] and query["nonce"][0] and query["state"] != query["nonce"]
    assert query["redirect_uri"] == ["http://127.0.0.1:8000/auth/oidc/callback"]
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("tow_oidc=") and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Path=/auth/oidc" in cookie and "Max-Age=600" in cookie


def test_the_state_cookie_is_secure_when_session_cookies_are(provider, make_container, app_client):
    yaml = "security:\n  session_cookie_secure: true\n" + sso_yaml(provider)
    response = app_client(make_container(yaml, OIDC_CLIENT_SECRET=CLIENT_SECRET)).get(
        "/auth/oidc/start", follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("tow_oidc=") and "Secure" in cookie and "HttpOnly" in cookie


def test_people_are_created_just_in_time_and_group_roles_follow_the_provider(sso, provider):
    ada = sso()
    mock_login(ada, provider, "ada-sub", person("ada@example.com"))
    beta = ada.post("/api/organisations", json={"name": "Beta"}).json()["id"]

    bob = sso()
    assert mock_login(bob, provider, "bob-sub", person("bob@example.com", groups=["eng"])).status_code == 303
    bob_id = bob.get("/api/me").json()["id"]
    assert roles(bob) == {"Acme": "member"}  # created just in time by the rule for everyone

    mock_login(bob, provider, "bob-sub", person("bob@example.com", groups=["eng", "tow-admins", "beta"]))
    assert roles(bob) == {"Acme": "admin", "Beta": "member"}

    mock_login(bob, provider, "bob-sub", person("bob@example.com"))  # no groups claim at all: nothing taken
    assert roles(bob) == {"Acme": "admin", "Beta": "member"}

    mock_login(bob, provider, "bob-sub", person("bob@example.com", groups=["eng"]))  # left both groups
    assert roles(bob) == {"Acme": "member"}

    # a role granted by hand is kept: the owner makes Bob admin of Acme and adds him to Beta by group again
    mock_login(bob, provider, "bob-sub", person("bob@example.com", groups=["beta"]))
    acme = next(m["organisation_id"] for m in ada.get("/api/me").json()["memberships"]
                if m["organisation_name"] == "Acme")
    assert ada.patch(f"/api/organisations/{acme}/members/{bob_id}", json={"role": "admin"}).status_code == 200
    assert ada.patch(f"/api/organisations/{beta}/members/{bob_id}", json={"role": "admin"}).status_code == 200
    mock_login(bob, provider, "bob-sub", person("bob@example.com", groups=[]))
    assert roles(bob) == {"Acme": "admin", "Beta": "admin"}  # neither was the mapping's any more

    audit = ada.get(f"/api/organisations/{acme}/audit").json()["items"]
    mapped = [(e["action"], e["details"].get("role")) for e in audit
              if e["target"] == f"user:{bob_id}" and "group mapping" in str(e["details"].get("via"))]
    assert ("member.joined", "member") in mapped and ("member.role_changed", "admin") in mapped
    assert ("member.role_changed", "member") in mapped
    beta_audit = ada.get(f"/api/organisations/{beta}/audit").json()["items"]
    assert any(e["action"] == "member.removed" and e["target"] == f"user:{bob_id}" for e in beta_audit)
    server = ada.get("/api/server/audit").json()["items"]
    assert any(e["action"] == "oidc.account_created" and e["target"] == f"user:{bob_id}" for e in server)


def test_nobody_is_created_when_no_rule_gives_an_organisation(provider, make_container, app_client):
    rules = "      - {organisation: Acme, role: member, when_group: staff}\n"
    container = make_container(sso_yaml(provider, rules=rules), OIDC_CLIENT_SECRET=CLIENT_SECRET)
    mock_login(app_client(container), provider, "ada-sub", person("ada@example.com"))  # first: admin, owner
    stranger = app_client(container)
    response = mock_login(stranger, provider, "eve-sub", person("eve@example.com", groups=["contractors"]))
    assert response.status_code == 403 and "not given any organisation" in response.text
    with container.engine().connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM users")).scalar() == 1


def test_an_invite_link_signs_someone_no_rule_maps_in_through_the_provider(provider, make_container, app_client):
    rules = "      - {organisation: Acme, role: member, when_group: staff}\n"
    container = make_container(sso_yaml(provider, rules=rules), OIDC_CLIENT_SECRET=CLIENT_SECRET)
    ada = app_client(container)
    mock_login(ada, provider, "ada-sub", person("ada@example.com"))
    acme = ada.get("/api/me").json()["memberships"][0]["organisation_id"]
    invite = ada.post(f"/api/organisations/{acme}/invites", json={"role": "admin", "email": "eve@example.com"}).json()
    eve = app_client(container)
    page = eve.get(f"/invite/{invite['token']}").text
    assert "Sign in with single sign-on and join" in page and 'name="password"' not in page
    start_link = html.unescape(re.search(r'id="sso-join" href="([^"]+)"', page).group(1))
    assert start_link == f"/auth/oidc/start?invite={invite['token']}"
    assert requests.put(f"{provider}/users/eve-sub", json=person("eve@example.com", groups=["contractors"]),
                        timeout=10).status_code == 204
    authorize = eve.get(start_link, follow_redirects=False).headers["location"]
    answer = requests.post(authorize, data={"sub": "eve-sub"}, allow_redirects=False, timeout=10)
    back = urlsplit(answer.headers["location"])
    response = eve.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/invite/{invite['token']}"
    assert roles(eve) == {}  # signed in, joined nothing yet: accepting is hers to do on the invite's page
    page = eve.get(response.headers["location"]).text
    assert "Accept the invite" in page and "eve@example.com" in page
    accepted = eve.post("/join", data={"csrf_token": CSRF.search(page).group(1), "token": invite["token"]},
                        follow_redirects=False)
    assert accepted.status_code == 303 and accepted.headers["location"] == f"/o/{acme}/today"
    assert roles(eve) == {"Acme": "admin"}
    # the invite is used now, and was for Eve's email: nobody else gets in with it, nor without one
    for who, says in (("mallory", "already been used"), ("walter", "not given any organisation")):
        refused = mock_login(app_client(container), provider, f"{who}-sub", person(f"{who}@example.com"),
                             invite=invite["token"] if who == "mallory" else "")
        assert refused.status_code in (403, 409) and says in refused.text and "Traceback" not in refused.text
    with container.engine().connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM users")).scalar() == 2


def test_logout_ends_the_session_here_and_at_the_provider(sso, provider):
    ada = sso()
    mock_login(ada, provider, "ada-sub", person("ada@example.com"))
    response = ada.post("/logout", data={"csrf_token": csrf(ada, "/welcome")}, follow_redirects=False)
    assert response.status_code == 200 and "signing you out at your single sign-on provider" in response.text
    assert any(c.startswith("tow_session=") and "Max-Age=0" in c for c in response.headers.get_list("set-cookie"))
    provider_logout = html.unescape(re.search(r'id="provider-logout" href="([^"]+)"', response.text).group(1))
    location = urlsplit(provider_logout)
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{provider}/oauth2/end_session"
    query = parse_qs(location.query)
    assert query["post_logout_redirect_uri"] == ["http://127.0.0.1:8000/login?signed_out=1"]
    assert query["id_token_hint"][0].count(".") == 2 and query["client_id"] == ["tow"]
    assert ada.get("/api/me").status_code == 401  # signed out here whatever the provider does
    # the provider's logout page confirms and sends the browser back to TOW's sign-in page
    page = requests.get(provider_logout, timeout=10)
    assert page.status_code == 200
    confirm = requests.post(f"{provider}/oauth2/end_session/confirm", allow_redirects=False, timeout=10,
                            data={"redirect_uri": query["post_logout_redirect_uri"][0]})
    assert confirm.headers["location"] == "http://127.0.0.1:8000/login?signed_out=1"


def kid_of(jwks_url: str) -> list[str]:
    return [key["kid"] for key in requests.get(jwks_url, timeout=10).json()["keys"]]


def test_keys_the_provider_rotates_are_fetched_again(rotating_provider, make_container, app_client):
    container = make_container(sso_yaml(rotating_provider), OIDC_CLIENT_SECRET=CLIENT_SECRET)
    ada = app_client(container)
    assert mock_login(ada, rotating_provider, "ada-sub", person("ada@example.com")).status_code == 303
    old_kids = kid_of(f"{rotating_provider}/jwks")
    assert requests.post(f"{rotating_provider}/test/rotate-key", timeout=10).status_code == 204
    assert kid_of(f"{rotating_provider}/jwks") != old_kids  # the old key is gone from the provider's JWKS
    again = app_client(container)  # the same TOW process, which still holds the old keys
    response = mock_login(again, rotating_provider, "ada-sub")
    assert response.status_code == 303, response.text
    assert again.get("/api/me").json()["email"] == "ada@example.com"


@pytest.fixture
def shell(provider, tmp_path, fresh_database_url, monkeypatch):
    """`tow ...` in-process on the single sign-on server's database and settings; ``stdin`` is what is piped in."""
    (tmp_path / "cli.yaml").write_text(sso_yaml(provider, rules=RULES))
    for name, value in (("DATABASE_URL", fresh_database_url), ("APP_SECRET", SECRET),
                        ("OIDC_CLIENT_SECRET", CLIENT_SECRET)):
        monkeypatch.setenv(name, value)

    def run(*argv: str, stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return cli_main(["--config", str(tmp_path / "cli.yaml"), *argv])

    return run


BREAK_GLASS = "a long operator password"


def break_glass_login(client, email: str, password: str = BREAK_GLASS):
    page = client.get("/login?local=1").text
    assert "Break-glass sign-in" in page and 'name="password"' in page
    return client.post("/login", follow_redirects=False, data={
        "csrf_token": csrf(client, "/login?local=1"), "email": email, "password": password, "next": ""})


def test_without_provider_logout_sign_out_ends_only_the_session_here(provider, make_container, app_client):
    yaml = sso_yaml(provider).replace("    provider_logout_enabled: true\n", "")  # the default: off
    ada = app_client(make_container(yaml, OIDC_CLIENT_SECRET=CLIENT_SECRET))
    mock_login(ada, provider, "ada-sub", person("ada@example.com"))
    response = ada.post("/logout", data={"csrf_token": csrf(ada, "/welcome")}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?signed_out=1"
    assert ada.get("/api/me").status_code == 401


def test_break_glass_a_server_admin_made_by_tow_users_create_admin_signs_in_with_a_password(sso, provider, shell):
    assert shell("users", "create-admin", "root@example.com", "--name", "Root", "--password-stdin",
                 stdin=BREAK_GLASS + "\n") == 0  # before anyone signed in: the first account
    root = sso()
    assert "first person to sign in" not in root.get("/login").text
    assert break_glass_login(root, "root@example.com").status_code == 303
    assert root.get("/api/me").json()["is_server_admin"] is True
    # the organisations the rules name are made by hand then; people from the provider join them by rule
    assert root.post("/api/organisations", json={"name": "Acme"}).status_code == 201
    bob = sso()
    assert mock_login(bob, provider, "bob-sub", person("bob@example.com", groups=["tow-admins"])).status_code == 303
    assert roles(bob) == {"Acme": "admin"} and bob.get("/api/me").json()["is_server_admin"] is False


def test_break_glass_a_single_sign_on_admin_given_a_password_signs_in_without_the_provider(sso, provider, shell):
    ada = sso()
    mock_login(ada, provider, "ada-sub", person("ada@example.com"))  # the first: server admin
    bob = sso()
    mock_login(bob, provider, "bob-sub", person("bob@example.com"))
    for email in ("ada@example.com", "bob@example.com"):
        assert shell("users", "set-password", email, stdin=BREAK_GLASS + "\n") == 0
    assert break_glass_login(sso(), "ada@example.com").status_code == 303
    refused = break_glass_login(sso(), "bob@example.com")  # not a server admin: single sign-on only
    assert refused.status_code == 403 and "single sign-on" in refused.text
    registering = sso().post("/api/auth/register-first", json={
        "email": "x@example.com", "display_name": "X", "password": "correct horse battery", "organisation_name": "X"})
    assert registering.status_code == 403 and "single sign-on" in registering.json()["error"]["message"]


def test_a_provider_that_is_down_gives_a_clear_page(make_container, app_client):
    container = make_container(sso_yaml("http://127.0.0.1:9"), OIDC_CLIENT_SECRET=CLIENT_SECRET)
    response = app_client(container).get("/auth/oidc/start", follow_redirects=False)
    assert response.status_code == 503 and "cannot be reached" in response.text
    assert "Traceback" not in response.text and response.headers["retry-after"]


def test_without_single_sign_on_its_routes_are_not_found(app_client):
    assert app_client().get("/auth/oidc/start").status_code == 404
    assert start  # the helper module is shared with the hostile suite
