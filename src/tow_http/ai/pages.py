"""The data-egress ledger in organisation settings (SPEC §6): every call to an AI or web provider made
for the organisation, newest first, filtered by acting user, purpose or record. The same use case as
``GET /api/organisations/{id}/egress``: owners and admins only (members 403, outsiders 404).
"""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.di import NamedDependency

from tow_core.ai import EgressPurpose
from tow_core.errors import InvalidInput
from tow_core.unit_of_work import Credential
from tow_core.use_cases.ai import AiUseCases
from tow_http.pages.web import Shell, page

PAGE_SIZE = 50


def _user_filter(value: str) -> int | None:
    if not value.strip():
        return None
    if not value.strip().isdecimal():
        raise InvalidInput("choose a member to filter by", field="user_id")
    return int(value)


@get("/o/{org_id:int}/settings/egress", sync_to_thread=True, include_in_schema=False)
def egress_ledger(request: Request, org_id: int, caller: NamedDependency[Credential],
                  ai: NamedDependency[AiUseCases], project: str | None = None, user_id: str = "",
                  purpose: str = "", record: str = "", cursor: str | None = None) -> Response:
    framed = ai.egress_page(caller, org_id, project, user_id=_user_filter(user_id), purpose=purpose or None,
                            record=record.strip().upper() or None, cursor=cursor or None, limit=PAGE_SIZE)
    ledger = framed.content
    return page(request, "egress.html", shell=Shell(framed.frame, "settings"), entries=ledger.entries,
                next_cursor=ledger.next_cursor, names=ledger.names, purposes=[p.value for p in EgressPurpose],
                user_id=user_id.strip(), purpose=purpose, record=record.strip().upper(), paged=cursor is not None)


EGRESS_PAGES = [egress_ledger]
