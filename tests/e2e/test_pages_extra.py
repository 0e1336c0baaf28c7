"""The browser pages added after the first UI (issue 7 follow-ups), attacked over HTTP: avatars and logos
(images only, the right people only, CSRF before a byte is stored), the data-egress ledger page (owners
and admins only), the organisation import page (server admins only, streamed, size-limited, refusals
name the offending path) and the typed ticket fields (assignee, due date, labels)."""

from __future__ import annotations

import io
import json
import os
import re

from PIL import Image

from tests.e2e.test_pages_security import PASSWORD, set_up, token_of
from tow_core.ai import EgressPurpose
from tow_core.egress import EgressEntry

IMG = re.compile(r'src="/api/uploads/(\d+)/content"')


def png(colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, "PNG")
    return out.getvalue()


def stored_files(tmp_path) -> list:
    return [p for p in (tmp_path / "var" / "uploads").rglob("*") if p.is_file()]


def join(app_client, ada, container=None, role: str = "member", name: str = "Bob"):
    invite = ada.post("/api/organisations/1/invites", json={"role": role}).json()["token"]
    other = app_client(container)
    joined = other.post("/join", follow_redirects=False,
                        data={"csrf_token": token_of(other, f"/invite/{invite}"), "token": invite,
                              "email": f"{name.lower()}@example.com", "display_name": name, "password": PASSWORD})
    assert joined.status_code == 303, joined.text
    return other, other.get("/api/me").json()["id"]


def test_a_user_sets_and_clears_their_avatar_and_members_see_it(app_client, tmp_path):
    ada = app_client()
    set_up(ada)
    bob, _ = join(app_client, ada)
    token = token_of(ada, "/o/1/profile")
    assert "No profile image yet" in ada.get("/o/1/profile").text

    # A forged form stores nothing; a file that is not an image is refused with a message, nothing kept.
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": token_of(bob, "/o/1/profile")}):
        forged = ada.post("/o/1/profile/avatar", follow_redirects=False, data=data,
                          files={"file": ("me.png", png(), "image/png")})
        assert forged.status_code == 403
    html = b"<html><script>alert(1)</script></html>"
    refused = ada.post("/o/1/profile/avatar", follow_redirects=False, data={"csrf_token": token},
                       files={"file": ("me.png", html, "image/png")})  # the name and type lie: content decides
    assert refused.status_code == 422 and "not a PNG, JPEG, GIF or WebP image" in refused.text
    assert stored_files(tmp_path) == []

    accepted = ada.post("/o/1/profile/avatar", follow_redirects=False, data={"csrf_token": token},
                        files={"file": ("me.png", png(), "image/png")})
    assert accepted.status_code == 303 and accepted.headers["location"] == "/o/1/profile"
    [avatar_id] = set(IMG.findall(ada.get("/o/1/memory").text))  # in the shell's user menu
    assert ada.get(f"/api/uploads/{avatar_id}/content").content == png()
    assert f"/api/uploads/{avatar_id}/content" in bob.get("/o/1/settings").text  # beside Ada in the member list

    # Replacing it keeps one avatar; clearing it removes it from every page.
    ada.post("/o/1/profile/avatar", follow_redirects=False, data={"csrf_token": token},
             files={"file": ("me.png", png("blue"), "image/png")})
    [replaced] = set(IMG.findall(ada.get("/o/1/profile").text))
    assert replaced != avatar_id and ada.get(f"/api/uploads/{replaced}/content").content == png("blue")
    cleared = ada.post("/o/1/profile/avatar/clear", follow_redirects=False, data={"csrf_token": token})
    assert cleared.status_code == 303
    assert IMG.findall(ada.get("/o/1/profile").text) == [] and IMG.findall(bob.get("/o/1/settings").text) == []
    assert ada.post("/o/1/profile/avatar/clear", follow_redirects=False, data={}).status_code == 403


def test_only_owners_and_admins_set_the_organisation_logo_and_only_managers_a_project_logo(app_client, tmp_path):
    ada = app_client()
    set_up(ada)
    ada.post("/api/organisations/1/projects", json={"key": "SEC", "name": "Security", "visibility": "restricted"})
    bob, bob_id = join(app_client, ada)
    bob_token = token_of(bob, "/o/1/settings")
    assert 'id="org-logo-form"' not in bob.get("/o/1/settings").text  # not offered to members ...
    attempt = bob.post("/o/1/settings/logo", follow_redirects=False, data={"csrf_token": bob_token},
                       files={"file": ("logo.png", png(), "image/png")})
    assert attempt.status_code == 403  # ... and refused when sent anyway, keeping nothing
    assert stored_files(tmp_path) == []
    # A project Bob cannot see is "not found", whatever he sends.
    hidden = bob.post("/o/1/settings/projects/1/logo", follow_redirects=False, data={"csrf_token": bob_token},
                      files={"file": ("logo.png", png(), "image/png")})
    assert hidden.status_code == 404 and stored_files(tmp_path) == []
    # Another organisation's logo form is a 404 too.
    assert bob.post("/o/999/settings/logo", follow_redirects=False, data={"csrf_token": bob_token},
                    files={"file": ("logo.png", png(), "image/png")}).status_code == 404

    token = token_of(ada, "/o/1/settings")
    assert 'id="org-logo-form"' in ada.get("/o/1/settings").text
    not_image = ada.post("/o/1/settings/logo", follow_redirects=False, data={"csrf_token": token},
                         files={"file": ("logo.png", b"%PDF-1.4 not an image", "image/png")})
    assert not_image.status_code == 422 and "not a PNG, JPEG, GIF or WebP image" in not_image.text
    set_logo = ada.post("/o/1/settings/logo", follow_redirects=False, data={"csrf_token": token},
                        files={"file": ("logo.png", png("green"), "image/png")})
    assert set_logo.status_code == 303
    [logo_id] = set(IMG.findall(bob.get("/o/1/memory").text))  # every member sees it in the shell
    assert bob.get(f"/api/uploads/{logo_id}/content").content == png("green")

    project = ada.post("/o/1/settings/projects/1/logo", follow_redirects=False, data={"csrf_token": token},
                       files={"file": ("sec.png", png("navy"), "image/png")})
    assert project.status_code == 303
    picked = ada.get("/o/1/memory?project=SEC").text
    assert "SEC logo" in picked
    assert "SEC logo" not in bob.get("/o/1/memory").text  # a restricted project's logo stays hidden
    # A project member without the manage permission is refused; a project admin may.
    ada.post("/api/organisations/1/projects/1/grants", json={"user_id": bob_id, "role": "member"})
    bob_token = token_of(bob, "/o/1/settings")
    assert 'id="project-logo-form-1"' not in bob.get("/o/1/settings").text
    assert bob.post("/o/1/settings/projects/1/logo/clear", follow_redirects=False,
                    data={"csrf_token": bob_token}).status_code == 403
    ada.post("/api/organisations/1/projects/1/grants", json={"user_id": bob_id, "role": "admin"})
    assert 'id="project-logo-form-1"' in bob.get("/o/1/settings").text
    cleared = bob.post("/o/1/settings/projects/1/logo/clear", follow_redirects=False, data={"csrf_token": bob_token})
    assert cleared.status_code == 303 and "SEC logo" not in ada.get("/o/1/memory?project=SEC").text
    assert ada.post("/o/1/settings/logo/clear", follow_redirects=False, data={"csrf_token": token}).status_code == 303
    assert IMG.findall(bob.get("/o/1/memory").text) == []


def test_the_egress_ledger_page_lists_and_filters_for_owners_and_admins_only(app_client, make_container):
    container = make_container()
    ada = app_client(container)
    set_up(ada)
    bob, bob_id = join(app_client, ada, container)
    ledger = container.egress_ledger()

    def call(purpose: EgressPurpose, user: int | None, records: tuple[str, ...], org: int = 1) -> None:
        ledger.record(EgressEntry("openai", "https://api.openai.com/v1", "text-embedding-3-small", purpose, user, org,
                                  records, 120, 40, 7, "ok"))

    call(EgressPurpose.EMBEDDING, None, ("DOC-1",))
    call(EgressPurpose.EXTRACTION, bob_id, ("DOC-2", "TKT-5"))
    call(EgressPurpose.CHAT, 1, ("DEC-3",))
    other = ada.post("/api/organisations", json={"name": "Beta"}).json()["id"]
    call(EgressPurpose.CHAT, 1, ("RSK-9",), org=other)

    page = ada.get("/o/1/settings/egress")
    assert page.status_code == 200
    assert all(ref in page.text for ref in ("DOC-1", "TKT-5", "DEC-3")) and "RSK-9" not in page.text
    assert "DEC-3" not in ada.get("/o/1/settings/egress", params={"user_id": bob_id}).text
    assert "TKT-5" in ada.get("/o/1/settings/egress", params={"user_id": bob_id}).text
    by_purpose = ada.get("/o/1/settings/egress", params={"purpose": "embedding"}).text
    assert "DOC-1" in by_purpose and "TKT-5" not in by_purpose
    by_record = ada.get("/o/1/settings/egress", params={"record": "tkt-5"}).text
    assert "TKT-5" in by_record and "DOC-1" not in by_record
    bad = ada.get("/o/1/settings/egress", params={"purpose": "gossip"})
    assert bad.status_code == 422 and "purpose must be one of" in bad.text and "Traceback" not in bad.text
    assert ada.get("/o/1/settings/egress", params={"user_id": "bob"}).status_code == 422
    assert ada.get("/o/1/settings/egress", params={"cursor": "x"}).status_code == 422

    # Paging: older entries behind a link that keeps the filters.
    for n in range(55):
        call(EgressPurpose.EMBEDDING, None, (f"DOC-{100 + n}",))
    first = ada.get("/o/1/settings/egress", params={"purpose": "embedding"}).text
    older = re.search(r'href="([^"]*cursor=[^"]*)"', first).group(1).replace("&amp;", "&")
    assert "purpose=embedding" in older
    second = ada.get(older).text
    assert "DOC-1<" in second and "DOC-154" not in second

    assert "Data-egress ledger" not in bob.get("/o/1/settings").text
    assert bob.get("/o/1/settings/egress").status_code == 403
    assert bob.get(f"/o/{other}/settings/egress").status_code == 404
    ada.patch(f"/api/organisations/1/members/{bob_id}", json={"role": "admin"})
    assert bob.get("/o/1/settings/egress").status_code == 200
    assert app_client(container).get("/o/1/settings/egress", follow_redirects=False).status_code in (302, 303)


def _export_of_another_server(embedded_postgres, tmp_path) -> bytes:
    from tests.e2e.org_world import World
    from tests.e2e.test_export_import import container_on, organisation_export

    source, _ = container_on(embedded_postgres, tmp_path / "source", f"pages_src_{os.getpid()}")
    try:
        world = World(source)
        world.create(world.ada, type="doc", scope={"kind": "organisation"}, title="Handbook", body="Hello")
        return organisation_export(world, world.ada)
    finally:
        source.engine().dispose()


def test_server_admins_import_an_export_file_from_the_server_settings(app_client, embedded_postgres, tmp_path,
                                                                      monkeypatch):
    document = json.loads(_export_of_another_server(embedded_postgres, tmp_path))
    document["organisation"]["name"] = "Globex"  # the other server's organisation is also called Acme
    exported = json.dumps(document).encode()
    ada = app_client()
    set_up(ada)
    bob, _ = join(app_client, ada, role="owner")
    assert bob.get("/server/import").status_code == 404  # owners of an organisation are not server admins
    bob_token = token_of(bob, "/o/1/settings")
    files = {"file": ("export.json", exported, "application/json")}
    assert bob.post("/server/import", follow_redirects=False, data={"csrf_token": bob_token},
                    files=files).status_code == 404
    assert 'href="/server/import"' in ada.get("/server").text
    token = token_of(ada, "/server/import")
    before = ada.get("/api/organisations").json()
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": bob_token}):
        assert ada.post("/server/import", follow_redirects=False, data=data, files=files).status_code == 403
    assert ada.get("/api/organisations").json() == before

    tampered = json.loads(exported)
    tampered["records"][0]["display_id"] = "DOC-one"
    refused = ada.post("/server/import", follow_redirects=False, data={"csrf_token": token},
                       files={"file": ("export.json", json.dumps(tampered).encode(), "application/json")})
    assert refused.status_code == 422 and "Nothing was imported" in refused.text
    assert "First offending path: <code>$.records[0]" in refused.text
    assert ada.get("/api/organisations").json() == before

    imported = ada.post("/server/import", follow_redirects=False, data={"csrf_token": token}, files=files)
    assert imported.status_code == 201, imported.text
    assert "Imported Globex" in imported.text and "<dt>records</dt><dd>1</dd>" in imported.text
    again = ada.post("/server/import", follow_redirects=False, data={"csrf_token": token}, files=files)
    assert again.status_code == 409 and "Nothing was imported" in again.text

    from tow_http.exports import import_pages
    monkeypatch.setattr(import_pages, "IMPORT_PAGE_MAX_BYTES", 1000)
    too_big = ada.post("/server/import", follow_redirects=False, data={"csrf_token": token},
                       files={"file": ("export.json", b" " * 5000 + exported, "application/json")})
    assert too_big.status_code == 413 and "larger than the import limit of 1000 bytes" in too_big.text
    declared = ada.post("/server/import", follow_redirects=False, data={"csrf_token": token},
                        files={"file": ("export.json", b" " * 200_000, "application/json")})
    assert declared.status_code == 413


def test_tickets_get_an_assignee_a_due_date_and_labels_and_lose_them_again(app_client):
    ada = app_client()
    set_up(ada)
    _, bob_id = join(app_client, ada)
    token = token_of(ada, "/o/1/tickets")
    assert 'id="f-assignee_id"' in ada.get("/o/1/tickets").text and ">Bob</option>" in ada.get("/o/1/tickets").text
    created = ada.post("/o/1/records", follow_redirects=False,
                       data={"csrf_token": token, "type": "ticket", "title": "Renew certificate", "scope": "organisation",
                             "ticket_type": "task", "priority": "2", "assignee_id": str(bob_id),
                             "due_date": "2026-12-31", "labels": "ops, security ,ops"})
    assert created.status_code == 303
    fields = ada.get("/api/organisations/1/records/TKT-1").json()["fields"]
    assert fields["assignee_id"] == bob_id and fields["due_date"] == "2026-12-31"
    assert fields["labels"] == ["ops", "security"]
    shown = ada.get("/o/1/r/TKT-1").text
    assert "<dd>Bob</dd>" in shown and "2026-12-31" in shown
    board = ada.get("/o/1/tickets?view=board").text
    assert '>P2</span> Bob · due 2026-12-31</span>' in board  # priority, assignee and due date on the card
    edit_form = ada.get("/o/1/r/TKT-1?edit=1").text
    assert f'<option value="{bob_id}" selected>Bob</option>' in edit_form and 'value="ops, security"' in edit_form

    bad = ada.post("/o/1/r/TKT-1", follow_redirects=False,
                   data={"csrf_token": token, "title": "Renew certificate", "body": "", "version": "1",
                         "due_date": "next week"})
    assert bad.status_code == 422 and "due_date must be a date like 2026-12-31" in bad.text
    cleared = ada.post("/o/1/r/TKT-1", follow_redirects=False,
                       data={"csrf_token": token, "title": "Renew certificate", "body": "", "version": "1",
                             "ticket_type": "task", "priority": "2", "assignee_id": "", "due_date": "", "labels": ""})
    assert cleared.status_code == 303
    fields = ada.get("/api/organisations/1/records/TKT-1").json()["fields"]
    assert fields["assignee_id"] is None and fields["due_date"] is None and fields["labels"] == []
    activity = ada.get("/api/organisations/1/records/TKT-1/activity").json()
    assert {"assignee_id", "due_date", "labels"} <= {a["field"] for a in activity}
    # A form that does not carry a field leaves it alone (the status buttons, older forms).
    ada.post("/o/1/r/TKT-1", follow_redirects=False,
             data={"csrf_token": token, "title": "Renew certificate", "body": "", "version": "2",
                   "assignee_id": str(bob_id)})
    ada.post("/o/1/r/TKT-1", follow_redirects=False,
             data={"csrf_token": token, "title": "Renew the certificate", "body": "", "version": "3"})
    assert ada.get("/api/organisations/1/records/TKT-1").json()["fields"]["assignee_id"] == bob_id


def test_logo_forms_refuse_people_without_the_right_before_reading_the_image(app_client, make_container, tmp_path):
    """Refused before the body is read: a member sending a too-large "logo" gets 403, not 413 (which
    would mean the server had streamed it up to the upload limit)."""
    container = make_container("uploads:\n  upload_max_bytes: 2000\n")
    ada = app_client(container)
    set_up(ada)
    ada.post("/api/organisations/1/projects", json={"key": "OPS", "name": "Ops", "visibility": "open"})
    bob, _ = join(app_client, ada, container)
    token = token_of(bob, "/o/1/settings")
    big = {"file": ("logo.png", b"x" * 200_000, "image/png")}
    assert bob.post("/o/1/settings/logo", follow_redirects=False, data={"csrf_token": token},
                    files=big).status_code == 403
    assert bob.post("/o/1/settings/projects/1/logo", follow_redirects=False, data={"csrf_token": token},
                    files=big).status_code == 403
    # The owner's too-large image is refused by size, and nothing is kept.
    owner_token = token_of(ada, "/o/1/settings")
    assert ada.post("/o/1/settings/logo", follow_redirects=False, data={"csrf_token": owner_token},
                    files=big).status_code == 413
    assert stored_files(tmp_path) == []


def test_an_over_limit_attachment_returns_to_the_record_page_which_says_the_configured_limit(app_client,
                                                                                            make_container,
                                                                                            tmp_path):
    ada = app_client(make_container("uploads:\n  upload_max_bytes: 2000\n"))
    set_up(ada)
    token = token_of(ada, "/o/1/docs")
    ada.post("/o/1/records", follow_redirects=False,
             data={"csrf_token": token, "type": "doc", "title": "Runbook", "body": "Steps."})
    page = ada.get("/o/1/r/DOC-1").text
    assert 'data-max-bytes="2000"' in page and "Up to 2.0 KiB." in page  # the limit, before choosing a file
    refused = ada.post("/o/1/r/DOC-1/attachments", follow_redirects=False, data={"csrf_token": token},
                       files={"file": ("big.bin", b"x" * 50_000, "application/octet-stream")})
    assert refused.status_code == 303
    assert refused.headers["location"] == "/o/1/r/DOC-1?upload_refused=too_large#files"
    shown = ada.get(refused.headers["location"]).text
    assert "That file is larger than the limit of 2.0 KiB: nothing was uploaded." in shown
    assert stored_files(tmp_path) == [] and ada.get("/api/organisations/1/records/DOC-1/attachments").json() == []
    # A hand-made query shows nothing but the one message it names: no text of the request is echoed.
    assert "&lt;b&gt;" not in ada.get("/o/1/r/DOC-1", params={"upload_refused": "<b>x</b>"}).text


def test_a_tickets_status_buttons_follow_the_workflow_order(app_client):
    ada = app_client()
    set_up(ada)
    token = token_of(ada, "/o/1/tickets")
    ada.post("/o/1/records", follow_redirects=False,
             data={"csrf_token": token, "type": "ticket", "title": "Renew the certificate"})
    page = ada.get("/o/1/r/TKT-1").text
    shown = re.findall(r'name="status" value="([a-z_]+)"', page)
    assert shown == ["todo", "in_progress", "blocked", "in_review", "done", "canceled", "archived"]


def test_every_page_names_its_icon_and_the_icon_is_served(app_client):
    plain = app_client()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in plain.get("/login").text
    icon = plain.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.startswith("<svg")
