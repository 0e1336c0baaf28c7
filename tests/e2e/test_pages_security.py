"""The browser pages' protections, attacked over HTTP: CSRF tokens bound to the session, the
Content-Security-Policy, no inline script, safe redirects, 404 for what you cannot see, masked secrets."""

from __future__ import annotations

import re

import pytest

from tests.postgres_fixtures import SECRET

PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def token_of(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return TOKEN.search(response.text).group(1)


def set_up(client) -> None:
    token = token_of(client, "/setup")
    response = client.post("/setup", follow_redirects=False, data={"csrf_token": token, "organisation_name": "Acme", "display_name": "Ada",
                                           "email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 303, response.text


def doc_count(client) -> int:
    return client.get("/api/organisations/1/records/count?type=doc").json()["count"]


def test_forms_without_the_sessions_token_are_refused_and_change_nothing(app_client):
    ada = app_client()
    set_up(ada)
    good = token_of(ada, "/o/1/docs")
    attempts = [{}, {"csrf_token": ""}, {"csrf_token": "forged"}, {"csrf_token": good + "x"}]
    for extra in attempts:
        response = ada.post("/o/1/records", follow_redirects=False, data={"type": "doc", "title": "forged", **extra})
        assert response.status_code == 403
        assert "did not come from this site" in response.text
    assert doc_count(ada) == 0

    # A token from another session (another user's page) does not work in this one ...
    eve = app_client()
    eve_token = token_of(eve, "/login")  # an anonymous token bound to Eve's own form cookie
    assert ada.post("/o/1/records", follow_redirects=False, data={"type": "doc", "title": "x", "csrf_token": eve_token}).status_code == 403
    # ... and a session's token dies with the session: sign out, sign in, the old token is refused.
    assert ada.post("/logout", follow_redirects=False, data={"csrf_token": good}).status_code == 303
    login_token = token_of(ada, "/login")
    ada.post("/login", follow_redirects=False, data={"csrf_token": login_token, "email": "ada@example.com", "password": PASSWORD})
    assert ada.post("/o/1/records", follow_redirects=False, data={"type": "doc", "title": "x", "csrf_token": good}).status_code == 403
    fresh = token_of(ada, "/o/1/docs")
    assert ada.post("/o/1/records", follow_redirects=False, data={"type": "doc", "title": "ok", "csrf_token": fresh}).status_code == 303
    assert doc_count(ada) == 1


def test_sign_in_form_needs_its_own_form_cookie(app_client):
    ada = app_client()
    set_up(ada)
    stranger = app_client()
    token = token_of(stranger, "/login")
    stranger.cookies.clear()  # a forged cross-site login form has the token but not the browser's cookie
    response = stranger.post("/login", follow_redirects=False, data={"csrf_token": token, "email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 403
    assert "tow_session" not in response.headers.get("set-cookie", "")


def test_cross_site_form_posts_are_refused_before_any_handler(app_client):
    ada = app_client()
    set_up(ada)
    token = token_of(ada, "/o/1/docs")
    response = ada.post("/o/1/records", follow_redirects=False, data={"type": "doc", "title": "x", "csrf_token": token},
                        headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert doc_count(ada) == 0


@pytest.mark.parametrize("path", ["/setup", "/login", "/o/1/memory", "/o/1/docs", "/o/1/tickets?view=board",
                                  "/o/1/decisions", "/o/1/risks", "/o/1/snapshots", "/o/1/search?q=release",
                                  "/o/1/memory-diffs", "/o/1/settings", "/o/1/settings/access",
                                  "/o/1/settings/audit", "/server", "/o/1/r/DOC-404"])
def test_every_page_has_a_strict_csp_and_no_inline_script_or_style(app_client, path):
    client = app_client()
    if path not in ("/setup", "/login"):
        set_up(client)
    response = client.get(path)
    assert response.status_code in (200, 404)
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    html = response.text
    assert re.findall(r"<script(?![^>]*\ssrc=)[^>]*>", html) == []
    assert " style=" not in html and "<style" not in html and " on" + "click=" not in html
    assert re.search(r'src="(https?:)?//', html) is None  # nothing from a CDN


def test_pages_send_strangers_to_sign_in_and_only_to_local_next_pages(app_client):
    ada = app_client()
    set_up(ada)
    anonymous = app_client()
    response = anonymous.get("/o/1/docs", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Fo%2F1%2Fdocs"
    for target, expected in [("//evil.example/x", "/o/1/today"), ("https://evil.example", "/o/1/today"),
                             ("/o/1/docs", "/o/1/docs")]:
        browser = app_client()
        token = token_of(browser, "/login")
        response = browser.post("/login", follow_redirects=False, data={"csrf_token": token, "email": "ada@example.com",
                                                "password": PASSWORD, "next": target})
        assert response.headers["location"] == expected


def test_other_organisations_and_records_are_404_pages(app_client, make_container):
    ada = app_client()
    set_up(ada)
    token = token_of(ada, "/o/1/docs")
    ada.post("/o/1/records", follow_redirects=False, data={"type": "doc", "title": "Secret plan", "body": "x", "scope": "user",
                                   "csrf_token": token})
    invite = ada.post("/api/organisations/1/invites", json={"role": "member"}).json()["token"]
    bob = app_client()
    join_token = token_of(bob, f"/invite/{invite}")
    bob.post("/join", follow_redirects=False, data={"csrf_token": join_token, "token": invite, "email": "bob@example.com",
                            "display_name": "Bob", "password": PASSWORD})
    ada.post("/o/1/records", follow_redirects=False, data={"type": "doc", "title": "Secret annex", "scope": "user",
                                                           "parent_id": "1", "csrf_token": token})
    assert "Secret annex" in ada.get("/o/1/doc-tree/DOC-1").text  # the sidebar's sub-tree, for its reader
    for path in ["/o/1/r/DOC-1", "/o/2/docs", "/o/1/docs?project=NOPE", "/o/1/doc-tree/DOC-1", "/o/1/doc-tree/DOC-2",
                 "/o/1/doc-tree/DOC-99", "/o/2/doc-tree/DOC-1"]:
        response = bob.get(path)
        assert response.status_code == 404, path
        assert "Secret" not in response.text and "Traceback" not in response.text
    assert "Secret" not in bob.get("/o/1/docs").text and "Secret" not in bob.get("/o/1/today").text  # sidebar
    assert "Secret plan" not in bob.get("/o/1/search?q=secret").text
    assert bob.get("/server").status_code == 404
    assert bob.get("/o/1/settings/access").status_code == 403


def test_server_settings_show_sources_and_mask_secrets(app_client):
    ada = app_client()
    set_up(ada)
    html = ada.get("/server").text
    assert "APP_SECRET" in html and SECRET not in html and "characters)" in html
    assert "runtime.public_app_url" in html and "default" in html
    assert "<dt>Configured</dt><dd>no" in html  # no OPENAI_API_KEY in this test server
    assert "AI is not configured on this server" in ada.get("/o/1/search").text


def test_bad_form_input_is_a_message_not_a_stack_trace(app_client):
    ada = app_client()
    set_up(ada)
    token = token_of(ada, "/o/1/docs")
    response = ada.post("/o/1/records", follow_redirects=False, data={"type": "doc", "title": "", "csrf_token": token})
    assert response.status_code == 422 and "title" in response.text and "Traceback" not in response.text
    htmx = ada.post("/o/1/records", follow_redirects=False, data={"type": "nonsense", "title": "x", "csrf_token": token},
                    headers={"HX-Request": "true", "HX-Trigger": "new-record-form"})
    assert htmx.status_code == 422 and htmx.headers["hx-retarget"] == "#new-record-form-error"
    assert "unknown record type" in htmx.text


def test_a_signed_in_member_accepts_an_invite_and_switches_organisation(app_client):
    ada = app_client()
    set_up(ada)
    acme_invite = ada.post("/api/organisations/1/invites", json={"role": "member"}).json()["token"]
    bob = app_client()
    bob.post("/join", follow_redirects=False, data={"csrf_token": token_of(bob, f"/invite/{acme_invite}"),
                                                    "token": acme_invite, "email": "bob@example.com",
                                                    "display_name": "Bob", "password": PASSWORD})
    beta = ada.post("/api/organisations", json={"name": "Beta"}).json()["id"]
    beta_invite = ada.post(f"/api/organisations/{beta}/invites", json={"role": "admin"}).json()["token"]

    page = bob.get(f"/invite/{beta_invite}")
    assert "signed in as <strong>Bob</strong>" in page.text and "Accept the invite" in page.text
    token = TOKEN.search(page.text).group(1)
    accepted = bob.post("/join", follow_redirects=False, data={"csrf_token": token, "token": beta_invite})
    assert accepted.headers["location"] == f"/o/{beta}/today"
    switcher = bob.get(f"/o/{beta}/memory").text
    assert "Acme (member)" in switcher and "Beta (admin)" in switcher
    again = bob.post("/join", follow_redirects=False, data={"csrf_token": token, "token": beta_invite},
                     headers={"HX-Request": "true", "HX-Trigger": "join-form"})
    assert again.status_code == 409 and "used" in again.text  # a used invite says so, in the form
    moved = bob.post("/switch-organisation", follow_redirects=False,
                     data={"csrf_token": token, "organisation_id": "1"})
    assert moved.headers["location"] == "/o/1/today"
    assert bob.get("/api/me").json()["active_organisation_id"] == 1


def test_snapshots_are_reviewed_then_activated_and_supersede_the_active_one(app_client):
    ada = app_client()
    set_up(ada)
    token = token_of(ada, "/o/1/snapshots")
    for title in ("State in May", "State in June"):
        created = ada.post("/o/1/records", follow_redirects=False,
                           data={"csrf_token": token, "type": "snapshot", "title": title, "body": "All good.",
                                 "snapshot_type": "current_company_state", "scope": "organisation"})
        assert created.status_code == 303
    page = ada.get("/o/1/r/SNP-1").text
    assert "pending review" in page and ">Activate</button>" in page
    for display_id in ("SNP-1", "SNP-2"):
        version = ada.get(f"/api/organisations/1/records/{display_id}").json()["version"]
        activated = ada.post(f"/o/1/r/{display_id}/status", follow_redirects=False,
                             data={"csrf_token": token, "status": "active", "version": str(version)})
        assert activated.status_code == 303
    assert ada.get("/api/organisations/1/records/SNP-1").json()["status"] == "superseded"
    assert ada.get("/api/organisations/1/records/SNP-2").json()["status"] == "active"
    # An activated snapshot's text can no longer be edited: the page says why.
    edit = ada.post("/o/1/r/SNP-2", follow_redirects=False,
                    data={"csrf_token": token, "title": "Rewritten", "body": "x", "version": "2"})
    assert edit.status_code == 422 and "only be edited before it is activated" in edit.text


def test_risks_and_decisions_keep_their_typed_fields_and_stale_edits_are_refused(app_client):
    ada = app_client()
    set_up(ada)
    token = token_of(ada, "/o/1/risks")
    ada.post("/o/1/records", follow_redirects=False,
             data={"csrf_token": token, "type": "risk", "title": "Vendor lock-in", "severity": "4",
                   "likelihood": "2", "mitigation": "Keep exports working", "scope": "organisation"})
    risk = ada.get("/api/organisations/1/records/RSK-1").json()
    assert risk["fields"]["severity"] == 4 and risk["fields"]["mitigation"] == "Keep exports working"
    bad = ada.post("/o/1/records", follow_redirects=False,
                   data={"csrf_token": token, "type": "risk", "title": "x", "severity": "high"})
    assert bad.status_code == 422 and "Severity (1–5) must be a whole number" in bad.text
    ada.post("/o/1/r/RSK-1", follow_redirects=False,
             data={"csrf_token": token, "title": "Vendor lock-in (cloud)", "body": "", "version": "1"})
    stale = ada.post("/o/1/r/RSK-1", follow_redirects=False,
                     data={"csrf_token": token, "title": "Someone else's edit", "body": "", "version": "1"})
    assert stale.status_code == 409
    assert ada.get("/api/organisations/1/records/RSK-1").json()["title"] == "Vendor lock-in (cloud)"


def test_docs_move_with_their_sub_pages_become_private_and_archive(app_client):
    ada = app_client()
    set_up(ada)
    ada.post("/api/organisations/1/projects", json={"key": "APP", "name": "App", "visibility": "open"})
    token = token_of(ada, "/o/1/docs")
    ada.post("/o/1/records", follow_redirects=False,
             data={"csrf_token": token, "type": "doc", "title": "Handbook", "scope": "organisation"})
    ada.post("/o/1/records", follow_redirects=False,
             data={"csrf_token": token, "type": "doc", "title": "Holidays", "scope": "organisation",
                   "parent_id": str(ada.get("/api/organisations/1/records/DOC-1").json()["id"])})
    moved = ada.post("/o/1/r/DOC-1/move", follow_redirects=False,
                     data={"csrf_token": token, "scope": "project:1", "version": "1"})
    assert moved.status_code == 303
    for display_id in ("DOC-1", "DOC-2"):
        assert ada.get(f"/api/organisations/1/records/{display_id}").json()["scope"]["kind"] == "project"
    assert "Project APP" in ada.get("/o/1/r/DOC-2").text and "App" in ada.get("/o/1/r/DOC-2").text
    version = ada.get("/api/organisations/1/records/DOC-1").json()["version"]
    ada.post("/o/1/r/DOC-1/move", follow_redirects=False,
             data={"csrf_token": token, "scope": "user", "version": str(version)})
    assert ada.get("/api/organisations/1/records/DOC-2").json()["scope"]["kind"] == "user"
    version = ada.get("/api/organisations/1/records/DOC-2").json()["version"]
    ada.post("/o/1/r/DOC-2/status", follow_redirects=False,
             data={"csrf_token": token, "status": "archived", "version": str(version)})
    assert ada.get("/api/organisations/1/records/DOC-2").json()["status"] == "archived"
    assert ">Holidays<" not in ada.get("/o/1/docs?status=active").text


def test_file_attach_form_checks_its_token_before_storing_a_byte(app_client, tmp_path):
    ada = app_client()
    set_up(ada)
    token = token_of(ada, "/o/1/decisions")
    ada.post("/o/1/records", follow_redirects=False,
             data={"csrf_token": token, "type": "decision", "title": "Keep files", "scope": "organisation"})
    files = {"file": ("plan.txt", b"secret plan " * 1000, "text/plain")}
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": token_of(app_client(), "/login")}):
        refused = ada.post("/o/1/r/DEC-1/attachments", follow_redirects=False, data=data, files=files)
        assert refused.status_code == 403
    stored = [p for p in (tmp_path / "var" / "uploads").rglob("*") if p.is_file()]
    assert stored == []
    assert ada.get("/api/organisations/1/records/DEC-1/attachments").json() == []

    accepted = ada.post("/o/1/r/DEC-1/attachments", follow_redirects=False, data={"csrf_token": token},
                        files=files)
    assert accepted.status_code == 303
    [attached] = ada.get("/api/organisations/1/records/DEC-1/attachments").json()
    assert attached["name"] == "plan.txt"
    assert ada.get(attached["download_url"]).content == b"secret plan " * 1000
    assert len([p for p in (tmp_path / "var" / "uploads").rglob("*") if p.is_file()]) == 1  # where files go


def test_search_page_says_when_semantic_search_cannot_run(app_client):
    plain = app_client()
    set_up(plain)
    token = token_of(plain, "/o/1/docs")
    plain.post("/o/1/records", follow_redirects=False,
               data={"csrf_token": token, "type": "doc", "title": "Release process", "body": "Every Tuesday."})
    keyword = plain.get("/o/1/search", params={"q": "tuesday", "mode": "hybrid"}).text
    assert "Results by keyword search" in keyword and "AI is not configured on this server, so these" in keyword
    assert "DOC-1" in keyword
    assert plain.get("/o/1/search", params={"q": "x", "mode": "psychic"}).status_code == 422
    for unsearchable in ("the", "?!…", "and or"):  # only stop words or punctuation: the page stays, says why
        answered = plain.get("/o/1/search", params={"q": unsearchable})
        assert answered.status_code == 200
        assert "Nothing to match: only stop words or punctuation: search for a name" in answered.text
        assert 'name="q" type="search" value="' in answered.text and "No results for" not in answered.text
    api = plain.get("/api/organisations/1/search", params={"q": "the"})  # the API: 200, empty, with the hint
    assert api.status_code == 200 and api.json()["items"] == [] and "stop words" in api.json()["hint"]
    plain.post("/o/1/records", follow_redirects=False,
               data={"csrf_token": token, "type": "doc", "title": "Tuesday notes", "body": "Tuesday tuesday."})
    named = plain.get("/api/organisations/1/search", params={"q": "tuesday doc-1"}).json()["items"]
    assert [i["display_id"] for i in named] == ["DOC-1", "DOC-2"]  # named first, though DOC-2 ranks higher


def test_search_page_uses_semantic_and_hybrid_search_when_an_embedding_model_is_configured(app_client,
                                                                                         make_container):
    from dependency_injector import providers

    from tests.fake_embeddings import FakeEmbeddingModel
    from tow_http.embedding_worker import EmbeddingWorker

    container = make_container()
    model = FakeEmbeddingModel(dimension=64)
    container.embedding_model.override(providers.Object(model))
    ada = app_client(container)
    set_up(ada)
    token = token_of(ada, "/o/1/docs")
    ada.post("/o/1/records", follow_redirects=False,
             data={"csrf_token": token, "type": "doc", "title": "Release process", "body": "Every Tuesday."})
    not_ready = ada.get("/o/1/search", params={"q": "release", "mode": "semantic"}).text
    assert "Nothing has been embedded for semantic search yet" in not_ready
    EmbeddingWorker(container.embedding_queue(), container.embedding_spaces(), model).run_once()
    semantic = ada.get("/o/1/search", params={"q": "release process", "mode": "semantic"}).text
    assert "Results by semantic search" in semantic and "DOC-1" in semantic and "keyword results" not in semantic
    hybrid = ada.get("/o/1/search", params={"q": "release"}).text  # the default with AI configured
    assert "Results by hybrid search" in hybrid and "AI is not configured" not in hybrid


def test_expired_and_revoked_invites_say_so_in_the_join_form(app_client, make_container):
    from datetime import UTC, datetime, timedelta

    ada = app_client()
    set_up(ada)
    expiring = ada.post("/api/organisations/1/invites", json={"role": "member", "expires_in_hours": 1}).json()
    revoked = ada.post("/api/organisations/1/invites", json={"role": "member"}).json()
    ada.delete(f"/api/organisations/1/invites/{revoked['invite']['id']}")

    later = make_container()  # the same database, two hours on
    later.services.add_kwargs(clock=lambda: datetime.now(UTC) + timedelta(hours=2))
    used = ada.post("/api/organisations/1/invites", json={"role": "member"}).json()
    cy = app_client()
    cy.post("/join", follow_redirects=False, data={
        "csrf_token": token_of(cy, f"/invite/{used['token']}"), "token": used["token"], "email": "cy@example.com",
        "display_name": "Cy", "password": PASSWORD})
    for invite, message in ((expiring, "this invite has expired"), (revoked, "this invite was revoked"),
                            (used, "this invite has already been used"), ({"token": "no-such-invite"},
                                                                          "invite not found")):
        bob = app_client(later)
        link = bob.get(f"/invite/{invite['token']}").text  # said at once, before any form is filled in
        assert f"This invite link cannot be used: {message}" in link and 'name="password"' not in link
        token = token_of(bob, "/join")
        answer = bob.post("/join", follow_redirects=False,
                          data={"csrf_token": token, "token": invite["token"], "email": "bob@example.com",
                                "display_name": "Bob", "password": PASSWORD},
                          headers={"HX-Request": "true", "HX-Trigger": "join-form"})
        assert answer.status_code in (404, 409) and message in answer.text  # and refused if posted anyway
        assert answer.headers["hx-retarget"] == "#join-form-error"


def test_members_request_their_own_exports_only(app_client):
    ada = app_client()
    set_up(ada)
    invite = ada.post("/api/organisations/1/invites", json={"role": "member"}).json()["token"]
    bob = app_client()
    bob.post("/join", follow_redirects=False, data={"csrf_token": token_of(bob, f"/invite/{invite}"),
                                                    "token": invite, "email": "bob@example.com",
                                                    "display_name": "Bob", "password": PASSWORD})
    page = bob.get("/o/1/exports").text
    assert 'value="organisation"' not in page  # not offered to members ...
    token = TOKEN.search(page).group(1)
    refused = bob.post("/o/1/exports", follow_redirects=False, data={"csrf_token": token, "kind": "organisation"})
    assert refused.status_code == 403  # ... and refused when forged
    assert bob.post("/o/1/exports", follow_redirects=False,
                    data={"csrf_token": token, "kind": "member"}).status_code == 303
    assert "queued" in bob.get("/o/1/exports").text
    assert "queued" not in ada.get("/o/1/exports").text  # exports are their requester's alone
