"""Email end to end (issue 19) through the real app on PostgreSQL and a real SMTP server on loopback
(aiosmtpd, tests/smtp_server.py): an invite sent by email arrives over STARTTLS with a login from the
environment and its link joins; a password reset link arrives, works once and ends the account's other
sessions, and asking for an unknown address looks the same; the console transport logs one line without the
body; a mail server that keeps refusing leaves the invite made, the email retried, then dead-lettered for
server admins; two workers send each message once; the file transport writes .eml files."""

from __future__ import annotations

import email
import email.policy
import logging
import re
import threading
from datetime import timedelta

import pytest
from litestar.testing import TestClient

from tests.smtp_server import SmtpServer
from tow_core.password_reset import NEUTRAL_ANSWER
from tow_http.composition import build_email_worker, dead_letters
from tow_http.context import utc_now

FIRST = {"email": "ada@example.com", "display_name": "Ada", "password": "correct horse battery",
         "organisation_name": "Acme"}
INVITE_LINK = re.compile(r"http://127\.0\.0\.1:8000/invite/[A-Za-z0-9_-]+")
RESET_LINK = re.compile(r"http://127\.0\.0\.1:8000(/reset-password/[A-Za-z0-9_-]+)")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SMTP_LOGIN = {"TOW_SMTP_USERNAME": "tow-relay", "TOW_SMTP_PASSWORD": "relay password"}


def client_of(container) -> TestClient:
    return TestClient(container.app(), base_url="http://127.0.0.1:8000", raise_server_exceptions=False)


def first_account(container) -> tuple[TestClient, int]:
    ada = client_of(container)
    org = ada.post("/api/auth/register-first", json=FIRST).json()["active_organisation_id"]
    return ada, org


def invite(ada: TestClient, org: int, address: str, **body) -> dict:
    response = ada.post(f"/api/organisations/{org}/invites", json={"email": address, "send_email": True, **body})
    assert response.status_code == 201, response.text
    return response.json()


def parts(message: email.message.EmailMessage) -> tuple[str, str]:
    """The plain text and the HTML alternative of a message."""
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def form(client: TestClient, path: str, page: str | None = None, **fields):
    token = CSRF.search(client.get(page or path).text).group(1)
    return client.post(path, data={"csrf_token": token, **fields}, follow_redirects=False)


def test_an_invite_sent_by_email_arrives_over_starttls_with_the_link_that_joins(make_container, tmp_path):
    with SmtpServer(tmp_path, starttls=True, require_login=True) as smtp:
        container = make_container(smtp.yaml(security="starttls"), **SMTP_LOGIN)
        ada, org = first_account(container)
        created = invite(ada, org, "Dee@Example.com", role="admin")
        assert created["emailed"] is True and created["invite"]["email"] == "dee@example.com"
        assert smtp.mailbox.messages == []  # queued with the invite, sent by the worker, not by the request
        assert container.email_worker().drain() == 1
        [message] = smtp.mailbox.messages
        assert smtp.mailbox.logins == [("tow-relay", "relay password")]
    assert (message["To"], message["From"], message["Reply-To"]) == (
        "dee@example.com", "TOW <tow@acme.example>", "help@acme.example")
    assert message["Subject"] == "Ada invited you to Acme on TOW" and message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    assert INVITE_LINK.findall(text) == [created["accept_url"]] and created["accept_url"] in html
    assert "as admin" in text
    dee = client_of(container)
    joined = dee.post("/api/auth/register", json={"invite_token": created["accept_url"].rsplit("/", 1)[1],
                                                  "email": "dee@example.com", "display_name": "Dee",
                                                  "password": "dee's good password"})
    assert joined.status_code == 201, joined.text
    [entry] = [e for e in ada.get(f"/api/organisations/{org}/audit").json()["items"]
               if e["action"] == "invite.created"]
    assert entry["details"]["emailed"] is True


def test_a_password_reset_link_arrives_works_once_and_ends_the_other_sessions(make_container, tmp_path):
    with SmtpServer(tmp_path, starttls=False) as smtp:
        container = make_container(smtp.yaml(security="none"))
        ada, _ = first_account(container)
        elsewhere = client_of(container)
        assert elsewhere.post("/api/auth/login", json={"email": FIRST["email"],
                                                        "password": FIRST["password"]}).status_code == 200
        login_page = client_of(container).get("/login").text
        assert 'href="/forgot-password"' in login_page
        answers = []
        for address in ("ada@example.com", "nobody@example.com"):
            response = form(client_of(container), "/forgot-password", email=address)
            answers.append((response.status_code, re.search(r'id="reset-requested">([^<]*)<', response.text).group(1)))
        assert answers[0] == answers[1] == (200, NEUTRAL_ANSWER)
        assert container.email_worker().drain() == 0  # each answer queued a lookup, not an email
        assert container.job_worker().drain() == 2  # one lookup per request, whatever the address
        assert container.email_worker().drain() == 1  # only the account gets an email
        [message] = smtp.mailbox.messages
    assert message["To"] == "ada@example.com" and message["Subject"] == "Reset your TOW password"
    text, html = parts(message)
    [path] = RESET_LINK.findall(text)
    assert path in html and "30 minutes" in text
    visitor = client_of(container)
    assert 'name="password"' in visitor.get(path).text
    token = path.rsplit("/", 1)[1]
    done = form(visitor, "/reset-password", page=path, token=token, password="a new good password")
    assert done.status_code == 303 and done.headers["location"] == "/login?password_reset=1"
    assert ada.get("/api/me").status_code == 401 and elsewhere.get("/api/me").status_code == 401
    assert client_of(container).post("/api/auth/login", json={"email": FIRST["email"],
                                                               "password": FIRST["password"]}).status_code == 401
    assert client_of(container).post("/api/auth/login", json={"email": FIRST["email"],
                                                               "password": "a new good password"}).status_code == 200
    reopened = visitor.get(path).text
    assert "already used" in reopened and 'name="password"' not in reopened
    again = form(visitor, "/reset-password", page="/login", token=token, password="an attacker password")
    assert again.status_code == 409 and "already used" in again.text


def test_the_console_transport_logs_one_line_per_message_and_never_the_body(make_container, caplog):
    container = make_container("runtime:\n  public_app_url: http://127.0.0.1:8000\n")
    ada, org = first_account(container)
    created = invite(ada, org, "dee@example.com")
    with caplog.at_level(logging.INFO, logger="tow.email"):
        assert container.email_worker().drain() == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "tow.email"]
    assert lines == ["email to dee@example.com: Ada invited you to Acme on TOW"]
    token = created["token"]
    assert all(token not in r.getMessage() and "/invite/" not in r.getMessage() for r in caplog.records)


def test_a_refusing_mail_server_leaves_the_invite_made_retries_then_dead_letters_for_server_admins(make_container,
                                                                                                   tmp_path):
    with SmtpServer(tmp_path, starttls=False) as smtp:
        smtp.mailbox.refuse = True
        container = make_container(smtp.yaml(security="none", max_attempts=2))
        ada, org = first_account(container)
        invite(ada, org, "dee@example.com")  # 201: the request never waits for the mail server
        now = [utc_now()]
        worker = build_email_worker(container.engine(), container.config(), container.mail_transport(),
                                    clock=lambda: now[0])
        assert worker.drain() == 1 and smtp.mailbox.refused == 1
        assert worker.drain() == 0  # backing off: nothing due yet
        now[0] += timedelta(seconds=31)
        assert worker.drain() == 1 and smtp.mailbox.refused == 2
        now[0] += timedelta(days=1)
        assert worker.drain() == 0 and smtp.mailbox.messages == []
    [dead] = dead_letters(container, limit=10)
    assert (dead.message.to, dead.attempts) == ("dee@example.com", 2) and "451" in dead.last_error
    server_page = ada.get("/server").text
    assert "dee@example.com" in server_page and "Ada invited you to Acme on TOW" in server_page and "451" in server_page
    assert "/invite/" not in server_page  # the dead letter's body (with its link) is not shown
    token = ada.post(f"/api/organisations/{org}/invites", json={}).json()["token"]
    bob = client_of(container)
    bob.post("/api/auth/register", json={"invite_token": token, "email": "bob@example.com", "display_name": "Bob",
                                         "password": "another good password"})
    refused = bob.get("/server")  # a member who is not server admin: no such page
    assert refused.status_code == 404 and "dee@example.com" not in refused.text


def test_two_workers_send_each_message_once(make_container, tmp_path):
    with SmtpServer(tmp_path, starttls=False) as smtp:
        container = make_container(smtp.yaml(security="none"))
        ada, org = first_account(container)
        addresses = [f"person{n}@example.com" for n in range(8)]
        for address in addresses:
            invite(ada, org, address)
        workers = [build_email_worker(container.engine(), container.config(), container.mail_transport())
                   for _ in range(2)]
        threads = [threading.Thread(target=w.drain) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        received = sorted(m["To"] for m in smtp.mailbox.messages)
    assert received == sorted(addresses)


def test_the_file_transport_writes_each_message_as_an_eml_file(make_container, tmp_path):
    mail_dir = tmp_path / "mail"
    container = make_container(f"runtime:\n  public_app_url: http://127.0.0.1:8000\n"
                               f"email:\n  transport: file\n  file_directory: {mail_dir}\n")
    ada, org = first_account(container)
    created = invite(ada, org, "dee@example.com")
    assert container.email_worker().drain() == 1
    [eml] = list(mail_dir.glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["To"] == "dee@example.com" and created["accept_url"] in parts(message)[0]
    assert not list(mail_dir.glob(".*"))  # no partial file left behind


@pytest.mark.parametrize("body", [{"send_email": True}, {"send_email": True, "email": None}])
def test_sending_an_invite_by_email_needs_an_address(make_container, body):
    container = make_container()
    ada, org = first_account(container)
    response = ada.post(f"/api/organisations/{org}/invites", json=body)
    assert response.status_code == 422 and response.json()["error"]["field"] == "email"


def test_the_invite_form_sends_by_email_when_ticked(make_container, tmp_path):
    mail_dir = tmp_path / "mail"
    container = make_container(f"runtime:\n  public_app_url: http://127.0.0.1:8000\n"
                               f"email:\n  transport: file\n  file_directory: {mail_dir}\n")
    ada, org = first_account(container)
    settings = f"/o/{org}/settings"
    assert 'name="send_email"' in ada.get(settings).text
    shown = form(ada, f"{settings}/invites", page=settings, role="member", email="dee@example.com",
                 expires_in_hours="24", send_email="on")
    assert shown.status_code == 200 and "being emailed to dee@example.com" in shown.text
    [link] = INVITE_LINK.findall(shown.text)
    unticked = form(ada, f"{settings}/invites", page=settings, role="member", email="eve@example.com",
                    expires_in_hours="24")
    assert "being emailed" not in unticked.text
    assert container.email_worker().drain() == 1
    [eml] = list(mail_dir.glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["To"] == "dee@example.com" and link in parts(message)[0]


def test_tow_worker_once_sends_due_email_and_tow_email_dead_letters_lists_what_was_given_up(
        make_container, fresh_database_url, tmp_path, monkeypatch, capsys):
    from tests.postgres_fixtures import SECRET
    from tow_http.cli import main

    container = make_container("runtime:\n  public_app_url: http://127.0.0.1:8000\n")
    ada, org = first_account(container)
    invite(ada, org, "dee@example.com")
    (tmp_path / "cli.yaml").write_text("email:\n  transport: file\n  file_directory: ./mail\n  max_attempts: 1\n")
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("APP_SECRET", SECRET)
    cli = ["--config", str(tmp_path / "cli.yaml")]
    assert main([*cli, "worker", "--once"]) == 0
    assert "made 1 email delivery attempt(s)" in capsys.readouterr().out
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1
    assert main([*cli, "email", "dead-letters"]) == 0
    assert capsys.readouterr().out == "0 dead-lettered email(s)\n"
    (tmp_path / "cli.yaml").write_text(f"email:\n  transport: file\n  file_directory: {tmp_path / 'cli.yaml'}\n"
                                       "  max_attempts: 1\n")  # a file where the directory should be: unwritable
    invite(ada, org, "eve@example.com")
    assert main([*cli, "worker", "--once"]) == 0
    assert main([*cli, "email", "dead-letters"]) == 0
    out = capsys.readouterr().out
    [line] = [row for row in out.splitlines() if "eve@example.com" in row]
    assert "1 attempt(s)" in line and "Ada invited you to Acme on TOW" in line and "cannot write email" in line
    assert "/invite/" not in out and out.endswith("1 dead-lettered email(s)\n")
