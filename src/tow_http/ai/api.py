"""AI status and the data-egress ledger over HTTP (SPEC §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Router, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from tow_core.ai import EgressPurpose
from tow_core.egress import EgressEntry
from tow_core.unit_of_work import Credential
from tow_core.use_cases.ai import AiUseCases, EgressPage
from tow_http.ai_services import AiStatus

UserId = Annotated[int | None, QueryParameter(name="user_id", description="only calls made on behalf of this user")]
Purpose = Annotated[
    EgressPurpose | None,
    QueryParameter(name="purpose", description="chat, extraction, snapshot, embedding, web_search or web_fetch"),
]
Record = Annotated[
    str | None, QueryParameter(name="record", description='only calls that sent this record, e.g. "DOC-7"')
]
Cursor = Annotated[str | None, QueryParameter(name="cursor", description="next_cursor of the previous page")]
Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=200)]


class EgressEntryOut(msgspec.Struct):
    id: int
    created_at: datetime
    provider: str
    base_url: str
    model: str
    purpose: str
    acting_user_id: int | None
    organisation_id: int | None
    record_display_ids: list[str]
    request_bytes: int
    response_bytes: int
    duration_ms: int
    outcome: str


class EgressPageOut(msgspec.Struct):
    items: list[EgressEntryOut]
    next_cursor: str | None


def entry_out(entry: EgressEntry) -> EgressEntryOut:
    assert entry.id is not None and entry.created_at is not None
    return EgressEntryOut(
        entry.id, entry.created_at, entry.provider, entry.base_url, entry.model, entry.purpose.value,
        entry.acting_user_id, entry.organisation_id, list(entry.record_display_ids), entry.request_bytes,
        entry.response_bytes, entry.duration_ms, entry.outcome,
    )


@get("/ai/status", summary="Which AI features are on (signed-in users)", sync_to_thread=True,
     description="Whether OPENAI_API_KEY and EXA_API_KEY are set (never their values), the models and "
     "embedding dimension in use, where data would be sent and whether ai.approved_providers allows it. "
     "Without OPENAI_API_KEY, AI-only endpoints answer 503 `ai_not_configured` and search is keyword-only.")
def ai_status(caller: NamedDependency[Credential], ai: NamedDependency[AiUseCases[AiStatus]]) -> AiStatus:
    return ai.status(caller)


@get("/organisations/{org_id:int}/egress", summary="Data-egress ledger (owners/admins)", sync_to_thread=True,
     description="Every call to an external AI or web provider made for this organisation, newest first: "
     "provider, base URL, model, purpose, acting user, the display IDs of the records whose content was sent, "
     "byte counts, duration and outcome (`ok` or the error, including refused calls to unapproved "
     "providers). Never the content. Members get 403; other organisations' ids 404.")
def organisation_egress(
    org_id: int, caller: NamedDependency[Credential], ai: NamedDependency[AiUseCases[AiStatus]],
    user_id: UserId = None, purpose: Purpose = None, record: Record = None, cursor: Cursor = None, limit: Limit = 50,
) -> EgressPageOut:
    return page_out(ai.egress(caller, org_id, user_id=user_id, purpose=purpose, record=record, cursor=cursor,
                              limit=limit))


def page_out(page: EgressPage) -> EgressPageOut:
    return EgressPageOut([entry_out(e) for e in page.entries], page.next_cursor)


@get("/server/egress", summary="Data-egress ledger of work done for no organisation (server admins)",
     sync_to_thread=True,
     description="Calls made for no organisation (e.g. background re-embedding started by no one); same fields "
     "and filters as the organisation ledger. Server admins only.")
def server_egress(
    caller: NamedDependency[Credential], ai: NamedDependency[AiUseCases[AiStatus]], user_id: UserId = None,
    purpose: Purpose = None, record: Record = None, cursor: Cursor = None, limit: Limit = 50,
) -> EgressPageOut:
    return page_out(ai.egress(caller, None, user_id=user_id, purpose=purpose, record=record, cursor=cursor,
                              limit=limit))


ai_router = Router(path="/api", route_handlers=[ai_status, organisation_egress, server_egress], tags=["ai"])
