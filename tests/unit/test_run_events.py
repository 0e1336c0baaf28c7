"""Following a chat run's events (tow_core.run_events, tow_core.use_cases.run_events) over the fakes: the
worker writes buffered text deltas, tool activity, restarts and the checked answer; the owner alone reads
them, only the current attempt's, and a finished run whose events are gone still ends with its answer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fake_reasoning import call, step
from tests.unit.records_world import World
from tests.unit.test_chat_use_cases import Chat
from tow_core.agent_runs import EVENTS_KEPT_AFTER_FINISH, AgentRunResult, AgentRunStatus, RunEventKind
from tow_core.chat_tools import ToolActivity
from tow_core.errors import AiNotConfigured, NotFound
from tow_core.jobs import RetryPolicy
from tow_core.records import RecordType
from tow_core.run_events import RunEventLog
from tow_core.use_cases.run_events import AgentRunEventUseCases
from tow_http.agent_run_worker import AgentRunWorker

DOC = RecordType.DOC
POLICY = RetryPolicy(lease_seconds=30, max_attempts=3)
ACTIVITY, DELTA, RESTART = RunEventKind.ACTIVITY, RunEventKind.DELTA, RunEventKind.RESTART


class Ticking:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def event_log(timers: list | None = None):
    writes: list[list[tuple[RunEventKind, dict]]] = []
    clock = Ticking()
    timers = [] if timers is None else timers
    log = RunEventLog(lambda batch: writes.append(list(batch)), monotonic=clock,
                      schedule=lambda seconds, function: timers.append((seconds, function)))
    return log, writes, clock


def test_text_buffered_when_the_model_pauses_is_written_by_the_timer():
    timers: list = []
    log, writes, clock = event_log(timers)
    log.delta("We ")
    clock.now += 0.01
    log.delta("ship ")
    log.delta("on ")
    assert [seconds for seconds, _ in timers] == [0.1]  # one timer for the buffered text, not one per delta
    clock.now += 0.1
    timers.pop()[1]()  # the model wrote nothing more meanwhile
    assert writes[-1] == [(DELTA, {"text": "ship on ", "round": 1})]
    clock.now += 0.1
    log.delta("Fridays")  # a new window: written at once again
    assert writes[-1] == [(DELTA, {"text": "Fridays", "round": 1})]


def test_deltas_are_buffered_to_at_most_ten_writes_a_second_and_flushed_at_each_round_end():
    log, writes, clock = event_log()
    log.delta("We ")  # the first is written at once: the answer starts showing
    for piece in ("ship ", "on ", "Fridays"):
        clock.now += 0.01
        log.delta(piece)
    assert writes == [[(DELTA, {"text": "We ", "round": 1})]]
    clock.now = 0.2
    log.delta(".")
    assert writes[-1] == [(DELTA, {"text": "ship on Fridays.", "round": 1})]
    clock.now = 0.21
    log.delta(" Done")
    log.round_end()
    assert writes[-1] == [(DELTA, {"text": " Done", "round": 1})] and len(writes) == 3
    log.round_end()  # nothing buffered: nothing written
    assert len(writes) == 3


def test_tool_activity_follows_the_text_before_it_and_a_retry_discards_what_was_not_written():
    log, writes, clock = event_log()
    log.delta("Let me look")
    clock.now += 0.01
    log.delta(" it up")
    log.activity(ToolActivity(1, "get_record", {}, ("DOC-1",), (), None))
    assert writes[-1] == [(DELTA, {"text": " it up", "round": 1}),
                          (ACTIVITY, {"round": 1, "tool": "get_record", "records": ["DOC-1"], "error": None})]
    clock.now += 0.01
    log.delta("half an ans")
    log.discard()
    assert writes[-1] == [(RESTART, {"reason": "retry", "round": 1})]  # the buffered text never went out


def test_a_failed_write_keeps_its_events_for_the_next_and_the_run_goes_on():
    batches, failing = [], [True]

    def write(batch):
        if failing[0]:
            raise ConnectionError("database restarting")
        batches.append(list(batch))

    clock = Ticking()
    log = RunEventLog(write, monotonic=clock, schedule=lambda seconds, function: None)
    log.delta("one ")
    failing[0] = False
    clock.now = 1.0
    log.delta("two")
    assert batches == [[(DELTA, {"text": "one ", "round": 1}), (DELTA, {"text": "two", "round": 1})]]


@pytest.fixture
def w() -> World:
    return World()


def asked_and_answered(w: World):
    plan = w.create("ada", DOC, "Release plan", w.project("OPS"), body="We ship every Friday after the review.")
    plan_id = str(plan.display_id)
    chat = Chat(w, step("", call("get_record", display_id=plan_id)),
                step(f'We ship on Fridays [{plan_id} "ship every Friday"] and [DOC-999].'))
    bob = w.credential("bob")
    conversation = chat.start(bob, w.org, None, "Releases")
    run = chat.use_cases.ask(bob, w.org, conversation.id, "When do we ship?").run
    return chat, bob, conversation, run, plan_id


def claim_and_answer(chat: Chat, w: World):
    claimed = chat.runs.claim(now=w.clock(), policy=POLICY)
    chat.handler(claimed, chat.heartbeat)
    return claimed


def test_the_owner_reads_activity_then_the_streamed_text_then_the_checked_answer(w):
    chat, bob, conversation, run, plan_id = asked_and_answered(w)
    claim_and_answer(chat, w)
    events = AgentRunEventUseCases(chat.transactions, True)
    batch = events.poll(bob, w.org, run.id)
    kinds = [e.kind.value for e in batch.events]
    assert kinds[0] == "activity" and kinds[-1] == "answer" and set(kinds[1:-1]) == {"delta"}
    assert batch.events[0].data == {"round": 1, "tool": "get_record", "records": [plan_id], "error": None}
    streamed = "".join(e.data["text"] for e in batch.events if e.kind is DELTA)
    answer = batch.events[-1].data
    saved = chat.conversations.turns(conversation.id)[-1]
    assert streamed == f'We ship on Fridays [{plan_id} "ship every Friday"] and [DOC-999].'
    assert answer["turn_id"] == saved.id and answer["text"] == saved.text
    assert [c["display_id"] for c in answer["citations"]] == [plan_id]
    assert [d["reason"] for d in answer["dropped_citations"]] == ["not_returned_by_tool"]
    assert not batch.finished  # the worker writes done when it records the end
    assert events.poll(bob, w.org, run.id, after_seq=batch.events[-1].seq).events == ()


def test_only_the_runs_owner_reads_its_events_not_even_the_organisations_owner(w):
    chat, bob, _, run, _ = asked_and_answered(w)
    claim_and_answer(chat, w)
    events = AgentRunEventUseCases(chat.transactions, True)
    for name in ("ada", "cy", "oscar"):  # the org owner, another member, an outsider
        with pytest.raises(NotFound):
            events.poll(w.credential(name), w.org, run.id)
    with pytest.raises(NotFound):  # the right run under another organisation's id
        events.poll(bob, w.other_org, run.id)
    with pytest.raises(AiNotConfigured):
        AgentRunEventUseCases(chat.transactions, False).poll(bob, w.org, run.id)
    w.directory.remove_membership(w.org, w.ids["bob"])
    with pytest.raises(NotFound):  # his own run, once he is no longer a member
        events.poll(bob, w.org, run.id)


def test_a_new_attempt_restarts_the_stream_and_a_stale_attempts_events_are_never_shown(w):
    chat, bob, _, run, _ = asked_and_answered(w)
    policy = POLICY
    first = chat.runs.claim(now=w.clock(), policy=policy)
    chat.runs.append_events(first, [(DELTA, {"text": "from the first worker", "round": 1})], now=w.clock())
    later = w.clock() + timedelta(seconds=60)  # the first worker's lease expired
    worker = AgentRunWorker(lambda: _same(chat.runs), {"chat": chat.handler}, policy=policy, concurrency=1,
                            poll_interval_seconds=0.1, clock=lambda: later)
    assert worker.run_once().id == run.id
    assert not chat.runs.append_events(first, [(DELTA, {"text": "stale", "round": 1})], now=later)
    batch = AgentRunEventUseCases(chat.transactions, True).poll(bob, w.org, run.id)
    texts = [e.data.get("text") for e in batch.events if e.kind is DELTA]
    assert batch.events[0].kind is RESTART and batch.events[0].data == {"reason": "new_attempt", "attempt": 2}
    assert "from the first worker" not in texts and "stale" not in texts
    assert {e.attempt for e in batch.events} == {2}
    assert batch.finished and batch.events[-1].data == {"status": "completed", "error_code": None, "error": None}


def test_a_finished_run_whose_events_were_purged_still_ends_with_its_answer_and_done(w):
    chat, bob, conversation, run, plan_id = asked_and_answered(w)
    claimed = claim_and_answer(chat, w)
    chat.runs.finish_completed(claimed, AgentRunResult({}), now=w.clock())
    assert chat.runs.purge_events(finished_before=w.clock() + EVENTS_KEPT_AFTER_FINISH, limit=100) > 0
    batch = AgentRunEventUseCases(chat.transactions, True).poll(bob, w.org, run.id)
    assert [e.kind.value for e in batch.events] == ["answer", "done"] and batch.finished
    assert batch.events[0].data["turn_id"] == chat.conversations.turns(conversation.id)[-1].id
    assert [c["display_id"] for c in batch.events[0].data["citations"]] == [plan_id]
    assert batch.events[1].data["status"] == AgentRunStatus.COMPLETED.value


def test_a_run_cancelled_while_queued_ends_with_done_cancelled(w):
    chat, bob, _, run, _ = asked_and_answered(w)
    chat.runs.request_cancel(run.id, now=w.clock())
    batch = AgentRunEventUseCases(chat.transactions, True).poll(bob, w.org, run.id)
    assert [(e.kind.value, e.data.get("status")) for e in batch.events] == [("done", "cancelled")]


def _same(runs):
    from contextlib import nullcontext

    return nullcontext(runs)
