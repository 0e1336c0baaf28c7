"""The chat tool loop through the real OpenAI SDK adapter against the fake OpenAI server (tests/fake_openai.py),
over the in-memory world of tests/unit/records_world.py: what goes over the wire each round, and the one
egress-ledger row each request leaves, naming exactly the records whose content that request carries."""

from __future__ import annotations

import json

from tests.contract.test_openai_adapter import MODELS
from tests.fake_egress import InMemoryEgressLedger
from tests.unit.records_world import World
from tow_adapters.openai_client import OpenAIGateway, OpenAIOptions
from tow_adapters.openai_reasoning import OpenAIReasoningModel
from tow_core.ai import EgressContext, EgressPurpose, InputMessage, ReasoningRequest, UnconfiguredWebSearch
from tow_core.chat import Asker, ChatAssistant, ChatQuestion, reads_as
from tow_core.records import RecordType


def records_in(body: dict) -> set[str]:
    """The display IDs of every record a tool result in this request body carries."""
    found = set()
    for item in body["input"]:
        if item.get("type") != "function_call_output":
            continue
        data = json.loads(item["output"].removeprefix("<tool-data>\n").removesuffix("\n</tool-data>"))
        for key in ("records", "results", "backlinks"):
            found.update(entry["display_id"] for entry in data.get(key, ()) if "display_id" in entry)
    return found


def test_every_round_is_stateless_carries_reasoning_without_ids_and_leaves_one_exact_ledger_row(fake_openai):
    w = World()
    ops = w.create("ada", RecordType.DOC, "Release notes", w.project("OPS"), body="We release every Tuesday.")
    app = w.create("ada", RecordType.DOC, "Release plan", w.project("APP"), body="release train: see OPS notes")
    w.create("ada", RecordType.DOC, "Release secrets", w.project("SEC"), body="release the vault at midnight")
    ops_id, app_id = str(ops.display_id), str(app.display_id)
    ledger = InMemoryEgressLedger()
    gateway = OpenAIGateway(OpenAIOptions("sk-test", fake_openai.base_url, 5.0), ledger, (fake_openai.base_url,))
    chat = ChatAssistant(OpenAIReasoningModel(gateway, MODELS), UnconfiguredWebSearch(), None, max_tool_rounds=6)
    bob = Asker(w.ids["bob"], w.org, reads_as(w.transactions, user_id=w.ids["bob"], org_id=w.org))

    fake_openai.queue_response(function_calls=[("search_records", {"query": "release"})], reasoning="enc-A")
    fake_openai.queue_response(function_calls=[("get_record", {"display_id": ops_id})], reasoning="enc-B")
    fake_openai.queue_response(text=f'Every Tuesday [{ops_id} "release every Tuesday"].', reasoning="enc-C")
    answer = chat.answer(bob, ChatQuestion("When do we release?"))
    fake_openai.queue_response(text="Yes.")
    chat.answer(bob, ChatQuestion("Sure?", history=(InputMessage("user", "When do we release?"),
                                                    InputMessage("assistant", answer.text))))

    assert [c.display_id for c in answer.citations] == [ops_id] and answer.usage.input_tokens == 33
    requests = fake_openai.requests_to("/v1/responses")
    assert len(requests) == 4 and len(ledger.rows) == 4
    for request, row in zip(requests, ledger.rows, strict=True):
        body = request.body
        assert body["store"] is False and "previous_response_id" not in body
        assert body["include"] == ["reasoning.encrypted_content"]
        assert set(row.record_display_ids) == records_in(body)
        assert len(row.record_display_ids) == len(set(row.record_display_ids))
        assert (row.purpose, row.acting_user_id, row.organisation_id, row.outcome) == (
            EgressPurpose.CHAT, w.ids["bob"], w.org, "ok")
        assert row.request_bytes == request.body_bytes
    assert [set(row.record_display_ids) for row in ledger.rows] == [set(), {ops_id, app_id}, {ops_id, app_id},
                                                                    set()]
    reasoning = [[item for item in r.body["input"] if item.get("type") == "reasoning"] for r in requests]
    assert [[item["encrypted_content"] for item in items] for items in reasoning] == [
        [], ["enc-A"], ["enc-A", "enc-B"], []]
    assert all("id" not in item for items in reasoning for item in items)
    assert "vault" not in json.dumps([r.body for r in requests])  # SEC is Bob's blind spot


def test_a_requests_own_records_join_the_contexts_in_its_ledger_row(fake_openai):
    ledger = InMemoryEgressLedger()
    gateway = OpenAIGateway(OpenAIOptions("sk-test", fake_openai.base_url, 5.0), ledger, (fake_openai.base_url,))
    context = EgressContext(EgressPurpose.SNAPSHOT, 7, 3, record_display_ids=("DOC-1", "MEM-2"))
    request = ReasoningRequest("x", [InputMessage("user", "hi")], record_display_ids=("MEM-2", "DOC-3"))
    OpenAIReasoningModel(gateway, MODELS).respond(request, context)
    [row] = ledger.rows
    assert row.record_display_ids == ("DOC-1", "MEM-2", "DOC-3")
    [sent] = fake_openai.requests
    assert "include" not in sent.body  # only a request that asks for reasoning items gets them
