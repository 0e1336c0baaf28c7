"""Agent runs over HTTP (SPEC §6 "AI workflows"): list, show and cancel the AI work people asked for."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Router, get, post
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK

from tow_core.unit_of_work import Credential
from tow_core.use_cases.agent_runs import AgentRunUseCases, VisibleAgentRun
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


_ACROSS = ("Across every organisation you belong to: your own runs, and every run of the organisations you own "
           "or administer (of other people's runs only the metadata). `GET /api/organisations/{org_id}/agent-runs` "
           "is the same for one organisation. ")


@get("/agent-runs", sync_to_thread=True, summary="Your agent runs, newest first",
     description=_ACROSS + "Cursor-paged.")
def list_my_agent_runs(caller: NamedDependency[Credential], agent_runs: NamedDependency[AgentRunUseCases],
                       cursor: Cursor = None, limit: Limit = 50) -> AgentRunPageOut:
    page = agent_runs.list(caller, None, cursor=cursor, limit=limit)
    return AgentRunPageOut([agent_run_out(r) for r in page.items], page.next_cursor)


@get("/agent-runs/{run_id:int}", sync_to_thread=True, summary="One agent run, by id",
     description="As `GET /api/organisations/{org_id}/agent-runs/{run_id}`, without naming the organisation: its "
     "owner sees it whole, an owner/admin of its organisation the metadata only, anyone else 404.")
def get_my_agent_run(run_id: int, caller: NamedDependency[Credential],
                     agent_runs: NamedDependency[AgentRunUseCases]) -> AgentRunOut:
    return agent_run_out(agent_runs.get(caller, None, run_id))


@post("/agent-runs/{run_id:int}/cancel", status_code=HTTP_200_OK, sync_to_thread=True,
      summary="Cancel an agent run, by id",
      description="As `POST /api/organisations/{org_id}/agent-runs/{run_id}/cancel`, without naming the "
      "organisation. An owner/admin cancelling someone else's run is in the audit log (`agent_run.cancelled`).")
def cancel_my_agent_run(run_id: int, caller: NamedDependency[Credential],
                        agent_runs: NamedDependency[AgentRunUseCases]) -> AgentRunOut:
    return agent_run_out(agent_runs.cancel(caller, None, run_id))


@get("/organisations/{org_id:int}/agent-runs", sync_to_thread=True,
     summary="Agent runs of an organisation, newest first",
     description="Your agent runs in this organisation (chat answers, memory extractions ...). Organisation "
     "owners and admins see every run of the organisation, but of other people's runs only the metadata — kind, "
     "status, timings, token usage, error code — never their input, output or error text (`content_visible: "
     "false`): conversations are private to their owner. Cursor-paged.")
def list_agent_runs(org_id: int, caller: NamedDependency[Credential],
                    agent_runs: NamedDependency[AgentRunUseCases], cursor: Cursor = None,
                    limit: Limit = 50) -> AgentRunPageOut:
    page = agent_runs.list(caller, org_id, cursor=cursor, limit=limit)
    return AgentRunPageOut([agent_run_out(r) for r in page.items], page.next_cursor)


@get("/organisations/{org_id:int}/agent-runs/{run_id:int}", sync_to_thread=True, summary="One agent run",
     description="Its owner sees it whole; an organisation owner/admin sees its metadata only (input, output "
     "and error null); anyone else gets 404. Poll it to follow a run: `status` goes `queued → running → "
     "completed | failed | cancelled`.")
def get_agent_run(org_id: int, run_id: int, caller: NamedDependency[Credential],
                  agent_runs: NamedDependency[AgentRunUseCases]) -> AgentRunOut:
    return agent_run_out(agent_runs.get(caller, org_id, run_id))


@post("/organisations/{org_id:int}/agent-runs/{run_id:int}/cancel", status_code=HTTP_200_OK, sync_to_thread=True,
      summary="Cancel an agent run",
      description="For its owner and the organisation's owners/admins. A queued run is `cancelled` at once; a "
      "running one gets `cancel_requested: true` and ends `cancelled` when its worker reaches its next step. "
      "409 for a run that already ended; 404 for a run you cannot see. An owner/admin cancelling someone else's "
      "run is in the audit log (`agent_run.cancelled`, with the run's kind and owner).")
def cancel_agent_run(org_id: int, run_id: int, caller: NamedDependency[Credential],
                     agent_runs: NamedDependency[AgentRunUseCases]) -> AgentRunOut:
    return agent_run_out(agent_runs.cancel(caller, org_id, run_id))


agent_runs_router = Router(path="/api", route_handlers=[list_my_agent_runs, get_my_agent_run, cancel_my_agent_run,
                                                       list_agent_runs, get_agent_run, cancel_agent_run],
                           tags=["ai"])
