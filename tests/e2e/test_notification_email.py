"""Notification emails end to end (issue 19 item 4) through the real app on PostgreSQL and a real SMTP server on
loopback (aiosmtpd): a kind set to email sends, through the job worker and the outbox, a message with the
record's link and RFC 8058 unsubscribe headers; the one-click POST to its link (no session) turns that kind's
email off; a record the recipient lost before the job ran sends nothing; a forged link changes nothing. A daily
digest user gets no email per notification and, a day later, one digest of those they still read (once, however
often the housekeeping runs that day); its unsubscribe link turns the digest off."""

from __future__ import annotations

import re

from tests.e2e.test_email import client_of, first_account, parts
from tests.smtp_server import SmtpServer

UNSUBSCRIBE = re.compile(r"^<http://127\.0\.0\.1:8000(/unsubscribe/[A-Za-z0-9_.-]+)>$")


def join(ada, container, org: int, name: str):
    token = ada.post(f"/api/organisations/{org}/invites", json={}).json()["token"]
    client = client_of(container)
    user = client.post("/api/auth/register", json={"invite_token": token, "email": f"{name}@example.com",
                                                   "display_name": name.title(), "password": "another good password"})
    assert user.status_code in (200, 201), user.text
    return client, user.json()["id"]


def test_a_notification_email_arrives_with_one_click_unsubscribe_that_turns_the_kind_off(make_container, tmp_path):
    with SmtpServer(tmp_path, starttls=False) as smtp:
        container = make_container(smtp.yaml(security="none"))
        ada, org = first_account(container)
        bob, bob_id = join(ada, container, org, "bob")
        assert bob.put("/api/notification-preferences", json={"assigned": "email"}).status_code == 200
        ticket = ada.post(f"/api/organisations/{org}/records", json={
            "type": "ticket", "title": "Rotate the keys", "scope": {"kind": "organisation"},
            "fields": {"assignee_id": bob_id}}).json()
        assert container.job_worker().drain() == 1 and container.email_worker().drain() == 1
        [message] = smtp.mailbox.messages
        assert message["To"] == "bob@example.com"
        assert message["Subject"] == f"[TOW] A ticket is assigned to you: {ticket['display_id']}"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        path = UNSUBSCRIBE.match(message["List-Unsubscribe"]).group(1)
        text, html = parts(message)
        assert f"Ada assigned you {ticket['display_id']} Rotate the keys" in text
        assert f"http://127.0.0.1:8000/o/{org}/r/{ticket['display_id']}" in text and path in text and path in html

        stranger = client_of(container)  # a mail client's one-click POST: no session, no form token
        assert 'id="unsubscribe-button"' in stranger.get(path).text  # opening the link changes nothing ...
        assert {p["kind"]: p["delivery"] for p in bob.get("/api/notification-preferences").json()["preferences"]}[
            "assigned"] == "email"
        done = stranger.post(path, content=b"List-Unsubscribe=One-Click",
                             headers={"content-type": "application/x-www-form-urlencoded"})
        assert done.status_code == 200 and 'id="unsubscribed"' in done.text  # ... the POST does
        prefs = {p["kind"]: p["delivery"] for p in bob.get("/api/notification-preferences").json()["preferences"]}
        assert prefs["assigned"] == "in_app"
        forged = stranger.post(path[:-3] + "AAA")
        assert forged.status_code in (400, 422)
        ada.post(f"/api/organisations/{org}/records", json={
            "type": "ticket", "title": "Again", "scope": {"kind": "organisation"}, "fields": {"assignee_id": bob_id}})
        assert container.job_worker().drain() == 0 and container.email_worker().drain() == 0
        assert bob.get("/api/notifications", params={"unread": "true"}).json()["unread"] == 2  # still in the app


def test_no_email_is_sent_about_a_record_the_recipient_lost_before_it_was_rendered(make_container, tmp_path):
    with SmtpServer(tmp_path, starttls=False) as smtp:
        container = make_container(smtp.yaml(security="none"))
        ada, org = first_account(container)
        bob, bob_id = join(ada, container, org, "bob")
        base = f"/api/organisations/{org}"
        project = ada.post(f"{base}/projects", json={"key": "SEC", "name": "Secret", "visibility": "restricted"}).json()
        grant = ada.post(f"{base}/projects/{project['id']}/grants", json={"user_id": bob_id, "role": "viewer"}).json()
        assert bob.put("/api/notification-preferences", json={"mentioned": "email"}).status_code == 200
        ada.post(f"{base}/records", json={"type": "doc", "title": "Merger plan", "scope": {
            "kind": "project", "id": project["id"]}, "body": f"for @[Bob](user:{bob_id})"})
        assert ada.delete(f"{base}/projects/{project['id']}/grants/{grant['id']}").status_code == 204
        assert container.job_worker().drain() == 1 and container.email_worker().drain() == 0
        assert smtp.mailbox.messages == []


def test_a_daily_user_gets_one_digest_a_day_of_what_they_still_read(make_container, tmp_path):
    from datetime import timedelta

    from tow_http.composition import build_email_worker, build_job_worker
    from tow_http.context import utc_now

    with SmtpServer(tmp_path, starttls=False) as smtp:
        container = make_container(smtp.yaml(security="none"))
        ada, org = first_account(container)
        bob, bob_id = join(ada, container, org, "bob")
        base = f"/api/organisations/{org}"
        chosen = bob.put("/api/notification-preferences", json={"assigned": "email", "digest": "daily"})
        assert chosen.status_code == 200 and chosen.json()["digest"] == "daily"
        assert bob.put("/api/notification-preferences", json={"digest": "weekly"}).status_code in (400, 422)
        project = ada.post(f"{base}/projects", json={"key": "SEC", "name": "Secret", "visibility": "restricted"}).json()
        grant = ada.post(f"{base}/projects/{project['id']}/grants", json={"user_id": bob_id, "role": "viewer"}).json()
        made = [ada.post(f"{base}/records", json={"type": "ticket", "title": title, "scope": scope,
                                                  "fields": {"assignee_id": bob_id}}).json()
                for title, scope in (("Rotate the keys", {"kind": "organisation"}),
                                     ("Merger plan", {"kind": "project", "id": project["id"]}),
                                     ("Renew the domain", {"kind": "organisation"}))]
        assert container.job_worker().drain() == 0 and container.email_worker().drain() == 0  # none on its own
        assert ada.delete(f"{base}/projects/{project['id']}/grants/{grant['id']}").status_code == 204

        later = utc_now() + timedelta(days=1, minutes=1)
        engine, config = container.engine(), container.config()
        workers = (build_job_worker(engine, config, container.export_files(), clock=lambda: later),
                   build_email_worker(engine, config, container.mail_transport(), clock=lambda: later))
        for _ in range(2):  # the second run the same day sends nothing
            workers[0].drain()
            workers[1].drain()
        [digest] = smtp.mailbox.messages
        assert digest["To"] == "bob@example.com" and digest["Subject"] == "[TOW] Your daily digest: 2 notifications"
        text, html = parts(digest)
        for ticket in (made[0], made[2]):
            assert f"Ada assigned you {ticket['display_id']} {ticket['title']}" in text
        assert "Merger plan" not in text + html and made[1]["display_id"] not in text + html
        path = UNSUBSCRIBE.match(digest["List-Unsubscribe"]).group(1)
        done = client_of(container).post(path, content=b"List-Unsubscribe=One-Click",
                                         headers={"content-type": "application/x-www-form-urlencoded"})
        assert done.status_code == 200
        assert bob.get("/api/notification-preferences").json()["digest"] == "off"
