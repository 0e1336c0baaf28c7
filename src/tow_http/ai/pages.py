"""The data-egress ledger in organisation settings (SPEC §6): every call to an AI or web provider made
for the organisation, newest first, filtered by acting user, purpose or record. The same use case as
``GET /api/organisations/{id}/egress``: owners and admins only (members 403, outsiders 404).
"""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.di import NamedDependency

from tow_core.ai import EgressPurpose
from tow_core.egress import EgressQuery, egress_purpose, list_egress
from tow_core.errors import InvalidInput
from tow_http.context import Services, SignedIn, ai_of, in_unit_of_work
from tow_http.pages.web import member_names, page, shell_for

PAGE_SIZE = 50


def _user_filter(value: str) -> int | None:
    if not value.strip():
        return None
    if not value.strip().isdecimal():
        raise InvalidInput("choose a member to filter by", field="user_id")
    return int(value)


@get("/o/{org_id:int}/settings/egress", sync_to_thread=True, include_in_schema=False)
@in_unit_of_work
def egress_ledger(request: Request, org_id: int, signed_in: NamedDependency[SignedIn],
                  services: NamedDependency[Services], project: str | None = None, user_id: str = "",
                  purpose: str = "", record: str = "", cursor: str | None = None) -> Response:
    shell = shell_for(signed_in, org_id, project, "settings")
    query = EgressQuery(acting_user_id=_user_filter(user_id), purpose=egress_purpose(purpose or None),
                        record_display_id=record.strip().upper() or None)
    entries, next_cursor = list_egress(ai_of(services).egress_ledger, signed_in.principal, org_id=org_id,
                                       query=query, cursor=cursor or None, limit=PAGE_SIZE)
    names = member_names(signed_in, org_id)
    return page(request, "egress.html", shell=shell, entries=entries, next_cursor=next_cursor, names=names,
                purposes=[p.value for p in EgressPurpose], user_id=user_id.strip(), purpose=purpose,
                record=record.strip().upper(), paged=cursor is not None)


EGRESS_PAGES = [egress_ledger]
