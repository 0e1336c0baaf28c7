"""Agent runs over HTTP (SPEC §6 "AI workflows"): list, show and cancel the AI work people asked for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Router, get, post
from litestar.concurrency import sync_to_thread
from litestar.di import NamedDependency
from litestar.params import HeaderParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from tow_core.errors import TowError
from tow_core.unit_of_work import Credential
from tow_core.use_cases.agent_runs import AgentRunUseCases, VisibleAgentRun
from tow_core.use_cases.extraction import MemoryExtractionUseCases, record_ref
from tow_core.use_cases.run_events import AgentRunEventUseCases, EventBatch
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


POLL_SECONDS = 0.2  # how often a stream looks for new events (each look is one short transaction as you)
KEEP_ALIVE_SECONDS = 15.0

EVENT_PROTOCOL = """Follow a run of yours live, as server-sent events (`text/event-stream`; in a browser,
`EventSource`).
The stream replays the run's events from the start — or after the `Last-Event-ID` header's — then follows new
ones until `done`, and closes. Each event has an `id` (the sequence number to resume after), an `event` (its
kind) and `data` (a JSON object):

- `activity` `{round, tool, records, error}` — a tool call the assistant made as you ended: which tool, the
  display IDs of the records it returned, and its error, if any;
- `delta` `{text, round}` — more of the answer's text: append it (as text, never as HTML). Text comes in
  batches of at most ten a second. A delta of a later `round` starts that round's text afresh: only the last
  round's text is the answer;
- `restart` `{reason}` — drop the text shown so far: a model call was retried (`retry`) or another worker
  took the run over (`new_attempt`); the text starts again;
- `answer` `{turn_id, text, citations, dropped_citations, web_sources, pending_actions}` — the answer as
  saved in the conversation, with the citations the server kept and those it dropped (and why): show this
  instead of the streamed text, which had no citations checked;
- `done` `{status, error_code, error}` — the run ended (`completed`, `failed` or `cancelled`); the stream
  closes.

A comment line (`: keep-alive`) comes every 15 s while nothing else does. Closing the stream does not stop the
run: the answer is saved in the conversation either way. A run that ended a while ago (its events are kept
for 10 minutes after the end) answers its `answer` (chat runs) and `done` at once. Only the run's owner reads
its events — 404 for anyone else, organisation owners and admins included (they see a run's metadata only) —
and only while they still own and read its conversation: a membership or grant revoked meanwhile ends the
stream. A `Last-Event-ID` that is not an id of this stream replays it from the start. 503
`ai_not_configured` without OPENAI_API_KEY."""


def _after_seq(last_event_id: str | None) -> int:
    """The sequence number to resume after; a value this stream never gave as an id replays from the start."""
    value = (last_event_id or "").strip()
    return int(value) if value.isdigit() and len(value) <= 18 else 0


def _messages(batch: EventBatch) -> list[ServerSentEventMessage]:
    return [ServerSentEventMessage(data=msgspec.json.encode(dict(e.data)).decode(), event=e.kind.value, id=e.seq)
            for e in batch.events]


async def _follow(run_events: AgentRunEventUseCases, caller: Credential, org_id: int, run_id: int,
                  batch: EventBatch, after_seq: int) -> AsyncIterator[ServerSentEventMessage]:
    """Polls until ``done``; a poll refused (membership revoked, conversation deleted) ends the stream. When
    the client goes away, the server stops iterating this: the run itself is the worker's and goes on."""
    quiet_since = time.monotonic()
    while True:
        for message in _messages(batch):
            yield message
        if batch.finished:
            return
        if batch.events:
            after_seq, quiet_since = batch.events[-1].seq, time.monotonic()
        elif time.monotonic() - quiet_since >= KEEP_ALIVE_SECONDS:
            yield ServerSentEventMessage(data=None, comment="keep-alive")
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
        try:
            batch = await sync_to_thread(run_events.poll, caller, org_id, run_id, after_seq=after_seq)
        except TowError:
            return


@get("/organisations/{org_id:int}/agent-runs/{run_id:int}/events", summary="Follow an agent run's events (SSE)",
     description=EVENT_PROTOCOL, media_type="text/event-stream")
async def agent_run_events(org_id: int, run_id: int, caller: NamedDependency[Credential],
                           run_events: NamedDependency[AgentRunEventUseCases],
                           last_event_id: Annotated[str | None, HeaderParameter(
                               name="Last-Event-ID", required=False,
                               description="resume after this event id (browsers send it when they reconnect)")]
                           = None) -> ServerSentEvent:
    after_seq = _after_seq(last_event_id)
    # The first poll answers here, so a refused stream is a plain 404 / 503 rather than an empty stream.
    first = await sync_to_thread(run_events.poll, caller, org_id, run_id, after_seq=after_seq)
    return ServerSentEvent(_follow(run_events, caller, org_id, run_id, first, after_seq))



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
    "per doc per `ai.extraction_debounce_seconds`; none with `ai.auto_extraction` off), and a saved chat answer "
    "does when its conversation's `memory_extraction` is on.",
    status_code=HTTP_202_ACCEPTED,
    sync_to_thread=True,
)
def extract_memory(org_id: int, display_id: str, caller: NamedDependency[Credential],
                   extraction: NamedDependency[MemoryExtractionUseCases]) -> AgentRunOut:
    return agent_run_out(extraction.extract(caller, org_id, record_ref(display_id)))


agent_runs_router = Router(path="/api", route_handlers=[list_my_agent_runs, get_my_agent_run, cancel_my_agent_run,
                                                       list_agent_runs, get_agent_run, cancel_agent_run,
                                                       agent_run_events, extract_memory],
                           tags=["ai"])
