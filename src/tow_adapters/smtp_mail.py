"""Mail transports (``email.transport``): ``ConsoleMailTransport`` logs one line per message (recipient and
subject, never the body), ``FileMailTransport`` writes each message as an ``.eml`` file (development, tests),
``SmtpMailTransport`` sends it over SMTP with STARTTLS, implicit TLS (RFC 8314) or, on a trusted network,
neither. All build the same standard-library ``EmailMessage``: plain text with an HTML alternative.

Vendor errors (``smtplib``, ``ssl``, sockets, files) are wrapped in ``DependencyUnavailable`` naming the
server and the reason; the outbox retries, then dead-letters (``tow_core.outbox``).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Literal

from tow_core.errors import DependencyUnavailable
from tow_core.mail import OutgoingEmail

log = logging.getLogger("tow.email")
RETRY_AFTER_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Envelope:
    """Headers every message gets: ``From`` and, when set, ``Reply-To``."""

    from_address: str
    reply_to: str = ""

    def message(self, outgoing: OutgoingEmail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.from_address
        message["To"] = outgoing.to
        if self.reply_to:
            message["Reply-To"] = self.reply_to
        message["Subject"] = outgoing.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=parseaddr(self.from_address)[1].rpartition("@")[2] or None)
        for name, value in outgoing.headers.items():
            message[name] = " ".join(value.split())
        message.set_content(outgoing.text)
        message.add_alternative(outgoing.html, subtype="html")
        return message


def _unavailable(what: str, exc: BaseException) -> DependencyUnavailable:
    return DependencyUnavailable(f"{what}: {type(exc).__name__}: {exc}", retry_after_seconds=RETRY_AFTER_SECONDS)


class ConsoleMailTransport:
    """Logs ``email to <recipient>: <subject>`` and sends nothing (the default: nothing leaves the machine)."""

    def __init__(self, envelope: Envelope) -> None:
        self._envelope = envelope

    def send(self, message: OutgoingEmail) -> None:
        log.info("email to %s: %s", message.to, message.subject)


class FileMailTransport:
    """Writes each message to ``directory`` as ``<time>-<n>.eml`` (what a mail client opens)."""

    def __init__(self, envelope: Envelope, directory: Path) -> None:
        self._envelope, self._directory = envelope, directory

    def send(self, message: OutgoingEmail) -> None:
        built = self._envelope.message(message)
        name = built["Message-ID"].strip("<>").replace("@", "_").replace("/", "_")
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            partial = self._directory / f".{name}.part"
            partial.write_bytes(bytes(built))
            partial.replace(self._directory / f"{name}.eml")  # a reader never sees half a message
        except OSError as exc:
            raise _unavailable(f"cannot write email to {self._directory}", exc) from exc


@dataclass(frozen=True, slots=True)
class SmtpOptions:
    host: str
    port: int
    security: Literal["starttls", "tls", "none"]
    timeout_seconds: float
    username: str | None = None  # TOW_SMTP_USERNAME / TOW_SMTP_PASSWORD, from the environment only
    password: str | None = None
    ca_file: str | None = None  # a PEM bundle to trust instead of the system's certificate authorities


class SmtpMailTransport:
    """One SMTP connection per message: no connection is held between sends, so a restarted server or a
    changed password costs nothing but the next attempt."""

    def __init__(self, envelope: Envelope, options: SmtpOptions) -> None:
        self._envelope, self._options = envelope, options

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self._options.ca_file or None)

    def _connect(self) -> smtplib.SMTP:
        o = self._options
        if o.security == "tls":
            return smtplib.SMTP_SSL(o.host, o.port, timeout=o.timeout_seconds, context=self._tls())
        client = smtplib.SMTP(o.host, o.port, timeout=o.timeout_seconds)
        if o.security == "starttls":
            client.starttls(context=self._tls())  # refuses to go on in clear text if the server cannot
        return client

    def send(self, message: OutgoingEmail) -> None:
        o = self._options
        try:
            with self._connect() as client:
                if o.username:
                    client.login(o.username, o.password or "")
                client.send_message(self._envelope.message(message))
        except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise _unavailable(f"SMTP server {o.host}:{o.port} did not take the message", exc) from exc
