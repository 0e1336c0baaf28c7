"""Self-service and management in the browser, attacked over HTTP (issue 18 item 4): your profile (name, email
confirmed by password, password change signing out the other sessions), members (remove, deactivate, the last
owner), groups and projects, through the same use cases as the API.

Each form is also tried as an attack: without the session's CSRF token, by a plain member, with another
organisation's member id in the URL."""

from __future__ import annotations

from tests.e2e.test_pages_security import PASSWORD, set_up, token_of

NEW_PASSWORD = "a much longer new passphrase"


def join(app_client, ada, name: str, org_id: int = 1, role: str = "member"):
    invite = ada.post(f"/api/organisations/{org_id}/invites", json={"role": role}).json()["token"]
    person = app_client()
    response = person.post("/join", follow_redirects=False, data={
        "csrf_token": token_of(person, f"/invite/{invite}"), "token": invite, "email": f"{name.lower()}@example.com",
        "display_name": name, "password": PASSWORD})
    assert response.status_code == 303, response.text
    return person, person.get("/api/me").json()["id"]


def sign_in(app_client, email: str, password: str = PASSWORD):
    client = app_client()
    response = client.post("/login", follow_redirects=False, data={
        "csrf_token": token_of(client, "/login"), "email": email, "password": password})
    assert response.status_code == 303, response.text
    return client


def post(client, path: str, data: dict, *, page: str = "/o/1/settings", htmx: str | None = None):
    headers = {"HX-Request": "true", "HX-Trigger": htmx} if htmx else {}
    return client.post(path, follow_redirects=False, headers=headers,
                       data={"csrf_token": token_of(client, page), **data})


def test_profile_name_email_and_password_with_their_errors(app_client):
    ada = app_client()
    set_up(ada)
    phone = sign_in(app_client, "ada@example.com")
    page = ada.get("/o/1/profile").text
    assert 'id="details-form"' in page and 'id="password-form"' in page

    renamed = post(ada, "/o/1/profile/details", {"display_name": "Ada Lovelace", "email": "ada@example.com"},
                   page="/o/1/profile")
    assert renamed.status_code == 303 and renamed.headers["location"].startswith("/o/1/profile?saved=details")
    assert "Your name and email are saved." in ada.get(renamed.headers["location"]).text
    assert ada.get("/api/me").json()["display_name"] == "Ada Lovelace"

    wrong = post(ada, "/o/1/profile/details", {"display_name": "Ada", "email": "ada@new.example",
                                               "current_password": "guess"}, page="/o/1/profile", htmx="details-form")
    assert wrong.status_code == 422 and "your current password is wrong" in wrong.text
    assert wrong.headers["hx-retarget"] == "#details-form-error"
    moved = post(ada, "/o/1/profile/details", {"display_name": "Ada", "email": "Ada@New.Example",
                                               "current_password": PASSWORD}, page="/o/1/profile")
    assert moved.status_code == 303 and ada.get("/api/me").json()["email"] == "ada@new.example"

    short = post(ada, "/o/1/profile/password", {"current_password": PASSWORD, "new_password": "short"},
                 page="/o/1/profile")
    assert short.status_code == 422 and "new password must be at least 10 characters" in short.text
    bad = post(ada, "/o/1/profile/password", {"current_password": "guess", "new_password": NEW_PASSWORD},
               page="/o/1/profile")
    assert bad.status_code == 422 and "your current password is wrong" in bad.text
    assert phone.get("/api/me").status_code == 200  # nothing changed yet

    changed = post(ada, "/o/1/profile/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                   page="/o/1/profile")
    assert changed.status_code == 303
    assert "Your other sessions were signed out" in ada.get(changed.headers["location"]).text
    assert ada.get("/api/me").status_code == 200 and phone.get("/api/me").status_code == 401
    sign_in(app_client, "ada@new.example", NEW_PASSWORD)

    forged = ada.post("/o/1/profile/password", follow_redirects=False,
                      data={"current_password": NEW_PASSWORD, "new_password": "attacker's choice 123"})
    assert forged.status_code == 403  # no CSRF token: refused before the handler
    sign_in(app_client, "ada@new.example", NEW_PASSWORD)


def test_the_profile_api_changes_the_same_things(app_client):
    ada = app_client()
    set_up(ada)
    other = sign_in(app_client, "ada@example.com")
    assert ada.patch("/api/me", json={"display_name": "Ada L."}).json()["display_name"] == "Ada L."
    refused = ada.patch("/api/me", json={"email": "ada@new.example", "current_password": "guess"})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "current_password"
    answer = ada.put("/api/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert answer.json() == {"other_sessions_signed_out": 1}
    assert other.get("/api/me").status_code == 401 and ada.get("/api/me").status_code == 200


def test_members_are_removed_and_deactivated_by_managers_only_and_the_last_owner_stays(app_client):
    ada = app_client()
    set_up(ada)
    bob, bob_id = join(app_client, ada, "Bob")
    cy, cy_id = join(app_client, ada, "Cy")

    # A plain member posting the admin forms is refused, and nothing changes.
    assert post(bob, f"/o/1/settings/members/{cy_id}/remove", {}).status_code == 403
    assert post(bob, f"/o/1/settings/members/{cy_id}/active", {"active": "no"}).status_code == 403
    assert cy.get("/api/me").status_code == 200
    # The owner's own row offers no remove, and the last owner can neither leave nor be demoted.
    settings = ada.get("/o/1/settings").text
    assert f'/settings/members/{bob_id}/remove' in settings and 'id="leave-form"' not in settings
    assert post(ada, "/o/1/settings/members/1/remove", {"leaving": "yes"}).status_code == 409
    assert post(ada, "/o/1/settings/members/1/role", {"role": "member"}).status_code == 409
    assert post(ada, "/o/1/settings/members/1/active", {"active": "no"}).status_code == 409

    # Deactivating Bob signs him out at once, and his API token stops working; reactivating lets him sign in again.
    secret = bob.post("/api/me/tokens", json={"name": "script", "access": "read"}).json()["secret"]
    assert bob.get("/api/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert post(ada, f"/o/1/settings/members/{bob_id}/active", {"active": "no"}).status_code == 303
    assert bob.get("/api/me").status_code == 401
    assert app_client().get("/api/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert "deactivated" in ada.get("/o/1/settings").text
    assert post(ada, f"/o/1/settings/members/{bob_id}/active", {"active": "yes"}).status_code == 303
    bob = sign_in(app_client, "bob@example.com")
    bad = post(ada, f"/o/1/settings/members/{bob_id}/active", {"active": "maybe"})
    assert bad.status_code == 422 and "active must be yes or no" in bad.text

    # Removing Cy: her next request finds no organisation.
    assert post(ada, f"/o/1/settings/members/{cy_id}/remove", {}).status_code == 303
    assert cy.get("/o/1/docs").status_code == 404
    audit = ada.get("/o/1/settings/audit").text
    assert "Cy" in audit and "user:" not in audit and "user_id=" not in audit

    # Another organisation's member id in Acme's URL finds nobody; and Acme's owner cannot act in Beta.
    beta = ada.post("/api/organisations", json={"name": "Beta"}).json()["id"]
    dora, dora_id = join(app_client, ada, "Dora", org_id=beta)
    for path in (f"/o/1/settings/members/{dora_id}/remove", f"/o/1/settings/members/{dora_id}/active"):
        assert post(ada, path, {"active": "no"}).status_code == 404, path
    assert dora.get("/api/me").status_code == 200
    assert post(bob, f"/o/{beta}/settings/members/{dora_id}/remove", {}, page="/o/1/settings").status_code == 404

    # Without the session's token nothing happens.
    forged = ada.post(f"/o/1/settings/members/{bob_id}/remove", follow_redirects=False, data={})
    assert forged.status_code == 403 and bob.get("/api/me").status_code == 200


def test_a_member_leaves_from_the_settings_page(app_client):
    ada = app_client()
    set_up(ada)
    bob, bob_id = join(app_client, ada, "Bob")
    assert 'id="leave-form"' in bob.get("/o/1/settings").text
    left = post(bob, f"/o/1/settings/members/{bob_id}/remove", {"leaving": "yes"})
    assert left.status_code == 303 and left.headers["location"] == "/"
    assert bob.get("/o/1/docs").status_code == 404


def test_groups_are_renamed_emptied_and_deleted_and_projects_renamed_restricted_and_archived(app_client):
    ada = app_client()
    set_up(ada)
    bob, bob_id = join(app_client, ada, "Bob")
    group = ada.post("/api/organisations/1/groups", json={"name": "Eng"}).json()["id"]
    ada.put(f"/api/organisations/1/groups/{group}/members/{bob_id}")
    project = ada.post("/api/organisations/1/projects", json={"key": "APP", "name": "App",
                                                             "visibility": "open"}).json()["id"]

    for path, data in ((f"/o/1/settings/groups/{group}/rename", {"name": "X"}),
                       (f"/o/1/settings/groups/{group}/delete", {}),
                       (f"/o/1/settings/groups/{group}/members/{bob_id}/remove", {}),
                       (f"/o/1/settings/projects/{project}/visibility", {"visibility": "restricted"}),
                       (f"/o/1/settings/projects/{project}/status", {"status": "archived"})):
        assert post(bob, path, data).status_code == 403, path  # a plain member

    page = ada.get("/o/1/settings").text
    assert "every member of Acme (2 people) can read <strong>and edit</strong>" not in page  # it is open already
    assert "Restricting APP: only the people and groups granted access below" in page
    assert post(ada, f"/o/1/settings/groups/{group}/rename", {"name": "Engineering"}).status_code == 303
    assert post(ada, f"/o/1/settings/groups/{group}/members/{bob_id}/remove", {}).status_code == 303
    groups = ada.get("/api/organisations/1/groups").json()
    assert groups == [{"id": group, "organisation_id": 1, "name": "Engineering", "member_ids": []}]

    assert post(ada, f"/o/1/settings/projects/{project}/rename", {"name": "The app"}).status_code == 303
    assert post(ada, f"/o/1/settings/projects/{project}/visibility", {"visibility": "restricted"}).status_code == 303
    assert bob.get("/o/1/docs?project=APP").status_code == 404  # Bob lost access on his next request
    assert "Opening APP: every member of Acme (2 people) can read <strong>and edit</strong>" in \
        ada.get("/o/1/settings").text
    assert post(ada, f"/o/1/settings/projects/{project}/status", {"status": "archived"}).status_code == 303
    got = ada.get(f"/api/organisations/1/projects/{project}").json()
    assert (got["name"], got["visibility"], got["status"]) == ("The app", "restricted", "archived")
    assert "Unarchive APP" in ada.get("/o/1/settings").text
    assert post(ada, f"/o/1/settings/groups/{group}/delete", {}).status_code == 303
    assert ada.get("/api/organisations/1/groups").json() == []
    empty = post(ada, f"/o/1/settings/projects/{project}/rename", {"name": "  "}, htmx=f"project-rename-form-{project}")
    assert empty.status_code == 422 and "name must not be empty" in empty.text

    audit = ada.get("/o/1/settings/audit").text
    for text in ("Engineering", "The app"):
        assert text in audit, text
    assert "project:" not in audit and "group:" not in audit


def test_an_owner_renames_the_organisation_and_a_member_cannot(app_client):
    ada = app_client()
    set_up(ada)
    bob, _ = join(app_client, ada, "Bob")
    assert post(bob, "/o/1/settings/rename", {"name": "Bob's"}).status_code == 403
    assert 'id="org-rename-form"' not in bob.get("/o/1/settings").text
    assert post(ada, "/o/1/settings/rename", {"name": "Acme Ltd"}).status_code == 303
    assert ada.get("/api/organisations/1").json()["name"] == "Acme Ltd"
    empty = post(ada, "/o/1/settings/rename", {"name": ""})
    assert empty.status_code == 422 and "name" in empty.text
