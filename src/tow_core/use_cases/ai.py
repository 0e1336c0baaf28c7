"""AI status and the data-egress ledger (SPEC §6), as the API and the organisation settings page read them.

The ledger's rules (who reads which entries) are in ``tow_core.egress``. The status is whatever secret-free
description of the AI configuration the composition root hands in (the edge's ``AiStatus``); this object only
decides who may see it. Without AI composed at all (``ledger``/``status`` None) both answer AiNotConfigured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from tow_core import administration
from tow_core.ai import AI_NOT_CONFIGURED_MESSAGE
from tow_core.egress import EgressEntry, EgressLedger, EgressQuery, egress_purpose, list_egress
from tow_core.errors import AiNotConfigured
from tow_core.unit_of_work import Credential, Transactions
from tow_core.use_cases.frame import Framed, frame_of

S = TypeVar("S")


@dataclass(frozen=True)
class EgressPage:
    entries: list[EgressEntry]
    next_cursor: str | None


@dataclass(frozen=True)
class EgressLedgerPage(EgressPage):
    """The settings page's ledger, with the organisation's member names (for the acting user)."""

    names: Mapping[int, str]


@dataclass(frozen=True)
class AiUseCases(Generic[S]):
    transactions: Transactions
    ledger: EgressLedger | None = None
    status_value: S | None = None

    def status(self, credential: Credential) -> S:
        """Which AI features are on, for anyone signed in."""
        with self.transactions.acting_as(credential):
            if self.status_value is None:
                raise AiNotConfigured(AI_NOT_CONFIGURED_MESSAGE)
            return self.status_value

    def egress(self, credential: Credential, org_id: int | None, *, user_id: int | None = None,
               purpose: str | None = None, record: str | None = None, cursor: str | None = None,
               limit: int = 50) -> EgressPage:
        """One page of the organisation's ledger (owners/admins), or with ``org_id`` None of the calls made
        for no organisation (server admins)."""
        with self.transactions.acting_as(credential) as acting:
            query = EgressQuery(acting_user_id=user_id, purpose=egress_purpose(purpose), record_display_id=record)
            entries, next_cursor = list_egress(self._ledger(), acting.principal, org_id=org_id, query=query,
                                               cursor=cursor, limit=limit)
            return EgressPage(list(entries), next_cursor)

    def egress_page(self, credential: Credential, org_id: int, project_key: str | None, *,
                    user_id: int | None = None, purpose: str | None = None, record: str | None = None,
                    cursor: str | None = None, limit: int = 50) -> Framed[EgressLedgerPage]:
        with self.transactions.acting_as(credential) as acting:
            frame = frame_of(acting, org_id, project_key)
            query = EgressQuery(acting_user_id=user_id, purpose=egress_purpose(purpose), record_display_id=record)
            entries, next_cursor = list_egress(self._ledger(), acting.principal, org_id=org_id, query=query,
                                               cursor=cursor, limit=limit)
            members = administration.list_members(acting.stores.directory, acting.principal, org_id=org_id)
            names = {m.user_id: m.display_name for m in members}
            return Framed(frame, EgressLedgerPage(list(entries), next_cursor, names))

    def _ledger(self) -> EgressLedger:
        if self.ledger is None:  # an app composed without AI at all (some unit tests)
            raise AiNotConfigured(AI_NOT_CONFIGURED_MESSAGE)
        return self.ledger
