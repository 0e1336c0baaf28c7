"""The streamed Responses call (``respond(..., sink=)``) through the real OpenAI SDK against the fake OpenAI
server's server-sent events: the same result as the unstreamed call, its text arriving in pieces, still
store:false and one ledger row per HTTP attempt, and a stream that breaks mid-way retried after the sink is
told to discard what it got."""

from __future__ import annotations

import threading

import pytest

from tests.contract.test_openai_adapter import CHAT, Harness
from tow_core.ai import InputMessage, ReasoningRequest, ToolSpec
from tow_core.errors import DependencyUnavailable, ProviderStateRefused

REQUEST = ReasoningRequest("Be brief.", [InputMessage("user", "When do we ship?")],
                           tools=[ToolSpec("get_record", "Get a record", {"type": "object", "properties": {}})],
                           include_reasoning=True)


class Sink:
    def __init__(self) -> None:
        self.seen: list[str] = []  # "+text" for a delta, "discard" for a discard
        self.changed = threading.Condition()

    def delta(self, text: str) -> None:
        with self.changed:
            self.seen.append(f"+{text}")
            self.changed.notify_all()

    def wait_for(self, text: str, timeout: float = 10) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.text == text, timeout)

    def discard(self) -> None:
        self.seen.append("discard")

    @property
    def text(self) -> str:
        """What the sink shows now: the deltas since the last discard."""
        shown = ""
        for entry in self.seen:
            shown = "" if entry == "discard" else shown + entry[1:]
        return shown


@pytest.fixture
def harness(fake_openai):
    return Harness(fake_openai)


def script(fake_openai) -> None:
    fake_openai.queue_response(text="We ship every Friday after the review.",
                               function_calls=[("get_record", {"display_id": "DOC-1"})], reasoning="enc-1",
                               input_tokens=40, output_tokens=9)


def test_a_streamed_answer_is_the_unstreamed_answer_delivered_in_pieces(harness, fake_openai):
    script(fake_openai)
    plain = harness.reasoner.respond(REQUEST, CHAT)
    script(fake_openai)
    sink = Sink()
    streamed = harness.reasoner.respond(REQUEST, CHAT, sink=sink)

    assert (streamed.output_text, streamed.usage, streamed.model, streamed.reasoning_items) == (
        plain.output_text, plain.usage, plain.model, plain.reasoning_items)
    assert [(c.name, c.arguments_json) for c in streamed.tool_calls] == [(c.name, c.arguments_json)
                                                                         for c in plain.tool_calls]
    assert len(sink.seen) > 3 and "discard" not in sink.seen  # word by word
    assert sink.text == "We ship every Friday after the review."
    unstreamed, stream = fake_openai.requests_to("/v1/responses")
    assert "stream" not in unstreamed.body and stream.body["stream"] is True
    assert stream.body["store"] is False and "previous_response_id" not in stream.body
    assert {k: v for k, v in stream.body.items() if k != "stream"} == unstreamed.body  # nothing else differs
    assert harness.ledger.outcomes == ["ok", "ok"]
    streamed_row = harness.ledger.rows[1]
    assert streamed_row.record_display_ids == ("DOC-1", "MEM-2")  # the context's, as unstreamed
    assert streamed_row.request_bytes == stream.body_bytes and streamed_row.response_bytes > 0


def test_a_stream_cut_mid_answer_is_discarded_and_retried_with_one_ledger_row_per_attempt(harness, fake_openai):
    fake_openai.queue_stream_cut(after_deltas=2)
    fake_openai.queue_response(text="first try that breaks off")
    fake_openai.queue_response(text="second try answers")
    sink = Sink()
    result = harness.reasoner.respond(REQUEST, CHAT, sink=sink)

    assert result.output_text == "second try answers"
    assert sink.seen[:3] == ["+first ", "+try ", "discard"]
    assert sink.text == "second try answers"
    assert harness.ledger.outcomes == ["stream_broken", "ok"] and len(fake_openai.requests) == 2
    assert all(r.body["store"] is False and r.body["stream"] is True for r in fake_openai.requests)
    assert len(harness.sleeps) == 1  # backed off once, as for any retryable failure


def test_a_failure_before_the_stream_starts_is_retried_without_a_discard(harness, fake_openai):
    fake_openai.queue_failure(503)
    fake_openai.queue_response(text="after the outage")
    sink = Sink()
    assert harness.reasoner.respond(REQUEST, CHAT, sink=sink).output_text == "after the outage"
    assert "discard" not in sink.seen and sink.text == "after the outage"
    assert harness.ledger.outcomes == ["http_503", "ok"]


def test_a_stream_that_keeps_breaking_fails_after_the_last_attempt(fake_openai):
    harness = Harness(fake_openai, max_attempts=2)
    for _ in range(2):
        fake_openai.queue_stream_cut(after_deltas=1)
        fake_openai.queue_response(text="never finished")
    sink = Sink()
    with pytest.raises(DependencyUnavailable, match="broke off"):
        harness.reasoner.respond(REQUEST, CHAT, sink=sink)
    assert sink.seen == ["+never ", "discard", "+never ", "discard"] and sink.text == ""
    assert harness.ledger.outcomes == ["stream_broken", "stream_broken"]


def test_a_held_stream_has_shown_its_first_words_before_it_ends(harness, fake_openai):
    hold = fake_openai.queue_stream_hold(after_deltas=2)
    fake_openai.queue_response(text="one two three four")
    sink = Sink()
    done = threading.Event()
    worker = threading.Thread(target=lambda: (harness.reasoner.respond(REQUEST, CHAT, sink=sink), done.set()))
    worker.start()
    try:
        assert hold.arrived.wait(10)
        assert sink.wait_for("one two ")  # the first deltas are out while the call is still open
        assert not done.is_set()
    finally:
        hold.release.set()
        worker.join(10)
    assert done.is_set() and sink.text == "one two three four"


def test_the_refusal_rules_hold_for_a_streamed_call(harness, fake_openai):
    with pytest.raises(ProviderStateRefused) as refused:
        harness.gateway.create_response(model="m", params={"input": "hi", "extra_body": {"store": True}},
                                        context=CHAT, sink=Sink())
    assert refused.value.field == "extra_body"
    assert fake_openai.requests == [] and harness.ledger.rows == []
