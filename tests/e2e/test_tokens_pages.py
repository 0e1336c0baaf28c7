"""Personal access tokens in the browser (issue 15): the "API tokens" section of the profile page creates a
token whose secret is shown on the answer page once and never again, lists it with its last use and revokes
it; owners and admins see and revoke their members' tokens on a settings page that members cannot open; a
page never signs in with a token."""

from __future__ import annotations

import re

import pytest

from tests.e2e.org_world import shared_world
from tests.e2e.test_pages_security import token_of

SECRET = re.compile(r'value="(tow_pat_[A-Za-z0-9_-]+)"')


@pytest.fixture(scope="module")
def world(embedded_postgres, tmp_path_factory):
    yield from shared_world(embedded_postgres, tmp_path_factory, "tokens_pages")


def profile(world, client) -> str:
    return f"/o/{world.org}/profile"


def create_on_page(world, client, **fields) -> str:
    page = profile(world, client)
    answer = client.post(f"{page}/tokens", data={"csrf_token": token_of(client, page), "name": "laptop script",
                                                 "expires_in_days": "30", "access": "read", **fields})
    assert answer.status_code == 200, answer.text
    assert "shown this once" in answer.text
    return SECRET.search(answer.text).group(1)


def test_the_profile_creates_a_token_shown_once_then_lists_it_with_its_last_use_and_revokes_it(world):
    secret = create_on_page(world, world.bob, name="nightly export")
    page = world.bob.get(profile(world, world.bob)).text
    assert "nightly export" in page and secret[:14] in page and secret not in page and "never" in page
    assert world.client().get("/api/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    listed = world.bob.get("/api/me/tokens").json()
    token = next(t for t in listed if t["name"] == "nightly export")
    assert token["access"] == "read" and token["last_used_at"] is not None
    assert "never" not in world.bob.get(profile(world, world.bob)).text.split("nightly export")[1].split("</tr>")[0]
    revoke = f"{profile(world, world.bob)}/tokens/{token['id']}/revoke"
    done = world.bob.post(revoke, data={"csrf_token": token_of(world.bob, profile(world, world.bob))},
                          follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("/profile#tokens")
    assert "nightly export" not in world.bob.get(profile(world, world.bob)).text
    assert world.client().get("/api/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_the_form_refuses_a_too_long_expiry_and_a_foreign_organisation_without_creating_anything(world):
    page = profile(world, world.cy)
    before = len(world.cy.get("/api/me/tokens").json())
    too_long = world.cy.post(f"{page}/tokens", data={"csrf_token": token_of(world.cy, page), "name": "x",
                                                     "expires_in_days": "9999", "access": "read"})
    assert too_long.status_code == 422 and "expires_in_days" in too_long.text
    foreign = world.cy.post(f"{page}/tokens", data={"csrf_token": token_of(world.cy, page), "name": "x",
                                                    "expires_in_days": "5", "organisation_id": "999999"})
    assert foreign.status_code == 404
    assert len(world.cy.get("/api/me/tokens").json()) == before


def test_someone_elses_token_cannot_be_revoked_from_the_profile(world):
    create_on_page(world, world.cy, name="cy only")
    cy_token = next(t for t in world.cy.get("/api/me/tokens").json() if t["name"] == "cy only")
    page = profile(world, world.bob)
    refused = world.bob.post(f"{page}/tokens/{cy_token['id']}/revoke", data={"csrf_token": token_of(world.bob, page)})
    assert refused.status_code == 404
    assert any(t["id"] == cy_token["id"] for t in world.cy.get("/api/me/tokens").json())


def test_owners_see_and_revoke_members_tokens_on_a_settings_page_members_cannot_open(world):
    secret = create_on_page(world, world.cy, name="cy's agent")
    settings = f"/o/{world.org}/settings/tokens"
    listing = world.ada.get(settings)
    assert listing.status_code == 200 and "cy&#39;s agent" in listing.text and "Cy" in listing.text
    assert secret not in listing.text and secret[:14] in listing.text
    assert world.bob.get(settings).status_code == 403
    token_id = next(t["id"] for t in world.cy.get("/api/me/tokens").json() if t["name"] == "cy's agent")
    done = world.ada.post(f"{settings}/{token_id}/revoke", data={"csrf_token": token_of(world.ada, settings)},
                          follow_redirects=False)
    assert done.status_code == 303
    assert world.client().get("/api/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert "cy&#39;s agent" not in world.ada.get(settings).text


def test_a_page_is_never_signed_in_by_a_token_nor_does_a_token_post_a_page_form(world):
    secret = create_on_page(world, world.bob, access="read_write")
    stranger = world.client()
    for path in (profile(world, stranger), f"/o/{world.org}/settings/tokens", f"/o/{world.org}/memory"):
        answer = stranger.get(path, headers={"Authorization": f"Bearer {secret}"}, follow_redirects=False)
        assert answer.status_code in (302, 303) and answer.headers["location"].startswith("/login"), path
    posted = stranger.post(f"{profile(world, stranger)}/tokens", headers={"Authorization": f"Bearer {secret}"},
                           data={"name": "minted from a page", "expires_in_days": "5"}, follow_redirects=False)
    assert posted.status_code in (401, 403)
    assert all(t["name"] != "minted from a page" for t in world.bob.get("/api/me/tokens").json())
