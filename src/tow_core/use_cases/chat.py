"""Asking the assistant (SPEC §6 workflow 1, issue 13): a question becomes a user turn and a queued agent run
of kind ``chat`` in one unit of work; a worker runs the tool loop as the asker (``tow_core.chat``) and saves
the answer as an assistant turn, its citations checked at the moment it is saved.

Rules:
- Only the conversation's owner asks in it, while they read its scope (``conversations.owned_conversation``);
  without AI configured asking is refused (AiNotConfigured) and nothing is saved.
- The run acts as the owner with their access loaded fresh for every read: a grant revoked during the run
  counts from the next tool call, and again when the answer is saved (its citations are re-checked then).
  An owner who lost the conversation's scope meanwhile gets no answer (the run fails, nothing is saved).
- A saved answer queues a ``memory_extraction`` run of that turn (``tow_core.use_cases.extraction``) when the
  conversation's ``memory_extraction`` is on, in the same transaction.
- The model sees the conversation's earlier turns as plain text; the records whose content those turns
  carry (every record a tool returned in them) are named in each request's ledger row.
- While it works the run writes its events for the owner to follow (``tow_core.run_events``): tool activity,
  the answer text as the model streams it, a restart when a model call is retried; and, in the transaction
  that saves the answer turn, ``answer`` with the checked text and citations (``answer_event``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tow_core.agent_runs import (
    AgentRun,
    AgentRunFailed,
    AgentRunResult,
    Heartbeat,
    RunEventKind,
    TokenUsage,
    new_run,
)
from tow_core.ai import AI_NOT_CONFIGURED_MESSAGE, InputMessage
from tow_core.chat import Asker, ChatAnswer, ChatAssistant, ChatQuestion, reads_as, verify
from tow_core.chat_actions import AppliedAction, action_json, apply_action
from tow_core.chat_tools import ToolActivity
from tow_core.citations import DropReason
from tow_core.conversations import NewTurn, Turn, TurnRole, owned_conversation
from tow_core.errors import AiNotConfigured, NotFound
from tow_core.live import LiveEvent
from tow_core.run_events import RunEventLog
from tow_core.unit_of_work import Credential, Transactions
from tow_core.use_cases.extraction import ExtractionPolicy, queue_for_chat

CHAT_RUN = "chat"


@dataclass(frozen=True)
class AskedQuestion:
    question: Turn
    run: AgentRun


@dataclass(frozen=True)
class ChatUseCases:
    transactions: Transactions
    ai_configured: bool

    def ask(self, credential: Credential, org_id: int, conversation_id: int, text: str) -> AskedQuestion:
        """Saves the question and queues the run that answers it; the answer is read from the conversation."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            conversation = owned_conversation(ws, acting.stores.conversations, conversation_id)
            if not self.ai_configured:
                raise AiNotConfigured(AI_NOT_CONFIGURED_MESSAGE)
            run = acting.stores.agent_runs.create(
                new_run(CHAT_RUN, owner_id=acting.principal.user_id, organisation_id=org_id,
                        project_id=conversation.project_id, input={"conversation_id": conversation.id}),
                now=acting.now)
            # The question names the run answering it, so the page reads that run alone.
            question = acting.stores.conversations.add_turn(
                conversation.id, NewTurn(TurnRole.USER, text, agent_run_id=run.id), at=acting.now)
            return AskedQuestion(question, run)

    def apply_action(self, credential: Credential, org_id: int, conversation_id: int,
                     action_id: str) -> AppliedAction:
        """Apply a pending action of an answer in the caller's conversation, as the caller now: a ticket is
        created, a memory change is proposed as a pending memory diff (``tow_core.chat_actions``). Works
        without AI configured: nothing here calls a model."""
        with self.transactions.acting_as(credential) as acting:
            ws = acting.workspace(org_id)
            conversation = owned_conversation(ws, acting.stores.conversations, conversation_id)
            applied = apply_action(ws, acting.stores.conversations, acting.stores.memory_diffs, conversation,
                                   action_id, now=acting.now, notifications=acting.notifications())
            if applied.memory_diff is not None:  # its reviewers' inbox counts (tow_core.live)
                acting.stores.live.publish(LiveEvent.reviews_changed(applied.memory_diff.summary.scope))
            return applied


@dataclass(frozen=True)
class ChatRuns:
    """The worker's handler of ``chat`` runs."""

    transactions: Transactions
    assistant: ChatAssistant
    monotonic: Callable[[], float] = field(default=time.monotonic)
    # A saved answer queues a memory extraction (if the conversation's memory_extraction is on).
    extraction: ExtractionPolicy = field(default_factory=ExtractionPolicy)

    def __call__(self, run: AgentRun, heartbeat: Heartbeat) -> AgentRunResult:
        try:
            conversation_id = int(run.input["conversation_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AgentRunFailed("a chat run's input names its conversation_id", error_code="invalid_input") from exc
        with self.transactions.on_behalf_of(run.owner_id, run.organisation_id) as owner:
            conversation = owned_conversation(owner.workspace, owner.stores.conversations, conversation_id)
            turns = owner.stores.conversations.turns(conversation.id)
        question = next((t for t in turns if t.role is TurnRole.USER and t.agent_run_id == run.id), None)
        if question is None:
            raise NotFound("the question is gone (the conversation was deleted)")
        earlier = [t for t in turns if t.position < question.position]
        asked = ChatQuestion(
            question.text,
            history=tuple(InputMessage(t.role.value, t.text) for t in earlier if t.text),
            history_records=tuple(dict.fromkeys(r for t in earlier for a in t.tool_activity
                                                for r in a.get("records", ()))),
        )
        asker = Asker(run.owner_id, run.organisation_id,
                      reads_as(self.transactions, user_id=run.owner_id, org_id=run.organisation_id),
                      conversation.project_id)
        events = RunEventLog(self._writer(run), monotonic=self.monotonic)

        def on_activity(done: ToolActivity) -> None:
            events.activity(done)
            heartbeat()

        heartbeat()
        draft = self.assistant.run(asker, asked, on_activity=on_activity, sink=events, on_round_end=events.round_end)
        events.flush()
        heartbeat()
        # Citations checked as the asker reads now.
        with self.transactions.on_behalf_of(run.owner_id, run.organisation_id) as owner:
            conversation = owned_conversation(owner.workspace, owner.stores.conversations, conversation_id)
            answer = verify(owner.workspace, draft)
            turn = owner.stores.conversations.add_turn(conversation_id, answer_turn(answer, run.id), at=owner.now)
            owner.stores.agent_runs.append_events(run, [answer_event(turn)], now=owner.now)
            if any(a.pending_action for a in answer.tool_activity):  # waits in the asker's inbox (tow_core.inbox)
                owner.stores.live.publish(LiveEvent.user_nudged(run.organisation_id, run.owner_id))
            if conversation.memory_extraction:
                queue_for_chat(owner.stores, self.extraction, owner_id=run.owner_id, org_id=run.organisation_id,
                               project_id=conversation.project_id, conversation_id=conversation_id, turn_id=turn.id,
                               now=owner.now)
        return AgentRunResult({"conversation_id": conversation_id, "answer_turn_id": turn.id,
                               "dropped_citations": answer.dropped_by_reason, "rounds": answer.rounds,
                               "stopped": answer.stopped},
                              TokenUsage(answer.usage.input_tokens, answer.usage.output_tokens))

    def _writer(self, run: AgentRun) -> Callable[[Sequence[tuple[RunEventKind, Mapping[str, Any]]]], None]:
        def write(batch: Sequence[tuple[RunEventKind, Mapping[str, Any]]]) -> None:
            with self.transactions.unattended() as work:
                work.stores.agent_runs.append_events(run, batch, now=work.now)

        return write


def answer_turn(answer: ChatAnswer, run_id: int) -> NewTurn:
    """The assistant turn as stored: the checked text, kept and dropped citations, web sources, tool log; a
    proposal is stored on the activity of the call that made it (``"pending_action"``, no migration needed)."""
    activity = [{"round": a.round, "tool": a.tool, "arguments": dict(a.arguments), "records": list(a.records),
                 "web_sources": [asdict(w) for w in a.web_sources], "error": a.error}
                | ({"pending_action": action_json(a.pending_action, run_id)} if a.pending_action else {})
                for a in answer.tool_activity]
    # A quote of a record the asker cannot read (any more) is not kept: the turn says what was cited and why
    # it was dropped, never the words.
    dropped = [{"display_id": d.display_id, "quote": None if d.reason is DropReason.NOT_READABLE else d.quote,
                "reason": str(d.reason)} for d in answer.dropped_citations]
    dropped += [{"web_ref": d.ref, "reason": str(d.reason)} for d in answer.dropped_web_citations]
    text = answer.text if not answer.stopped else f"{answer.text}\n\n({answer.stopped})".strip()
    return NewTurn(TurnRole.ASSISTANT, text, tool_activity=activity,
                   citations=[asdict(c) for c in answer.citations], dropped_citations=dropped,
                   web_sources=[asdict(w) for w in answer.web_sources], agent_run_id=run_id)


def answer_event(turn: Turn) -> tuple[RunEventKind, dict[str, Any]]:
    """The ``answer`` event of a saved answer turn: what the conversation shows of it (the stream's last word
    on the text; the event stream rebuilds it from the turn when the run's events are gone)."""
    return RunEventKind.ANSWER, {
        "turn_id": turn.id, "text": turn.text, "citations": [dict(c) for c in turn.citations],
        "dropped_citations": [dict(d) for d in turn.dropped_citations],
        "web_sources": [dict(w) for w in turn.web_sources],
        "pending_actions": [dict(a["pending_action"]) for a in turn.tool_activity if a.get("pending_action")]}
