"""A real SMTP server on loopback for the email tests (aiosmtpd): it keeps what it receives, can require
STARTTLS (with a self-signed certificate made here, ``cryptography``) and a login, or refuse every message
with a temporary failure, as a mail server that is down for maintenance does."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files in ``directory``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class Mailbox:
    """What the server received; ``refuse`` answers every message with 451 (a temporary failure)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[tuple[str, str]] = []
        self.refuse = False
        self.refused = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        if self.refuse:
            with self._lock:
                self.refused += 1
            return "451 4.3.0 mailbox temporarily unavailable"
        with self._lock:
            self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
            return AuthResult(success=auth_data.password == b"relay password")
        return AuthResult(success=False, handled=False)


class SmtpServer:
    def __init__(self, tmp_path: Path, *, starttls: bool, require_login: bool = False,
                 implicit_tls: bool = False) -> None:
        self.mailbox = Mailbox()
        self.port = free_port()
        self.ca_file: Path | None = None
        kwargs: dict = {}
        if starttls or implicit_tls:
            cert_file, key_file = self_signed_certificate(tmp_path)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert_file, key_file)
            self.ca_file = cert_file
            if implicit_tls:
                kwargs.update(ssl_context=context)  # TLS from the first byte (port 465 style)
            else:
                kwargs.update(tls_context=context, require_starttls=True)
        if require_login:
            kwargs.update(authenticator=self.mailbox.authenticate, auth_required=True, auth_require_tls=starttls or implicit_tls)
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def yaml(self, *, security: str, max_attempts: int = 8, public_app_url: str = "http://127.0.0.1:8000") -> str:
        ca = f"    ca_file: {self.ca_file}\n" if self.ca_file else ""
        return (f"runtime:\n  public_app_url: {public_app_url}\n"
                "email:\n  transport: smtp\n  from_address: \"TOW <tow@acme.example>\"\n"
                f"  reply_to: help@acme.example\n  max_attempts: {max_attempts}\n"
                f"  smtp:\n    host: 127.0.0.1\n    port: {self.port}\n    security: {security}\n"
                f"    timeout_seconds: 10\n{ca}")
