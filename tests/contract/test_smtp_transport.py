"""``SmtpMailTransport`` against a real SMTP server on loopback (aiosmtpd): every security mode delivers
the same message (plain text with an HTML alternative, From, To, Reply-To, Date, Message-ID); a certificate
TOW does not trust, a server that cannot STARTTLS when TOW asks for it, a wrong login and a closed port are
``DependencyUnavailable`` naming the server (so the outbox retries), never a message sent in clear text."""

from __future__ import annotations

import pytest

from tests.smtp_server import SmtpServer, free_port
from tow_adapters.smtp_mail import Envelope, SmtpMailTransport, SmtpOptions
from tow_core.errors import DependencyUnavailable
from tow_core.mail import OutgoingEmail

MESSAGE = OutgoingEmail("dee@example.com", "Hello Dee", "Plain words, ünïcode.", "<p>HTML words</p>")
ENVELOPE = Envelope("TOW <tow@acme.example>", "help@acme.example")


def transport(server: SmtpServer | None, security: str, *, trust: bool = True, port: int | None = None,
              login: tuple[str, str] | None = None) -> SmtpMailTransport:
    ca = str(server.ca_file) if server and server.ca_file and trust else None
    username, password = login or (None, None)
    return SmtpMailTransport(ENVELOPE, SmtpOptions("127.0.0.1", port or server.port, security, 5,
                                                   username=username, password=password, ca_file=ca))


@pytest.mark.parametrize(("security", "server_kwargs"), [
    ("none", {"starttls": False}), ("starttls", {"starttls": True}), ("tls", {"starttls": False, "implicit_tls": True}),
])
def test_every_security_mode_delivers_the_same_message(tmp_path, security, server_kwargs):
    with SmtpServer(tmp_path, **server_kwargs) as server:
        transport(server, security).send(MESSAGE)
        [received] = server.mailbox.messages
    assert (received["From"], received["To"], received["Reply-To"], received["Subject"]) == (
        "TOW <tow@acme.example>", "dee@example.com", "help@acme.example", "Hello Dee")
    assert received["Date"] and received["Message-ID"].endswith("@acme.example>")
    assert received.get_body(("plain",)).get_content().strip() == "Plain words, ünïcode."
    assert received.get_body(("html",)).get_content().strip() == "<p>HTML words</p>"


def test_a_login_from_the_environment_is_used_and_a_wrong_one_is_refused(tmp_path):
    with SmtpServer(tmp_path, starttls=True, require_login=True) as server:
        transport(server, "starttls", login=("tow-relay", "relay password")).send(MESSAGE)
        with pytest.raises(DependencyUnavailable, match=f"127.0.0.1:{server.port}"):
            transport(server, "starttls", login=("tow-relay", "wrong")).send(MESSAGE)
        assert len(server.mailbox.messages) == 1


@pytest.mark.parametrize("case", ["untrusted certificate", "no STARTTLS offered", "implicit TLS untrusted",
                                  "closed port"])
def test_what_cannot_be_sent_safely_is_not_sent_and_says_why(tmp_path, case):
    kwargs = {"untrusted certificate": {"starttls": True}, "no STARTTLS offered": {"starttls": False},
              "implicit TLS untrusted": {"starttls": False, "implicit_tls": True}, "closed port": None}[case]
    if kwargs is None:
        with pytest.raises(DependencyUnavailable, match="did not take the message"):
            transport(None, "none", port=free_port()).send(MESSAGE)
        return
    with SmtpServer(tmp_path, **kwargs) as server:
        security = "tls" if case.startswith("implicit") else "starttls"
        with pytest.raises(DependencyUnavailable, match=f"SMTP server 127.0.0.1:{server.port}"):
            transport(server, security, trust=False).send(MESSAGE)
        assert server.mailbox.messages == []
