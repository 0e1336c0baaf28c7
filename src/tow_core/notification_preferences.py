"""What each person chose for how notifications reach them (issue 19 item 4; the rules are in
``tow_core.notifications``): per kind in the app, by email or off, and one digest setting for the kinds set to
email."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tow_core.errors import InvalidInput


class Delivery(StrEnum):
    IN_APP = "in_app"
    EMAIL = "email"  # in the app and by email
    OFF = "off"


DEFAULT_DELIVERY = Delivery.IN_APP


class Digest(StrEnum):
    """How the kinds set to email are emailed (see the module rules)."""

    OFF = "off"
    IMMEDIATE = "immediate"
    DAILY = "daily"


DEFAULT_DIGEST = Digest.IMMEDIATE


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """What one person chose for one kind (how it reaches them) and for all (how their email kinds are emailed)."""

    delivery: Delivery = DEFAULT_DELIVERY
    digest: Digest = DEFAULT_DIGEST

    @property
    def emailed_at_once(self) -> bool:
        """Emailed on its own now; a daily digest lists it later, and digest off emails nothing."""
        return self.delivery is Delivery.EMAIL and self.digest is Digest.IMMEDIATE


def delivery_of(text: str, field: str = "delivery") -> Delivery:
    try:
        return Delivery(text)
    except ValueError as exc:
        raise InvalidInput(f"{field} must be in_app, email or off", field=field) from exc


def digest_of(text: str, field: str = "digest") -> Digest:
    try:
        return Digest(text)
    except ValueError as exc:
        raise InvalidInput(f"{field} must be off, immediate or daily", field=field) from exc
