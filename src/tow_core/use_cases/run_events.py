"""Following an agent run (issue 13 item 4, streaming): the events a run's owner reads, poll by poll, for the
event stream ``GET .../agent-runs/{id}/events`` (rules in ``tow_core.agent_runs``).

Each poll is one short unit of work as the caller, so a revoked membership, a lost project grant or a
deleted conversation ends the stream at the next poll (NotFound, as for a run that does not exist):
- only the run's owner reads its events — an organisation owner/admin who is not the owner gets NotFound,
  as does everyone else (events carry conversation text; admins see a run's metadata only);
- a chat run's events are read only while its owner still owns and reads its conversation;
- only the events of the run's current attempt are shown (a stale worker's never);
- a finished run whose last events are not there (purged some minutes after the end, or ended without a
  worker: cancelled while queued, its leases expired) answers a final ``answer`` rebuilt from the saved answer
  turn (chat runs) and its ``done``, so a late reader still gets the end.
Without AI configured it is refused like the other chat endpoints (AiNotConfigured).
"""

from __future__ import annotations

from dataclasses import dataclass

from tow_core import agent_runs as rules
from tow_core.agent_runs import MAX_EVENTS_PER_READ, AgentRun, RunEvent, RunEventKind
from tow_core.ai import AI_NOT_CONFIGURED_MESSAGE
from tow_core.conversations import TurnRole, owned_conversation
from tow_core.errors import AiNotConfigured, NotFound
from tow_core.unit_of_work import Acting, Credential, Transactions
from tow_core.use_cases.chat import CHAT_RUN, answer_event


@dataclass(frozen=True, slots=True)
class EventBatch:
    events: tuple[RunEvent, ...]
    finished: bool  # the last event is the run's ``done``: nothing follows


@dataclass(frozen=True)
class AgentRunEventUseCases:
    transactions: Transactions
    ai_configured: bool

    def poll(self, credential: Credential, org_id: int, run_id: int, *, after_seq: int = 0,
             limit: int = MAX_EVENTS_PER_READ) -> EventBatch:
        """The run's events after ``after_seq`` (0: from the start), up to and including ``done``."""
        with self.transactions.acting_as(credential) as acting:
            if not self.ai_configured:  # as every chat endpoint, before anything is looked up
                raise AiNotConfigured(AI_NOT_CONFIGURED_MESSAGE)
            run = self._owned_run(acting, org_id, run_id)
            # The run is read before its events: a ``done`` committed with the run's end is then among them.
            found = tuple(acting.stores.agent_runs.events_after(run.id, attempt=max(run.attempts, 1),
                                                                after_seq=after_seq, limit=limit))
            done = next((n for n, e in enumerate(found) if e.kind is RunEventKind.DONE), None)
            if done is not None:
                return EventBatch(found[:done + 1], True)
            if not run.status.finished or len(found) == limit:
                return EventBatch(found, False)
            return EventBatch(found + self._ending(acting, run, found, after_seq), True)

    @staticmethod
    def _owned_run(acting: Acting, org_id: int, run_id: int) -> AgentRun:
        ws = acting.workspace(org_id)
        run = acting.stores.agent_runs.get(run_id)
        if run is None or run.organisation_id != org_id or not rules.events_readable_by(acting.principal, run):
            raise NotFound("agent run not found")
        if run.kind == CHAT_RUN:
            conversation_id = run.input.get("conversation_id") if run.input else None
            if not isinstance(conversation_id, int):
                raise NotFound("agent run not found")
            owned_conversation(ws, acting.stores.conversations, conversation_id)
        return run

    @staticmethod
    def _ending(acting: Acting, run: AgentRun, found: tuple[RunEvent, ...], after_seq: int) -> tuple[RunEvent, ...]:
        seq = found[-1].seq if found else after_seq
        ending = []
        if run.kind == CHAT_RUN and not any(e.kind is RunEventKind.ANSWER for e in found):
            turns = acting.stores.conversations.turns(int(run.input["conversation_id"]))
            turn = next((t for t in turns if t.role is TurnRole.ASSISTANT and t.agent_run_id == run.id), None)
            if turn is not None:
                ending.append(answer_event(turn))
        ending.append(rules.done_event(run))
        return tuple(RunEvent(seq, run.id, run.attempts, kind, data, run.finished_at or acting.now)
                     for kind, data in ending)
