"""The data-egress ledger and the approved-provider rule (SPEC §6, "Data-egress ledger").

Every outbound call to an AI or web provider leaves one ledger entry: which provider and base URL,
which model, why (purpose), on whose behalf, for which organisation, the display IDs of every record
whose content was sent, byte counts, duration and outcome. Never the content itself.

Entries are written by the adapter that makes the call, in their own short transactions: an
``in_flight`` entry before anything is sent, completed with the outcome afterwards. So a failed call
still leaves its entry, a process that dies mid-call leaves an ``in_flight`` one, and a rolled-back
user transaction cannot erase the fact that data left the deployment. Owners and admins of an
organisation list its entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

from tow_core.access import Principal, can_administer_org, is_server_admin
from tow_core.ai import EgressContext, EgressPurpose
from tow_core.errors import AccessDenied, InvalidInput, NotFound, ProviderNotApproved

OUTCOME_OK = "ok"
# Written before the request is sent and replaced by the real outcome when it ends: a row left
# "in_flight" means the process stopped mid-call, and the data may have left.
OUTCOME_IN_FLIGHT = "in_flight"


@dataclass(frozen=True, slots=True)
class ProviderEndpoint:
    """Where a call goes: a provider name ("openai", "exa") and the base URL the adapter uses."""

    name: str
    base_url: str
    official_host: str  # the provider's own API host, approved by naming the provider


@dataclass(frozen=True, slots=True)
class EgressEntry:
    provider: str
    base_url: str
    model: str
    purpose: EgressPurpose
    acting_user_id: int | None
    organisation_id: int | None
    record_display_ids: tuple[str, ...]
    request_bytes: int
    response_bytes: int
    duration_ms: int
    outcome: str  # "ok", or the stable error code the call ended with (e.g. "throttled")
    id: int | None = None
    created_at: datetime | None = None


def egress_entry(
    endpoint: ProviderEndpoint, model: str, context: EgressContext, *, request_bytes: int, response_bytes: int,
    duration_ms: int, outcome: str,
) -> EgressEntry:
    return EgressEntry(
        provider=endpoint.name, base_url=endpoint.base_url, model=model, purpose=context.purpose,
        acting_user_id=context.acting_user_id, organisation_id=context.organisation_id,
        record_display_ids=tuple(context.record_display_ids), request_bytes=request_bytes,
        response_bytes=response_bytes, duration_ms=duration_ms, outcome=outcome,
    )


@dataclass(frozen=True, slots=True)
class EgressQuery:
    acting_user_id: int | None = None
    purpose: EgressPurpose | None = None
    record_display_id: str | None = None


class EgressLedger(Protocol):
    def record(self, entry: EgressEntry) -> int:
        """Persist ``entry`` durably and independently of any caller's transaction; its id."""
        ...

    def complete(self, entry_id: int, *, request_bytes: int, response_bytes: int, duration_ms: int,
                 outcome: str) -> None:
        """Fill in how an ``in_flight`` entry ended (again in its own transaction)."""
        ...

    def entries(
        self, org_id: int | None, query: EgressQuery, *, cursor: str | None, limit: int
    ) -> tuple[list[EgressEntry], str | None]:
        """The organisation's entries (``None``: those made for no organisation), newest first, and the
        cursor of the next page (None: last page)."""
        ...


def _normalised_url(url: str) -> str:
    return url.strip().rstrip("/").lower()


def is_approved(endpoint: ProviderEndpoint, approved_providers: Sequence[str]) -> bool:
    """A listed base URL approves exactly that URL; a listed provider name approves the provider's own
    API host only, so pointing ``ai.openai_base_url`` elsewhere needs that URL listed too — otherwise
    changing one setting would silently send company data to a new destination."""
    approved = {_normalised_url(entry) for entry in approved_providers}
    if _normalised_url(endpoint.base_url) in approved:
        return True
    return endpoint.name.lower() in approved and urlsplit(endpoint.base_url).hostname == endpoint.official_host


def refusal(endpoint: ProviderEndpoint) -> ProviderNotApproved:
    return ProviderNotApproved(
        f"provider {endpoint.name!r} at {endpoint.base_url} is not in ai.approved_providers: "
        f"add {endpoint.base_url!r} (or {endpoint.name!r} for its official API) to allow sending data there"
    )


def egress_purpose(value: str | None) -> EgressPurpose | None:
    if value is None:
        return None
    try:
        return EgressPurpose(value)
    except ValueError as exc:
        known = ", ".join(p.value for p in EgressPurpose)
        raise InvalidInput(f"purpose must be one of {known}", field="purpose") from exc


def list_egress(
    ledger: EgressLedger, principal: Principal, *, org_id: int | None, query: EgressQuery, cursor: str | None,
    limit: int,
) -> tuple[list[EgressEntry], str | None]:
    """Owners/admins list their organisation's ledger, newest first; members get AccessDenied and
    non-members NotFound (an organisation's existence is not revealed to outsiders). Calls made for no
    organisation (``org_id`` None: server-level background work) are listed by server admins only."""
    if org_id is None:
        if not is_server_admin(principal):
            raise AccessDenied("only server admins read the server-level data-egress ledger")
    elif not principal.is_active or org_id not in principal.org_roles:
        raise NotFound("organisation not found")
    elif not can_administer_org(principal, org_id):
        raise AccessDenied("only organisation owners and admins read the data-egress ledger")
    if not 1 <= limit <= 200:
        raise InvalidInput("limit must be from 1 to 200", field="limit")
    if cursor is not None and not (cursor.isdecimal() and len(cursor) <= 18):
        raise InvalidInput("cursor is not one this endpoint returned", field="cursor")
    return ledger.entries(org_id, query, cursor=cursor, limit=limit)
