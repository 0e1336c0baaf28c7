"""Single sign-on against a hostile or broken provider (tests/fake_oidc_provider.py, our own, on loopback):
every bad answer is refused with a page that says why — never a 500 or a stack trace — and nothing is
created. Also key rotation (the provider's JWKS changes between logins) and the PKCE verifier."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest
import sqlalchemy as sa
from joserfc import jws
from joserfc.jwk import OctKey, RSAKey

from tests.e2e.sso_helpers import CLIENT_SECRET, sso_yaml, start
from tests.fake_oidc_provider import FakeOidcProvider


@pytest.fixture
def fake():
    provider = FakeOidcProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def world(fake, make_container, app_client):
    def build(extra: str = ""):
        container = make_container(sso_yaml(fake.issuer, extra=extra), OIDC_CLIENT_SECRET=CLIENT_SECRET)
        return container, lambda: app_client(container)
    return build


def count(container, table: str) -> int:
    with container.engine().connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()


def attempt(client, fake, code: str, *, header=None, key=None, unsigned=False, **claims):
    """A login this browser starts, answered by the fake provider with an ID token made from ``claims``."""
    _, query = start(client)
    fake.issue(code, fake.claims(query["nonce"], **claims), header=header, key=key, unsigned=unsigned)
    return client.get(f"/auth/oidc/callback?code={code}&state={query['state']}", follow_redirects=False)


def assert_refused(response, container, says: str) -> None:
    assert response.status_code == 403, response.text
    assert says in response.text and "Traceback" not in response.text
    assert not any(c.startswith("tow_session=") for c in response.headers.get_list("set-cookie"))
    assert count(container, "users") == 0 and count(container, "oidc_identities") == 0
    assert count(container, "sessions") == 0


BAD_TOKENS = {
    "wrong issuer": ({"iss": "http://127.0.0.1:1/evil"}, "issued by"),
    "wrong audience": ({"aud": "another-app"}, "another application"),
    "several audiences, azp another app": ({"aud": ["tow", "x"], "azp": "x"}, "another application"),
    "expired": ({"exp": int(time.time()) - 3600}, "expired"),
    "no expiry": ({"exp": None}, "expired"),
    "wrong nonce": ({"nonce": "not-the-browsers-nonce"}, "nonce does not match"),
    "missing nonce": ({"nonce": None}, "nonce does not match"),
    "no subject": ({"sub": ""}, "no subject"),
}


@pytest.mark.parametrize("case", BAD_TOKENS, ids=list(BAD_TOKENS))
def test_id_tokens_failing_a_check_are_refused(world, fake, case):
    container, browser = world()
    claims, says = BAD_TOKENS[case]
    assert_refused(attempt(browser(), fake, "code-1", **claims), container, says)


def test_an_unsigned_token_alg_none_is_refused(world, fake):
    container, browser = world()
    assert_refused(attempt(browser(), fake, "code-1", unsigned=True), container, "unsigned (alg none)")


def test_a_token_signed_with_a_key_the_provider_does_not_publish_is_refused(world, fake):
    container, browser = world()
    rogue = RSAKey.generate_key(2048, parameters={"kid": "rogue"})
    assert_refused(attempt(browser(), fake, "code-1", key=rogue), container, "does not publish")
    assert fake.jwks_fetches == 2  # the unknown kid made TOW refetch the keys once, then refuse
    forged = RSAKey.generate_key(2048, parameters={"kid": "key-1"})  # the published kid, another key
    assert_refused(attempt(browser(), fake, "code-2", key=forged), container, "signature does not verify")
    nameless = {"kid": None}  # no kid at all: every published key is tried, none verifies
    assert_refused(attempt(browser(), fake, "code-3", key=rogue, header=nameless), container,
                   "signature does not verify")


def test_hs256_signed_with_the_client_secret_is_refused_unless_configured(world, fake):
    container, browser = world()
    client = browser()
    _, query = start(client)
    payload = json.dumps(fake.claims(query["nonce"])).encode()
    fake.issue("code-1", {}, token=jws.serialize_compact({"alg": "HS256"}, payload, OctKey.import_key(CLIENT_SECRET)))
    response = client.get(f"/auth/oidc/callback?code=code-1&state={query['state']}", follow_redirects=False)
    assert_refused(response, container, "HS256, which auth.oidc.allowed_algorithms does not allow")


def test_a_tampered_state_is_refused(world, fake):
    container, browser = world()
    client = browser()
    _, query = start(client)
    fake.issue("code-1", fake.claims(query["nonce"]))
    response = client.get(f"/auth/oidc/callback?code=code-1&state={query['state']}x", follow_redirects=False)
    assert_refused(response, container, "does not belong to the sign-in this browser started")
    assert fake.token_requests == []  # refused before the code was even redeemed


def test_a_tampered_state_cookie_is_refused(world, fake):
    container, browser = world()
    client = browser()
    _, query = start(client)
    fake.issue("code-1", fake.claims(query["nonce"]))
    value = client.cookies.get("tow_oidc")
    client.cookies.clear()
    forged = value[:10] + ("A" if value[10] != "A" else "B") + value[11:]
    response = client.get(f"/auth/oidc/callback?code=code-1&state={query['state']}", follow_redirects=False,
                          headers={"Cookie": f"tow_oidc={forged}"})
    assert_refused(response, container, "not started in this browser")


def test_a_login_started_in_another_browser_is_refused(world, fake):
    container, browser = world()
    victim, attacker = browser(), browser()
    _, query = start(attacker)  # the attacker's own login ...
    fake.issue("code-1", fake.claims(query["nonce"]))
    start(victim)  # ... answered into the victim's browser, which started another one (or none)
    for client in (victim, browser()):
        response = client.get(f"/auth/oidc/callback?code=code-1&state={query['state']}", follow_redirects=False)
        assert_refused(response, container, "this browser")


def test_a_replayed_code_is_refused(world, fake):
    container, browser = world()
    client = browser()
    _, query = start(client)
    fake.issue("code-1", fake.claims(query["nonce"]))
    cookie = client.cookies.get("tow_oidc")
    callback = f"/auth/oidc/callback?code=code-1&state={query['state']}"
    assert client.get(callback, follow_redirects=False).status_code == 303
    users = count(container, "users")
    replay = browser().get(callback, follow_redirects=False, headers={"Cookie": f"tow_oidc={cookie}"})
    assert replay.status_code == 403 and "refused the sign-in code (invalid_grant)" in replay.text
    assert count(container, "users") == users and count(container, "sessions") == 1


def test_the_provider_saying_no_is_a_clear_page(world):
    container, browser = world()
    client = browser()
    _, query = start(client)
    response = client.get(f"/auth/oidc/callback?error=access_denied&error_description=User+said+no&state="
                          f"{query['state']}", follow_redirects=False)
    assert_refused(response, container, "the provider did not sign you in: access_denied (User said no)")


def test_an_unverified_email_cannot_take_over_an_existing_account(world, fake):
    container, browser = world("    link_existing_by_email: true\n")
    assert attempt(browser(), fake, "code-1", sub="ada", email="ada@example.com").status_code == 303
    before = count(container, "oidc_identities")
    refused = attempt(browser(), fake, "code-2", sub="mallory", email="Ada@Example.com", email_verified=False)
    assert refused.status_code == 403 and "already exists" in refused.text and "Traceback" not in refused.text
    assert count(container, "oidc_identities") == before and count(container, "users") == 1
    assert count(container, "sessions") == 1
    # a verified email links when the server allows it: the same account, a second identity
    linked = browser()
    assert attempt(linked, fake, "code-3", sub="ada-2", email="ada@example.com").status_code == 303
    assert count(container, "users") == 1 and count(container, "oidc_identities") == 2


def test_a_verified_email_is_not_linked_unless_the_server_allows_it(world, fake):
    container, browser = world()
    assert attempt(browser(), fake, "code-1", sub="ada", email="ada@example.com").status_code == 303
    refused = attempt(browser(), fake, "code-2", sub="other", email="ada@example.com")
    assert refused.status_code == 403 and "not linked to your provider account" in refused.text
    assert count(container, "oidc_identities") == 1


def test_an_unverified_email_creates_no_account_when_verification_is_required(world, fake):
    container, browser = world()
    assert_refused(attempt(browser(), fake, "code-1", email_verified=False), container, "has not verified")


def test_keys_rotated_at_the_provider_are_fetched_again(world, fake):
    container, browser = world()
    assert attempt(browser(), fake, "code-1").status_code == 303
    assert fake.jwks_fetches == 1
    fake.rotate()
    assert attempt(browser(), fake, "code-2").status_code == 303  # signed with the new key, unknown kid
    assert fake.jwks_fetches == 2 and count(container, "sessions") == 2


def test_the_pkce_verifier_matches_the_challenge_sent_to_the_provider(world, fake):
    _, browser = world()
    client = browser()
    _, query = start(client)
    fake.issue("code-1", fake.claims(query["nonce"]))
    assert client.get(f"/auth/oidc/callback?code=code-1&state={query['state']}",
                      follow_redirects=False).status_code == 303
    verifier = fake.token_requests[0]["code_verifier"][0]
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert digest == query["code_challenge"] and fake.token_requests[0]["grant_type"] == ["authorization_code"]


def test_access_tokens_follow_key_rotation_but_unknown_kids_refetch_the_keys_at_most_every_10_seconds(fake):
    """The MCP server's provider access tokens (``OidcProvider.verify_access_token``): anyone can send one naming
    a made-up key, so such a token refetches the JWKS only when it was fetched more than 10 s ago; a real
    rotation is then picked up."""
    from tow_adapters.oidc_provider import KEY_REFETCH_SECONDS, OidcOptions, OidcProvider
    from tow_core.errors import InvalidToken

    now = [time.time()]
    adapter = OidcProvider(OidcOptions(issuer_url=fake.issuer, client_id="tow", client_secret=CLIENT_SECRET,
                                       redirect_uri="http://127.0.0.1/cb", post_logout_redirect_uri="http://127.0.0.1/"),
                           clock=lambda: now[0])

    def token(key: RSAKey, **claims) -> str:
        body = {"iss": fake.issuer, "sub": "subject-1", "aud": "tow-mcp", "scope": "tow:write",
                "exp": int(now[0]) + 300, **claims}
        return jws.serialize_compact({"alg": "RS256", "kid": key.kid}, json.dumps(body).encode(), key)

    access = adapter.verify_access_token(token(fake.key), audience="tow-mcp")
    assert (access.subject, access.scopes, fake.jwks_fetches) == ("subject-1", frozenset({"tow:write"}), 1)
    stranger = RSAKey.generate_key(2048, parameters={"kid": "made-up"})
    for _ in range(3):
        with pytest.raises(InvalidToken, match="does not publish"):
            adapter.verify_access_token(token(stranger), audience="tow-mcp")
    assert fake.jwks_fetches == 1  # fetched just now: no refetch for a made-up kid
    rotated = fake.rotate()
    now[0] += KEY_REFETCH_SECONDS + 1
    assert adapter.verify_access_token(token(rotated), audience="tow-mcp").subject == "subject-1"
    assert fake.jwks_fetches == 2
    with pytest.raises(InvalidToken, match="audience"):
        adapter.verify_access_token(token(rotated), audience="another-api")
