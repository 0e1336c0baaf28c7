"""Memory extraction runs over the fakes (tow_core.use_cases.extraction, tow_core.extraction): a doc's save or a
chat answer queues a run that reads the source as its author and proposes one pending memory diff; nothing in
memory changes until a person approves it. World: tests/unit/records_world.py (Ada owns Acme; Bob reads APP as
a viewer, writes OPS, which is open; SEC is restricted without Bob)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.fake_agent_runs import InMemoryAgentRuns
from tests.fake_conversations import InMemoryConversations
from tests.fake_embeddings import FakeEmbeddingModel
from tests.fake_history import summary_of
from tests.fake_notifications import InMemoryNotifications
from tests.fake_reasoning import ScriptedReasoningModel, call, step
from tests.fake_records import InMemoryMemoryDiffStore
from tests.fake_unit_of_work import fake_transactions
from tests.semantic_vectors import bag_of_words_vector
from tests.unit.records_world import World
from tow_core.access import ProjectRole, Scope
from tow_core.agent_runs import AgentRunStatus
from tow_core.ai import EgressPurpose, UnconfiguredWebSearch
from tow_core.chat import ChatAssistant
from tow_core.conversations import NewConversation, NewTurn, TurnRole
from tow_core.embeddings import EmbeddingSpace
from tow_core.errors import AccessDenied, AiNotConfigured, Conflict, InvalidInput
from tow_core.extraction import EXTRACTION_RUN, TOOL_NAME
from tow_core.memory_diffs import DiffSource, DiffStatus
from tow_core.notifications import NotificationKind
from tow_core.records import RecordType, SearchHit
from tow_core.use_cases.administration import OrganisationUseCases
from tow_core.use_cases.chat import ChatRuns, ChatUseCases
from tow_core.use_cases.conversations import ConversationUseCases
from tow_core.use_cases.extraction import ExtractionPolicy, ExtractionRuns, MemoryExtractionUseCases
from tow_core.use_cases.memory import MemoryReviewUseCases
from tow_core.use_cases.records import RecordUseCases

DOC, MEMORY = RecordType.DOC, RecordType.MEMORY
ON = ExtractionPolicy(True, timedelta(seconds=60))
SPACE = EmbeddingSpace(1, "fake-embedding", 64)


def propose(*operations, summary: str = "What the doc changes."):
    return step("", call(TOOL_NAME, summary=summary, operations=list(operations)))


class CosineIndex:
    """A semantic index over the world's readable records, ranked by the cosine of the fake embeddings."""

    def __init__(self, w: World) -> None:
        self.w = w

    def active_space(self):
        return SPACE

    def nearest_readable(self, principal_id, org_id, space, vector, text, query, k):
        rows = self.w.records._readable_rows(principal_id, org_id, query)
        scored = [(sum(a * b for a, b in zip(vector, bag_of_words_vector(f"{r.title}\n{r.body}".strip(), 64),
                                             strict=True)), r) for r in rows]
        scored.sort(key=lambda pair: (-pair[0], pair[1].id))
        return [SearchHit(summary_of(r), r.title, score) for score, r in scored[:k]]


class Extraction:
    def __init__(self, w: World, *steps, embeddings: bool = False, policy: ExtractionPolicy = ON) -> None:
        self.w = w
        self.runs, self.diffs = InMemoryAgentRuns(), InMemoryMemoryDiffStore(w.directory, w.clock)
        self.conversations = InMemoryConversations(w.directory)
        self.notifications = InMemoryNotifications(w.records, w.directory, diffs=self.diffs)
        self.transactions = fake_transactions(
            w.clock, rollback=(*w._tables, self.runs, self.diffs, self.conversations), directory=w.directory,
            records=w.records, history=w.keeping, agent_runs=self.runs, memory_diffs=self.diffs,
            conversations=self.conversations, semantic=CosineIndex(w), notifications=self.notifications)
        self.model = ScriptedReasoningModel(*steps)
        self.embedder = FakeEmbeddingModel() if embeddings else None
        self.handler = ExtractionRuns(self.transactions, self.model, self.embedder)
        self.records = RecordUseCases(self.transactions, None, policy)
        self.on_demand = MemoryExtractionUseCases(self.transactions, policy.enabled, policy)
        self.review = MemoryReviewUseCases(self.transactions)

    def queued(self):
        return [r for r in self.runs.list(whole_organisations={self.w.org}, own_in=(), owner_id=0, after_id=None,
                                          limit=50) if r.kind == EXTRACTION_RUN and r.status is AgentRunStatus.QUEUED]

    def run(self, run):
        result = self.handler(self.runs.get(run.id), lambda: None)
        self.runs._runs[run.id] = replace(self.runs.get(run.id), status=AgentRunStatus.COMPLETED)  # as the worker
        return result.output

    def save_doc(self, name: str, title: str, body: str, scope):
        scope_choice = (scope.kind.value, scope.ref_id if scope.kind.value != "organisation" else None)
        return self.records.create(self.w.credential(name), self.w.org, record_type=DOC, scope=scope_choice,
                                   title=title, body=body)

    def sent(self) -> str:
        return self.model.sent_text()


@pytest.fixture
def w() -> World:
    return World()


def memory(w: World, title: str, scope, body: str = "", name: str = "ada"):
    return w.create(name, MEMORY, title, scope, body=body, fields={"memory_type": "fact"})


def test_a_saved_doc_is_extracted_into_one_pending_diff_and_memory_changes_only_when_approved(w):
    known = memory(w, "Releases ship on Fridays", w.project("OPS"))
    x = Extraction(w, propose({"op": "create", "title": "Staging is refreshed nightly", "body": "From the plan.",
                               "memory_type": "fact", "importance": 4, "rationale": "the plan says so"}))
    doc = x.save_doc("bob", "Ops plan", "Staging is refreshed nightly. Releases ship on Fridays.", w.project("OPS"))
    [run] = x.queued()
    assert (run.owner_id, run.input) == (w.ids["bob"], {"source": "doc", "record_id": doc.id})

    output = x.run(run)
    [request], [context] = x.model.requests, x.model.contexts
    assert set(request.record_display_ids) == {str(doc.display_id), str(known.display_id)}
    assert (context.purpose, context.acting_user_id) == (EgressPurpose.EXTRACTION, w.ids["bob"])
    assert output["proposed"] == 1 and output["dropped"] == []
    diff = x.diffs.rows[output["diff_id"]]
    assert (diff.status, diff.author_id, diff.agent_run_id, diff.scope) == (
        DiffStatus.PENDING, w.ids["bob"], run.id, w.project("OPS"))
    assert (diff.source, diff.source_id) == (DiffSource.DOC, doc.display_id)
    assert "the plan says so" in diff.rationale and str(doc.display_id) in diff.rationale
    titles = lambda: sorted(r.title for r in w.records.rows.values() if r.type is MEMORY)  # noqa: E731
    assert titles() == ["Releases ship on Fridays"]  # nothing changed yet
    told = {name: [(n.memory_diff_id, n.text) for n in x.notifications.shown(
        w.ids[name], w.org, unread_only=False, before_id=None, limit=10) if n.kind is NotificationKind.REVIEW]
        for name in ("ada", "bob", "cy")}
    text = f"Bob proposed memory diff #{diff.id} (1 change) for your review"
    assert told == {"ada": [(diff.id, text)], "bob": [], "cy": [(diff.id, text)]}  # OPS's writers; not its author

    x.review.approve(w.credential("ada"), w.org, diff.id)
    created = next(r for r in w.records.rows.values() if r.title == "Staging is refreshed nightly")
    assert created.status == "active" and created.scope == w.project("OPS")
    assert str(doc.display_id) in created.fields["source_references"]
    assert (created.fields["proposed_by"], created.fields["approved_by"], created.fields["memory_diff_id"]) == (
        w.ids["bob"], w.ids["ada"], diff.id)


def test_review_provenance_cannot_be_written_directly(w):
    item = memory(w, "A fact", w.org_scope)
    with pytest.raises(InvalidInput) as refused:
        w.update("ada", item, fields={"approved_by": w.ids["ada"]})
    assert refused.value.field == "approved_by"


def test_a_stale_extraction_diff_is_refused_at_approval(w):
    item = memory(w, "Deploys need two approvals", w.project("OPS"))
    x = Extraction(w, propose({"op": "update", "display_id": str(item.display_id), "body": "Per the ops plan.",
                               "rationale": "detail"}))
    doc = x.save_doc("bob", "Ops plan", "Deploys need two approvals, per the ops plan.", w.project("OPS"))
    output = x.run(x.queued()[0])
    assert output["proposed"] == 1 and str(doc.display_id) in x.diffs.rows[output["diff_id"]].rationale
    w.update("ada", item, body="Edited meanwhile.")
    with pytest.raises(Conflict):
        x.review.approve(w.credential("ada"), w.org, output["diff_id"])
    assert w.now(item).body == "Edited meanwhile." and x.diffs.rows[output["diff_id"]].status is DiffStatus.PENDING


def test_duplicates_are_not_proposed_whether_the_model_or_the_text_check_flags_them(w):
    known = memory(w, "Releases ship on Fridays", w.project("OPS"))
    x = Extraction(w, propose(
        {"op": "create", "title": "We release on Fridays", "memory_type": "fact", "rationale": "restated",
         "duplicate_of": str(known.display_id)},
        {"op": "create", "title": "releases ship on fridays!", "memory_type": "fact", "rationale": "again"},
        {"op": "create", "title": "On-call rotates weekly", "memory_type": "fact", "rationale": "new"}))
    x.save_doc("bob", "Ops", "Releases ship on Fridays. On-call rotates weekly.", w.project("OPS"))
    output = x.run(x.queued()[0])
    assert output["proposed"] == 1
    reasons = [d["reason"] for d in output["dropped"]]
    assert reasons[0].startswith("duplicate: the model marked it") and str(known.display_id) in reasons[0]
    assert reasons[1] == f"duplicate: the same text as {known.display_id}"
    [created] = [op.title for op in x.diffs.rows[output["diff_id"]].operations]
    assert created == "On-call rotates weekly"


def test_a_near_duplicate_is_dropped_by_embedding_similarity(w):
    known = memory(w, "The release train leaves every Friday afternoon", w.project("OPS"))
    x = Extraction(w, propose({"op": "create", "title": "The release train leaves every Friday afternoon too",
                               "memory_type": "fact", "rationale": "restated"}), embeddings=True)
    x.save_doc("bob", "Ops", "The release train leaves every Friday afternoon.", w.project("OPS"))
    output = x.run(x.queued()[0])
    assert output["diff_id"] is None and output["proposed"] == 0
    [dropped] = output["dropped"]
    assert "embedding similarity" in dropped["reason"] and str(known.display_id) in dropped["reason"]
    assert "nothing new" in output["message"]
    # every embedding call of the run is ledgered as extraction, naming the doc whose text it carries
    assert {c.purpose for c in x.embedder.contexts} == {EgressPurpose.EXTRACTION}


def test_a_contradiction_becomes_a_supersession_and_the_old_fact_stays_in_history(w):
    old = memory(w, "Releases ship on Fridays", w.project("OPS"))
    x = Extraction(w, propose({"op": "supersede", "display_id": str(old.display_id),
                               "title": "Releases ship on Tuesdays", "memory_type": "decision",
                               "rationale": "the plan moved releases to Tuesday"}))
    x.save_doc("bob", "Ops plan v2", "From now on releases ship on Tuesdays.", w.project("OPS"))
    output = x.run(x.queued()[0])
    diff = x.diffs.rows[output["diff_id"]]
    assert [op.kind for op in diff.operations] == ["create", "supersede"]
    assert w.now(old).status == "active"  # until approved
    x.review.approve(w.credential("ada"), w.org, diff.id)
    new = next(r for r in w.records.rows.values() if r.title == "Releases ship on Tuesdays")
    kept = w.now(old)
    assert (kept.status, kept.fields["superseded_by"], kept.title) == (
        "superseded", str(new.display_id), "Releases ship on Fridays")
    assert kept.fields["approved_by"] == w.ids["ada"] and new.status == "active"


def test_a_doc_whose_author_lost_access_contributes_nothing(w):
    w.directory.put_grant(w.projects["SEC"], user_id=w.ids["bob"], group_id=None, role=ProjectRole.MEMBER)
    x = Extraction(w)  # a request would fail the test: the script is empty
    x.save_doc("bob", "Vault", "The vault code is 7-2-9-4.", w.project("SEC"))
    grant = next(g for g in w.directory.grants(w.projects["SEC"]) if g.user_id == w.ids["bob"])
    w.directory.delete_grant(grant.id)
    output = x.run(x.queued()[0])
    assert output["diff_id"] is None and "can no longer read" in output["message"]
    assert x.model.requests == [] and x.diffs.rows == {}


def test_restricted_memory_never_reaches_the_request_of_an_author_without_access(w):
    hidden = memory(w, "SEC holds the vault code 7-2-9-4", w.project("SEC"))
    x = Extraction(w, propose())
    x.save_doc("bob", "Notes", "Nothing much.", w.org_scope)
    output = x.run(x.queued()[0])
    assert "7-2-9-4" not in x.sent() and str(hidden.display_id) not in x.model.requests[0].record_display_ids
    assert output["diff_id"] is None


def conversation_with_answer(x: Extraction, w: World, answer: str, records: list[str], project_id=None):
    conversation = x.conversations.create(NewConversation(w.ids["bob"], w.org, project_id, "Chat"), at=w.clock())
    x.conversations.add_turn(conversation.id, NewTurn(TurnRole.USER, "What do we know?"), at=w.clock())
    turn = x.conversations.add_turn(conversation.id, NewTurn(
        TurnRole.ASSISTANT, answer, tool_activity=[{"round": 1, "tool": "get_record", "records": records}]),
        at=w.clock())
    return conversation, turn


def test_a_chat_answer_that_drew_on_a_record_its_owner_can_no_longer_read_sends_nothing(w):
    spec = w.create("ada", DOC, "App spec", w.project("APP"), body="The app signs in with passkeys.")
    x = Extraction(w)
    conversation, turn = conversation_with_answer(x, w, "It uses passkeys.", [str(spec.display_id)])
    from tow_core.use_cases.extraction import queue_for_chat
    with x.transactions.unattended() as work:
        run = queue_for_chat(work.stores, ON, owner_id=w.ids["bob"], org_id=w.org, project_id=None,
                             conversation_id=conversation.id, turn_id=turn.id, now=work.now)
    grant = next(g for g in w.directory.grants(w.projects["APP"]) if g.user_id == w.ids["bob"])
    w.directory.delete_grant(grant.id)
    output = x.run(run)
    assert x.model.requests == [] and output["diff_id"] is None and "can no longer read" in output["message"]


def test_a_chat_answer_drawing_on_a_project_record_is_proposed_no_wider_than_its_owner(w):
    spec = w.create("ada", DOC, "App spec", w.project("APP"), body="The app signs in with passkeys.")
    x = Extraction(w, propose({"op": "create", "title": "The app signs in with passkeys", "memory_type": "fact",
                               "rationale": "the answer says so"}))
    conversation, turn = conversation_with_answer(x, w, "It uses passkeys.", [str(spec.display_id)])
    from tow_core.use_cases.extraction import queue_for_chat
    with x.transactions.unattended() as work:
        run = queue_for_chat(work.stores, ON, owner_id=w.ids["bob"], org_id=w.org, project_id=None,
                             conversation_id=conversation.id, turn_id=turn.id, now=work.now)
    output = x.run(run)
    assert str(spec.display_id) in x.model.requests[0].record_display_ids
    diff = x.diffs.rows[output["diff_id"]]
    assert (diff.source, diff.scope) == (DiffSource.CHAT, w.private("bob"))  # APP content, not organisation-wide


def test_two_saves_queue_one_run_and_without_ai_none(w):
    x = Extraction(w)
    doc = x.save_doc("bob", "Plan", "First draft.", w.project("OPS"))
    x.records.update(w.credential("bob"), w.org, doc.display_id, version=w.now(doc).version, body="Second draft.")
    assert len(x.queued()) == 1
    x.records.update(w.credential("bob"), w.org, doc.display_id, version=w.now(doc).version,
                     fields={"tags": ["ops"]})  # no text change: nothing to extract
    assert len(x.queued()) == 1

    off = Extraction(w, policy=ExtractionPolicy(False))
    off.save_doc("bob", "Quiet", "Saved without AI.", w.project("OPS"))
    assert off.queued() == []
    with pytest.raises(AiNotConfigured):
        off.on_demand.extract(w.credential("bob"), w.org, doc.display_id)


def test_on_demand_extraction_needs_write_access_and_answers_the_run_still_queued(w):
    app_doc = w.create("ada", DOC, "App spec", w.project("APP"), body="Passkeys.")
    x = Extraction(w)
    with pytest.raises(AccessDenied):  # Bob only views APP
        x.on_demand.extract(w.credential("bob"), w.org, app_doc.display_id)
    doc = x.save_doc("bob", "Plan", "Draft.", w.project("OPS"))
    [queued] = x.queued()
    again = x.on_demand.extract(w.credential("bob"), w.org, doc.id)
    assert again.run.id == queued.id and again.content_visible
    by_ada = x.on_demand.extract(w.credential("ada"), w.org, doc.display_id)
    assert by_ada.run.owner_id == w.ids["bob"] and not by_ada.content_visible  # acts as the last editor


def test_the_second_reviewer_rule_refuses_approving_ones_own_diff_when_on(w):
    x = Extraction(w, propose({"op": "create", "title": "On-call rotates weekly", "memory_type": "fact",
                               "rationale": "r"}),
                   propose({"op": "create", "title": "Staging is refreshed nightly", "memory_type": "fact",
                            "rationale": "r"}))
    x.save_doc("ada", "Ops", "On-call rotates weekly.", w.project("OPS"))
    own = x.run(x.queued()[0])["diff_id"]
    organisations = OrganisationUseCases(x.transactions, None)
    assert x.review.approve(w.credential("ada"), w.org, own).summary.status is DiffStatus.APPROVED  # off: allowed

    organisations.update_organisation(w.credential("ada"), w.org, name=None, workflow_mode=None,
                                      require_second_reviewer=True)
    x.save_doc("ada", "Staging", "Staging is refreshed nightly.", w.project("OPS"))
    second = x.run(x.queued()[0])["diff_id"]
    with pytest.raises(AccessDenied) as refused:
        x.review.approve(w.credential("ada"), w.org, second)
    assert "second reviewer" in refused.value.message and "agent run" in refused.value.message
    approved = x.review.approve(w.credential("bob"), w.org, second)  # someone else may
    assert (approved.summary.status, approved.summary.reviewer_id) == (DiffStatus.APPROVED, w.ids["bob"])
    entries = [e for e in w.directory.audit_log if e.action.value == "organisation.setting_changed"]
    assert [(e.actor_id, dict(e.details)["new"]) for e in entries] == [(w.ids["ada"], True)]


def test_rejecting_ones_own_diff_stays_allowed_under_the_second_reviewer_rule(w):
    x = Extraction(w, propose({"op": "create", "title": "A fact", "memory_type": "fact", "rationale": "r"}))
    OrganisationUseCases(x.transactions, None).update_organisation(
        w.credential("ada"), w.org, name=None, workflow_mode=None, require_second_reviewer=True)
    x.save_doc("ada", "Doc", "A fact.", w.project("OPS"))
    diff_id = x.run(x.queued()[0])["diff_id"]
    assert x.review.reject(w.credential("ada"), w.org, diff_id).summary.status is DiffStatus.REJECTED


def test_an_answer_without_the_tool_call_or_with_broken_operations_proposes_nothing_and_says_why(w):
    x = Extraction(w, step("I found nothing."),
                   propose({"op": "update", "display_id": "MEM-999", "body": "x", "rationale": "r"},
                           {"op": "create", "title": "", "memory_type": "fact", "rationale": "r"},
                           {"op": "explode", "rationale": "r"}))
    x.save_doc("bob", "One", "Text one.", w.project("OPS"))
    assert "did not call" in x.run(x.queued()[0])["message"]
    x.save_doc("bob", "Two", "Text two.", w.project("OPS"))
    output = x.run(x.queued()[0])
    assert output["diff_id"] is None and len(output["dropped"]) == 3
    assert "not one of the memory items" in output["dropped"][0]["reason"]
    assert json.dumps(output)  # the run's output is JSON


def ask_and_answer(x: Extraction, w: World, conversation, chat_policy: ExtractionPolicy = ON):
    """Bob asks in ``conversation``; the chat run answers (a scripted model of its own) with ``chat_policy``."""
    chat_model = ScriptedReasoningModel(step("Releases ship on Fridays."))
    chat = ChatRuns(x.transactions, ChatAssistant(chat_model, UnconfiguredWebSearch(), None, 6),
                    extraction=chat_policy)
    asked = ChatUseCases(x.transactions, True).ask(w.credential("bob"), w.org, conversation.id, "When do we ship?")
    return chat(x.runs.get(asked.run.id), lambda: None).output["answer_turn_id"]


def test_a_saved_chat_answer_queues_its_extraction_unless_the_conversation_turned_it_off(w):
    x = Extraction(w, propose({"op": "create", "title": "Releases ship on Fridays", "memory_type": "fact",
                               "rationale": "the answer says so"}))
    conversations = ConversationUseCases(x.transactions, True)
    bob = w.credential("bob")
    talk = conversations.start(bob, w.org, None, "Releases")
    assert talk.memory_extraction  # on unless turned off
    turn_id = ask_and_answer(x, w, talk)
    [run] = x.queued()
    assert (run.owner_id, run.input) == (w.ids["bob"], {"source": "chat", "conversation_id": talk.id,
                                                        "turn_id": turn_id})
    output = x.run(run)
    diff = x.diffs.rows[output["diff_id"]]
    assert (diff.source, diff.source_id, diff.scope, diff.status) == (DiffSource.CHAT, None, Scope.organisation(w.org),
                                                                      DiffStatus.PENDING)
    assert "Releases ship on Fridays" in x.sent() and "When do we ship?" in x.sent()

    quiet = conversations.update(bob, w.org, conversations.start(bob, w.org, None, "Quiet").id, title=None,
                                 memory_extraction=False)
    ask_and_answer(x, w, quiet)
    assert x.queued() == []  # turned off for this conversation
    ask_and_answer(x, w, talk, chat_policy=replace(ON, automatic=False))
    assert x.queued() == []  # ai.auto_extraction off: on demand only


def test_with_automatic_extraction_off_saves_queue_nothing_but_extract_memory_still_does(w):
    x = Extraction(w, policy=replace(ON, automatic=False))
    doc = x.save_doc("bob", "Plan", "Staging is refreshed nightly.", w.project("OPS"))
    assert x.queued() == []
    asked = x.on_demand.extract(w.credential("bob"), w.org, doc.display_id)
    assert [r.id for r in x.queued()] == [asked.run.id] and asked.run.owner_id == w.ids["bob"]


def test_a_save_by_someone_else_while_a_run_is_queued_hands_the_run_to_the_new_last_editor(w):
    """The run acts as the doc's last editor: a queued run of the previous saver's is cancelled (it never
    started) and one of the new saver's takes its place — still one queued run per doc."""
    x = Extraction(w)
    doc = x.save_doc("bob", "Plan", "Draft.", w.project("OPS"))
    [first] = x.queued()
    x.records.update(w.credential("ada"), w.org, doc.display_id, version=w.now(doc).version, body="Ada's draft.")
    [queued] = x.queued()
    assert queued.owner_id == w.ids["ada"] and x.runs.get(first.id).status is AgentRunStatus.CANCELLED


def test_a_chat_answer_in_a_project_its_owner_only_views_is_proposed_in_their_private_scope(w):
    x = Extraction(w, propose({"op": "create", "title": "The app ships monthly", "memory_type": "fact",
                               "rationale": "the answer says so"}))
    conversation, turn = conversation_with_answer(x, w, "It ships monthly.", [], project_id=w.projects["APP"])
    from tow_core.use_cases.extraction import queue_for_chat
    with x.transactions.unattended() as work:
        run = queue_for_chat(work.stores, ON, owner_id=w.ids["bob"], org_id=w.org, project_id=w.projects["APP"],
                             conversation_id=conversation.id, turn_id=turn.id, now=work.now)
    diff = x.diffs.rows[x.run(run)["diff_id"]]
    assert diff.scope == w.private("bob")  # Bob views APP: a diff there would be one he cannot propose


def test_a_doc_whose_author_can_no_longer_write_its_scope_sends_nothing(w):
    w.directory.put_grant(w.projects["SEC"], user_id=w.ids["bob"], group_id=None, role=ProjectRole.MEMBER)
    x = Extraction(w)
    x.save_doc("bob", "Vault", "The vault is in room 4.", w.project("SEC"))
    w.directory.put_grant(w.projects["SEC"], user_id=w.ids["bob"], group_id=None, role=ProjectRole.VIEWER)
    output = x.run(x.queued()[0])
    assert x.model.requests == [] and output["diff_id"] is None and "can no longer write" in output["message"]


def test_the_scope_s_memory_is_found_behind_a_page_of_newer_items_elsewhere(w):
    held = memory(w, "Releases ship on Fridays", Scope.organisation(w.org))
    for i in range(210):  # newer, readable by Ada, but in her private scope: not the doc's
        memory(w, f"Private note {i}", w.private("ada"))
    x = Extraction(w, propose())
    doc = x.save_doc("ada", "Plan", "Releases ship on Fridays.", Scope.organisation(w.org))
    x.run(x.queued()[0])
    assert x.model.requests[0].record_display_ids == (str(doc.display_id), str(held.display_id))


def test_the_second_reviewer_rule_covers_a_diff_proposed_by_hand_and_shows_it_awaiting_in_the_inbox(w):
    from tow_core.memory_diffs import CreateItem
    from tow_core.use_cases.inbox import InboxUseCases
    x = Extraction(w)
    OrganisationUseCases(x.transactions, None).update_organisation(
        w.credential("ada"), w.org, name=None, workflow_mode=None, require_second_reviewer=True)
    proposed = x.review.propose(w.credential("bob"), w.org, "project", w.projects["OPS"],
                                [CreateItem("Staging is refreshed nightly", "", {"memory_type": "fact"})])
    with pytest.raises(AccessDenied) as refused:
        x.review.approve(w.credential("bob"), w.org, proposed.summary.id)
    assert "agent run" not in refused.value.message  # proposed by hand, not through a run
    inbox = InboxUseCases(x.transactions)
    assert inbox.inbox(w.credential("bob"), w.org).awaiting_second_reviewer == {proposed.summary.id}
    assert inbox.inbox(w.credential("ada"), w.org).awaiting_second_reviewer == frozenset()
    assert x.review.approve(w.credential("ada"), w.org, proposed.summary.id).summary.status is DiffStatus.APPROVED


def test_after_a_run_a_save_within_the_debounce_window_queues_nothing_and_one_after_it_queues_again(w):
    hour = Extraction(w, propose(), propose(), policy=replace(ON, debounce=timedelta(hours=1)))
    doc = hour.save_doc("bob", "Plan", "Draft.", w.project("OPS"))
    hour.run(hour.queued()[0])
    hour.records.update(w.credential("bob"), w.org, doc.display_id, version=w.now(doc).version, body="Again.")
    assert hour.queued() == []  # one run per doc per hour
    none = Extraction(w, propose(), propose(), policy=replace(ON, debounce=timedelta(0)))
    doc = none.save_doc("bob", "Plan", "Draft.", w.project("OPS"))
    none.run(none.queued()[0])
    none.records.update(w.credential("bob"), w.org, doc.display_id, version=w.now(doc).version, body="Again.")
    assert len(none.queued()) == 1  # no window: every save that finds no run still queued


def test_operations_over_the_limit_are_listed_as_dropped_not_silently_lost(w):
    from tow_core.extraction import MAX_OPERATIONS
    x = Extraction(w, propose(*({"op": "create", "title": f"Fact {i}", "memory_type": "fact", "rationale": "r"}
                                for i in range(MAX_OPERATIONS + 2))))
    x.save_doc("bob", "Facts", "Many facts.", w.project("OPS"))
    output = x.run(x.queued()[0])
    assert output["proposed"] == MAX_OPERATIONS
    assert [d["operation"] for d in output["dropped"]] == [MAX_OPERATIONS, MAX_OPERATIONS + 1]
