"""Email TOW sends (issue 19): composed from templates, then queued in the outbox (``tow_core.outbox``) in
the same transaction as the change that causes it, so an invite and its email commit together or not at all.

Rules:
- A message is plain text plus HTML, both rendered from one template pair (``EmailTemplates``); links in it
  are built from ``runtime.public_app_url``, where people reach TOW.
- A message carries no secret beyond what it says to its recipient (an invite's or a reset's link); the outbox
  keeps it until it is sent, then keeps only its recipient and subject (``tow_core.outbox``).
- Subjects are one line: names are folded onto it, so no value can add a header.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """One message to one recipient, rendered whole: what the outbox stores and a transport sends."""

    to: str
    subject: str
    text: str
    html: str
    # Extra headers (a notification's List-Unsubscribe, RFC 8058); values are one line (``one_line``).
    headers: Mapping[str, str] = field(default_factory=dict)


class EmailTemplates(Protocol):
    """Renders the template pair ``name`` (plain text and HTML) with ``context``."""

    def render(self, name: str, context: Mapping[str, object]) -> tuple[str, str]: ...


def one_line(value: str) -> str:
    """``value`` with every run of whitespace (newlines too) folded into one space."""
    return " ".join(value.split())


@dataclass(frozen=True)
class MailComposer:
    """Composes the emails TOW sends, with links into ``public_app_url``."""

    templates: EmailTemplates
    public_app_url: str
    app_name: str = "TOW"

    def link(self, path: str) -> str:
        return self.public_app_url.rstrip("/") + path

    def invite(self, *, to: str, organisation_name: str, inviter_name: str, role: str, token: str,
               expires_at: datetime) -> OutgoingEmail:
        """The invite link (``/invite/{token}``), who sent it, to which organisation, with which role."""
        context = {"app_name": self.app_name, "organisation_name": organisation_name, "inviter_name": inviter_name,
                   "role": role, "link": self.link(f"/invite/{quote(token, safe='')}"),
                   "expires_at": expires_at.strftime("%Y-%m-%d %H:%M UTC")}
        subject = f"{inviter_name} invited you to {organisation_name} on {self.app_name}"
        return self._compose("invite", to, subject, context)

    def password_reset(self, *, to: str, display_name: str, token: str, valid_minutes: int) -> OutgoingEmail:
        """The single-use link (``/reset-password/{token}``) that sets a new password."""
        context = {"app_name": self.app_name, "display_name": display_name, "valid_minutes": valid_minutes,
                   "link": self.link(f"/reset-password/{quote(token, safe='')}"), "email": to}
        return self._compose("password_reset", to, f"Reset your {self.app_name} password", context)

    def notification(self, *, to: str, display_name: str, subject: str, text: str, link: str | None,
                     unsubscribe: str, about: str) -> OutgoingEmail:
        """One notification (``tow_core.notifications``): what happened, a link to its record, and a one-click
        unsubscribe link (``unsubscribe``: a path) that turns this kind's email off, also as the
        ``List-Unsubscribe`` / ``List-Unsubscribe-Post`` headers of RFC 8058."""
        off = self.link(unsubscribe)
        context = {"app_name": self.app_name, "display_name": display_name, "text": text,
                   "link": self.link(link) if link else None, "unsubscribe": off, "about": about}
        message = self._compose("notification", to, f"[{self.app_name}] {subject}", context)
        return OutgoingEmail(message.to, message.subject, message.text, message.html,
                             {"List-Unsubscribe": f"<{off}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})

    def digest(self, *, to: str, display_name: str, items: Sequence[tuple[str, str | None]],
               unsubscribe: str) -> OutgoingEmail:
        """The daily digest: one line per notification (its text and link path, if any), and a one-click
        unsubscribe link (a path) that turns the digest off, also as the RFC 8058 headers."""
        off = self.link(unsubscribe)
        context = {"app_name": self.app_name, "display_name": display_name, "unsubscribe": off,
                   "items": [(text, self.link(link) if link else None) for text, link in items]}
        count = f"{len(items)} notification{'' if len(items) == 1 else 's'}"
        message = self._compose("digest", to, f"[{self.app_name}] Your daily digest: {count}", context)
        return OutgoingEmail(message.to, message.subject, message.text, message.html,
                             {"List-Unsubscribe": f"<{off}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})

    def _compose(self, template: str, to: str, subject: str, context: Mapping[str, object]) -> OutgoingEmail:
        text, html = self.templates.render(template, context)
        return OutgoingEmail(to, one_line(subject), text, html)
