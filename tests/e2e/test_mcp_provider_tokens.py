"""The MCP server taking the single sign-on provider's access tokens (issue 15, ``mcp.oidc_access_tokens``) through
a live TOW and the official SDK's streamable-HTTP client. The provider is the real ``oidc-provider-mock`` (PyPI)
on loopback, set up the way a provider that issues JWT access tokens (RFC 9068) is: its authlib token endpoint
signs them with its own key, the one its JWKS publishes, for the audience ``tow-mcp``. An MCP client registered at
the provider gets one through the authorization code flow and calls TOW with it, as the account its subject is
linked to by a single sign-on login. Written as attacks where it matters: tokens with the wrong issuer or
audience, expired, signed with a key the provider does not publish, unsigned, HS256 with the client secret, for
a subject no login linked, for a deactivated account — each 401 ``invalid_token`` saying why, nothing created —
and a token without the write scope cannot write. Personal access tokens keep working beside them."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import flask
import oidc_provider_mock
import pytest
import requests
import sqlalchemy as sa
import werkzeug.serving
from joserfc import jws
from joserfc.jwk import OctKey, RSAKey
from litestar.testing import TestClient

from tests.e2e.browser.conftest import LiveServer, _free_port
from tests.e2e.sso_helpers import CLIENT_SECRET, mock_login, sso_yaml
from tests.e2e.test_mcp_server import error_text, payload, run  # the same SDK client over streamable HTTP

AUDIENCE = "tow-mcp"
CLIENT_REDIRECT = "http://127.0.0.1:9/callback"  # the MCP client's; never followed here


class Provider:
    """oidc-provider-mock issuing JWT access tokens, and an MCP client registered at it."""

    def __init__(self) -> None:
        self.storage = None
        app = flask.Flask(oidc_provider_mock.__name__)  # its templates (the login form)
        app.config["OAUTH2_ACCESS_TOKEN_GENERATOR"] = self._access_token
        oidc_provider_mock.init_app(app)
        app.secret_key = b"provider-session-key"

        @app.before_request
        def keep_storage() -> None:  # after the mock's own hook: its storage, to read its signing key
            self.storage = flask.g.oidc_provider_mock_storage

        self._server = werkzeug.serving.make_server("localhost", 0, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.issuer = f"http://localhost:{self._server.server_port}"
        client = requests.post(f"{self.issuer}/oauth2/clients", timeout=10, json={
            "redirect_uris": [CLIENT_REDIRECT], "scope": "openid profile email tow:write"}).json()
        self.client = (client["client_id"], client["client_secret"])

    @staticmethod
    def _access_token(client, grant_type, user, scope) -> str:
        """authlib's token generator hook: an RFC 9068 access token signed with the provider's key."""
        key = RSAKey.import_key(flask.g.oidc_provider_mock_storage.jwk.as_dict(is_private=True))
        now = int(time.time())
        claims = {"iss": flask.request.host_url.rstrip("/"), "sub": user.sub, "aud": AUDIENCE, "scope": scope,
                  "client_id": client.id, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        return jws.serialize_compact({"alg": "RS256", "typ": "at+jwt", "kid": key.kid}, json.dumps(claims), key)

    def access_token(self, sub: str, scope: str = "openid email") -> str:
        """What an MCP client gets: the authorization code flow through the provider's login form as ``sub``."""
        query = urlencode({"response_type": "code", "client_id": self.client[0], "redirect_uri": CLIENT_REDIRECT,
                           "scope": scope, "state": "client-state"})
        answer = requests.post(f"{self.issuer}/oauth2/authorize?{query}", data={"sub": sub}, allow_redirects=False,
                               timeout=10)
        assert answer.status_code == 302, answer.text
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        tokens = requests.post(f"{self.issuer}/oauth2/token", auth=self.client, timeout=10, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": CLIENT_REDIRECT}).json()
        return tokens["access_token"]

    def signing_key(self) -> RSAKey:
        return RSAKey.import_key(self.storage.jwk.as_dict(is_private=True))

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)


class Tow:
    def __init__(self, container, server: LiveServer, provider: Provider) -> None:
        self.container, self.server, self.provider = container, server, provider

    def browser(self) -> TestClient:
        return TestClient(self.container.app(), base_url=self.server.url, raise_server_exceptions=False)

    def sign_in(self, sub: str, email: str) -> tuple[TestClient, int]:
        """A single sign-on login through the provider's page: links ``sub`` to the account."""
        browser = self.browser()
        answer = mock_login(browser, self.provider.issuer, sub, {"email": email, "email_verified": True,
                                                                 "name": sub.title()})
        assert answer.status_code == 303, answer.text
        return browser, browser.get("/api/me").json()["id"]

    def count(self, table: str) -> int:
        with self.container.engine().connect() as conn:
            return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()

    def sql(self, statement: str, **params) -> None:
        with self.container.engine().begin() as conn:
            conn.execute(sa.text(statement), params)


@pytest.fixture(scope="module")
def tow(embedded_postgres, tmp_path_factory) -> Iterator[Tow]:
    from dependency_injector import providers

    from tests.postgres_fixtures import SECRET
    from tow_adapters.argon2_password_hasher import Argon2PasswordHasher
    from tow_http.composition import Container
    from tow_http.config import load_config

    provider = Provider()
    port = _free_port()
    embedded_postgres.ensure_database("mcp_provider_tokens")
    config_path = tmp_path_factory.mktemp("mcp-oidc") / "tow.yaml"
    config_path.write_text(f"runtime:\n  public_app_url: http://127.0.0.1:{port}\n" + sso_yaml(provider.issuer)
                           + f"mcp:\n  oidc_access_tokens: true\n  oidc_audience: {AUDIENCE}\n")
    container = Container(config=load_config(config_path, environ={"APP_SECRET": SECRET,
                                                                   "OIDC_CLIENT_SECRET": CLIENT_SECRET}),
                          database_url=embedded_postgres.url("mcp_provider_tokens"))
    container.password_hasher.override(providers.Object(Argon2PasswordHasher(time_cost=1, memory_cost=8,
                                                                             parallelism=1)))
    container.schema_migrator().upgrade()
    try:
        with LiveServer(container.app(), port, lifespan="on") as server:
            yield Tow(container, server, provider)
    finally:
        container.engine().dispose()
        provider.stop()


@pytest.fixture(scope="module")
def acme(tow):
    """Ada (first login: owner of Acme) and Bob (a member by the rule), linked by single sign-on; a doc everyone
    in Acme reads and one in a restricted project Bob has no grant in."""
    ada, ada_id = tow.sign_in("ada-sub", "ada@example.com")
    bob, bob_id = tow.sign_in("bob-sub", "bob@example.com")
    org = ada.get("/api/me").json()["active_organisation_id"]
    base = f"/api/organisations/{org}"
    secret = ada.post(f"{base}/projects", json={"key": "SEC", "name": "Security", "visibility": "restricted"}).json()

    def doc(title: str, scope: dict) -> str:
        created = ada.post(f"{base}/records", json={"type": "doc", "title": title, "body": title, "scope": scope})
        assert created.status_code == 201, created.text
        return created.json()["display_id"]

    return {"org": org, "ada": ada, "ada_id": ada_id, "bob": bob, "bob_id": bob_id,
            "open": doc("Runbook providertoken", {"kind": "organisation"}),
            "hidden": doc("Pentest providersecret", {"kind": "project", "id": secret["id"]})}


def initialize(tow: Tow, bearer: str) -> requests.Response:
    return requests.post(f"{tow.server.url}/api/mcp", timeout=30, headers={
        "Authorization": f"Bearer {bearer}", "Accept": "application/json, text/event-stream"}, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}})


def test_the_providers_access_token_reads_as_the_linked_account_and_never_more(tow, acme):
    bearer = tow.provider.access_token("bob-sub")
    org = acme["org"]

    async def work(session):
        tools = {t.name for t in (await session.list_tools()).tools}
        return (tools, await session.call_tool("search", {"organisation_id": org, "query": "providertoken"}),
                await session.call_tool("get_record", {"organisation_id": org, "display_id": acme["open"]}),
                await session.call_tool("list_records", {"organisation_id": org, "limit": 200}),
                await session.call_tool("search", {"organisation_id": org, "query": "providersecret"}),
                await session.call_tool("get_record", {"organisation_id": org, "display_id": acme["hidden"]}))

    tools, found, got, listed, hidden_search, hidden_get = run(tow, bearer, work)
    assert {"search", "get_record", "list_records", "backlinks", "create_ticket"} <= tools
    assert acme["open"] in [h["display_id"] for h in payload(found)["items"]]
    assert payload(got)["title"] == "Runbook providertoken"
    listed_ids = [r["display_id"] for r in payload(listed)["items"]]
    assert acme["open"] in listed_ids and acme["hidden"] not in listed_ids
    assert payload(hidden_search)["items"] == []
    assert error_text(hidden_get).startswith("not_found")
    # Ada's token, for the account that may read it, does
    ada = tow.provider.access_token("ada-sub")
    async def ada_reads(session):
        return await session.call_tool("get_record", {"organisation_id": org, "display_id": acme["hidden"]})
    assert payload(run(tow, ada, ada_reads))["title"] == "Pentest providersecret"


def test_only_a_token_with_the_write_scope_writes_and_then_as_its_user(tow, acme):
    ticket = {"organisation_id": acme["org"], "title": "filed with a provider token",
              "scope": {"kind": "organisation"}}

    async def create(session):
        return await session.call_tool("create_ticket", ticket)

    refused = run(tow, tow.provider.access_token("bob-sub", "openid email"), create)
    assert error_text(refused).startswith("token_read_only") and "write scope" in error_text(refused)
    created = payload(run(tow, tow.provider.access_token("bob-sub", "openid tow:write"), create))
    assert created["author_id"] == acme["bob_id"] and created["title"] == "filed with a provider token"


def test_personal_access_tokens_keep_working_beside_provider_tokens(tow, acme):
    created = acme["ada"].post("/api/me/tokens", json={"name": "mcp", "access": "read"})
    assert created.status_code == 201, created.text

    async def listing(session):
        return await session.call_tool("list_records", {"organisation_id": acme["org"], "types": ["doc"]})

    ids = [r["display_id"] for r in payload(run(tow, created.json()["secret"], listing))["items"]]
    assert acme["open"] in ids and acme["hidden"] in ids
    assert initialize(tow, "tow_pat_" + "x" * 43).status_code == 401


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forged(tow: Tow, *, key=None, header: dict | None = None, unsigned: bool = False, **overrides) -> str:
    """A token as an attacker makes it: the provider's claims for Bob with ``overrides`` (None drops one)."""
    now = int(time.time())
    claims = {"iss": tow.provider.issuer, "sub": "bob-sub", "aud": AUDIENCE, "scope": "openid tow:write",
              "iat": now, "exp": now + 300, **overrides}
    claims = {k: v for k, v in claims.items() if v is not None}
    if unsigned:
        return f"{_b64({'alg': 'none', 'typ': 'at+jwt'})}.{_b64(claims)}."
    key = key or tow.provider.signing_key()
    head = {"alg": "RS256", "typ": "at+jwt", "kid": getattr(key, "kid", None) or "k", **(header or {})}
    return jws.serialize_compact(head, json.dumps(claims).encode(), key)


def test_the_forgers_baseline_is_a_token_tow_accepts(tow, acme):
    """The hostile cases below change one thing each of this token, which passes every check."""
    assert initialize(tow, forged(tow)).status_code == 200


HOSTILE = {
    "wrong issuer": (dict(iss="http://localhost:1/evil"), "issued by"),
    "wrong audience": (dict(aud="some-other-api"), "not for this server"),
    "expired": (dict(exp=int(time.time()) - 3600), "expired"),
    "no expiry": (dict(exp=None), "expired"),
    "unknown kid": (dict(key="fresh"), "does not publish"),
    "alg none": (dict(unsigned=True), "unsigned"),
    "HS256 with the client secret": (dict(key="client secret"), "HS256"),
    "unlinked subject": (dict(sub="mallory-sub"), "not linked"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_access_tokens_are_401_saying_why_and_create_nothing(tow, acme, case):
    options, says = HOSTILE[case]
    options = dict(options)
    if options.get("key") == "fresh":
        options["key"] = RSAKey.generate_key(2048, parameters={"kid": "not-published"})
    elif options.get("key") == "client secret":
        options.update(key=OctKey.import_key(CLIENT_SECRET), header={"alg": "HS256"})
    users, identities = tow.count("users"), tow.count("oidc_identities")
    answer = initialize(tow, forged(tow, **options))
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    error = answer.json()["error"]
    assert error["code"] == "invalid_token" and says in error["message"], error
    assert (tow.count("users"), tow.count("oidc_identities")) == (users, identities)


def test_a_real_token_for_a_subject_no_login_linked_is_401_and_never_matched_by_email(tow, acme):
    # the provider says this person has Bob's email: TOW still finds accounts by (issuer, subject) only
    requests.put(f"{tow.provider.issuer}/users/lookalike-sub", timeout=10,
                 json={"email": "bob@example.com", "email_verified": True})
    users = tow.count("users")
    answer = initialize(tow, tow.provider.access_token("lookalike-sub"))
    assert answer.status_code == 401 and "not linked" in answer.json()["error"]["message"]
    assert tow.count("users") == users
    assert initialize(tow, "not.a-jwt.at-all").status_code == 401


def test_a_deactivated_account_or_a_removed_link_is_401_at_the_next_request(tow, acme):
    carol, carol_id = tow.sign_in("carol-sub", "carol@example.com")
    bearer = tow.provider.access_token("carol-sub")
    assert initialize(tow, bearer).status_code == 200
    tow.sql("UPDATE users SET is_active = false WHERE id = :u", u=carol_id)
    answer = initialize(tow, bearer)
    assert answer.status_code == 401 and "deactivated" in answer.json()["error"]["message"]
    tow.sql("UPDATE users SET is_active = true WHERE id = :u", u=carol_id)
    assert initialize(tow, bearer).status_code == 200
    tow.sql("DELETE FROM oidc_identities WHERE subject = 'carol-sub'")
    assert initialize(tow, bearer).status_code == 401
