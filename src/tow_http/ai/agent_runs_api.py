"""Agent runs over HTTP (SPEC §6 "AI workflows"): list, show and cancel the AI work people asked for."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Router, get, post
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from tow_core.unit_of_work import SessionCredential
from tow_core.use_cases.agent_runs import AgentRunUseCases, VisibleAgentRun
from tow_core.use_cases.extraction import MemoryExtractionUseCases, record_ref
from tow_http.shapes import Cursor, Limit

_PRIVATE = "Only the run's owner sees it; null for an owner/admin of the organisation who is not the owner."


class AgentRunOut(msgspec.Struct):
    id: int
    organisation_id: int
    kind: Annotated[str, msgspec.Meta(description="what the run does, e.g. `chat`")]
    owner_id: Annotated[int, msgspec.Meta(description="the user who asked for it; it runs as them")]
    project_id: Annotated[int | None, msgspec.Meta(description="its scope: one project, or null for all projects")]
    status: Annotated[str, msgspec.Meta(description="queued, running, completed, failed or cancelled")]
    cancel_requested: Annotated[bool, msgspec.Meta(
        description="a cancel was asked; a running run ends `cancelled` at its next step")]
    attempts: Annotated[int, msgspec.Meta(
        description="how many times a worker claimed it (more than 1: a worker died and another took it over)")]
    input_tokens: int
    output_tokens: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error_code: Annotated[str | None, msgspec.Meta(
        description="why it failed: `handler_failed`, `lease_expired` (its workers kept dying), `no_handler`")]
    content_visible: Annotated[bool, msgspec.Meta(description="you own the run, so input, output and error are shown")]
    input: Annotated[dict[str, Any] | None, msgspec.Meta(description=_PRIVATE)]
    output: Annotated[dict[str, Any] | None, msgspec.Meta(description=_PRIVATE)]
    error: Annotated[str | None, msgspec.Meta(description=f"the failure's message. {_PRIVATE}")]


class AgentRunPageOut(msgspec.Struct):
    items: list[AgentRunOut]
    next_cursor: str | None


def agent_run_out(visible: VisibleAgentRun) -> AgentRunOut:
    run = visible.run
    return AgentRunOut(
        run.id, run.organisation_id, run.kind, run.owner_id, run.project_id, run.status.value, run.cancel_requested,
        run.attempts, run.usage.input_tokens, run.usage.output_tokens, run.created_at, run.started_at,
        run.finished_at, run.error_code, visible.content_visible,
        dict(run.input) if visible.content_visible and run.input is not None else None,
        dict(run.output) if visible.content_visible and run.output is not None else None,
        run.error if visible.content_visible else None,
    )


@get("/organisations/{org_id:int}/agent-runs", sync_to_thread=True, summary="Agent runs, newest first",
     description="Your agent runs in this organisation (chat answers, memory extractions ...). Organisation "
     "owners and admins see every run of the organisation, but of other people's runs only the metadata — kind, "
     "status, timings, token usage, error code — never their input, output or error text (`content_visible: "
     "false`): conversations are private to their owner. Cursor-paged.")
def list_agent_runs(org_id: int, caller: NamedDependency[SessionCredential],
                    agent_runs: NamedDependency[AgentRunUseCases], cursor: Cursor = None,
                    limit: Limit = 50) -> AgentRunPageOut:
    page = agent_runs.list(caller, org_id, cursor=cursor, limit=limit)
    return AgentRunPageOut([agent_run_out(r) for r in page.items], page.next_cursor)


@get("/organisations/{org_id:int}/agent-runs/{run_id:int}", sync_to_thread=True, summary="One agent run",
     description="Its owner sees it whole; an organisation owner/admin sees its metadata only (input, output "
     "and error null); anyone else gets 404. Poll it to follow a run: `status` goes `queued → running → "
     "completed | failed | cancelled`.")
def get_agent_run(org_id: int, run_id: int, caller: NamedDependency[SessionCredential],
                  agent_runs: NamedDependency[AgentRunUseCases]) -> AgentRunOut:
    return agent_run_out(agent_runs.get(caller, org_id, run_id))


@post("/organisations/{org_id:int}/agent-runs/{run_id:int}/cancel", status_code=HTTP_200_OK, sync_to_thread=True,
      summary="Cancel an agent run",
      description="For its owner and the organisation's owners/admins. A queued run is `cancelled` at once; a "
      "running one gets `cancel_requested: true` and ends `cancelled` when its worker reaches its next step. "
      "409 for a run that already ended; 404 for a run you cannot see.")
def cancel_agent_run(org_id: int, run_id: int, caller: NamedDependency[SessionCredential],
                     agent_runs: NamedDependency[AgentRunUseCases]) -> AgentRunOut:
    return agent_run_out(agent_runs.cancel(caller, org_id, run_id))


@post(
    "/organisations/{org_id:int}/records/{display_id:str}/extract",
    summary="Extract memory from a doc",
    description="Queues a `memory_extraction` agent run of the doc (named by record id or display ID, e.g. "
    "`DOC-7`) and answers 202 with the run; poll `GET /api/organisations/{org_id}/agent-runs/{run_id}`. A run "
    "of this doc that is still queued is answered instead of queuing another (it reads the doc when it runs). "
    "Needs write access to the doc's scope (403), and AI configured (503 `ai_not_configured`).\n\n"
    "The run acts as the doc's **last editor** (whoever last changed its title or body; its creator if nobody "
    "did), with their access as it is when the run works: it reads the doc and the active memory items of the "
    "doc's scope they can read, asks the reasoning model once (the egress ledger row names the doc and every "
    "item sent) and proposes **one pending memory diff** in the doc's scope — create, update (against the "
    "version it read), supersede (a contradiction: the old item stays in history as `superseded`) or archive — "
    "each operation with its rationale, the doc cited. Nothing in memory changes until a person approves it. "
    "Duplicates of active items are not proposed (the model's own flag, then the same normalised text, then "
    "embedding similarity ≥ 0.92); the run's `output` lists each dropped operation and why, and names the "
    "`diff_id` (null when there was nothing new). When the caller is not the last editor, the run is theirs to "
    "see only as metadata (`content_visible: false`). Saving a doc queues the same run by itself (at most one "
    "per doc per `ai.extraction_debounce_seconds`).",
    status_code=HTTP_202_ACCEPTED,
    sync_to_thread=True,
)
def extract_memory(org_id: int, display_id: str, caller: NamedDependency[SessionCredential],
                   extraction: NamedDependency[MemoryExtractionUseCases]) -> AgentRunOut:
    return agent_run_out(extraction.extract(caller, org_id, record_ref(display_id)))


agent_runs_router = Router(path="/api", tags=["ai"],
                           route_handlers=[list_agent_runs, get_agent_run, cancel_agent_run, extract_memory])
