"""Snapshot generation over the fakes (tow_core.snapshots, tow_core.use_cases.snapshots): the scope rule, the
citations checked as the requester reads when the draft is saved, the sources pinned to the version sent, and
"sources changed since". World: tests/unit/records_world.py (Bob is in group Eng, reads APP as a viewer and
OPS, not SEC; Cy reads OPS only)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fake_agent_runs import InMemoryAgentRuns
from tests.fake_reasoning import ScriptedReasoningModel, step
from tests.fake_snapshot_sources import InMemorySnapshotSources
from tests.fake_unit_of_work import fake_transactions
from tests.unit.records_world import World
from tow_core import knowledge
from tow_core.access import Scope
from tow_core.agent_runs import AgentRunStatus
from tow_core.ai import EgressPurpose, ReasoningRequest
from tow_core.errors import AiNotConfigured, DependencyUnavailable, InvalidInput, NotFound
from tow_core.jobs import RetryPolicy
from tow_core.knowledge import RecordChange
from tow_core.records import DisplayId, RecordType
from tow_core.snapshots import SNAPSHOT_RUN, narrowest_scope, snapshot_scope
from tow_core.use_cases.snapshots import SnapshotRuns, SnapshotUseCases, fail_abandoned_generations

DOC, MEMORY, SNAPSHOT = RecordType.DOC, RecordType.MEMORY, RecordType.SNAPSHOT
SECRET = "the SEC launch code is 7-2-9-4"


@pytest.fixture
def w() -> World:
    return World()


# --- the scope rule ----------------------------------------------------------------------------------

ORG, REQUESTER = 1, 10
WHOLE = Scope.organisation(ORG)
P, Q = Scope.project(ORG, 1), Scope.project(ORG, 2)
G, H = Scope.group(ORG, 1), Scope.group(ORG, 2)
MINE, THEIRS = Scope.private(ORG, REQUESTER), Scope.private(ORG, 11)


@pytest.mark.parametrize(("scopes", "expected"), [
    pytest.param([], WHOLE, id="nothing-cited-organisation"),
    pytest.param([WHOLE, WHOLE], WHOLE, id="all-organisation"),
    pytest.param([WHOLE, P], P, id="project-narrower-than-organisation"),
    pytest.param([WHOLE, G, G], G, id="group-narrower-than-organisation"),
    pytest.param([P, P, WHOLE], P, id="one-project"),
    pytest.param([MINE, WHOLE], MINE, id="private-is-narrowest"),
    pytest.param([P, MINE], MINE, id="project-and-private-private"),
    pytest.param([P, Q], MINE, id="two-projects-incomparable-private"),
    pytest.param([P, G], MINE, id="project-and-group-incomparable-private"),
    pytest.param([G, H], MINE, id="two-groups-incomparable-private"),
    pytest.param([G, MINE], MINE, id="group-and-private-private"),
    pytest.param([THEIRS, P], MINE, id="someone-elses-private-never-widens"),
])
def test_the_narrowest_scope_is_the_meet_and_incomparable_scopes_make_it_private(scopes, expected):
    assert narrowest_scope(REQUESTER, ORG, scopes) == expected


def test_a_scope_the_requester_cannot_write_becomes_private_to_them(w):
    bob = w.ws("bob")  # a viewer of APP
    assert snapshot_scope(bob, w.org_scope, [w.project("APP")]) == w.private("bob")
    assert snapshot_scope(bob, w.org_scope, [w.project("OPS")]) == w.project("OPS")
    assert snapshot_scope(bob, w.org_scope, [w.group()]) == w.group()


# --- generation ------------------------------------------------------------------------------------------


class Generation:
    def __init__(self, w: World, *steps, ai_configured: bool = True) -> None:
        self.w, self.runs = w, InMemoryAgentRuns()
        self.sources = InMemorySnapshotSources(w.records, self.runs)
        self.transactions = fake_transactions(
            w.clock, rollback=(w.records, w.directory, self.runs), directory=w.directory, records=w.records,
            history=w.keeping, agent_runs=self.runs, snapshot_sources=self.sources)
        self.use_cases = SnapshotUseCases(self.transactions, ai_configured)
        self.model = ScriptedReasoningModel(*steps)
        self.handler = SnapshotRuns(self.transactions, self.model)

    def generate(self, name: str, snapshot_type: str = "weekly_review", *, title: str | None = None,
                 project: str | None = None):
        return self.use_cases.generate(self.w.credential(name), self.w.org, snapshot_type=snapshot_type,
                                       title=title, project_key=project)

    def run(self, started):
        return self.handler(self.runs.get(started.run.id), lambda: None)

    def provenance(self, name: str, snapshot):
        return self.use_cases.provenance(self.w.credential(name), self.w.org, snapshot.display_id)[1]


def sent_ids(request: ReasoningRequest) -> set[str]:
    return set(request.record_display_ids)


def test_a_draft_is_written_from_what_the_requester_reads_and_keeps_only_verified_citations(w):
    plan = w.create("ada", DOC, "Release plan", w.project("OPS"), body="We ship every Friday after the review.")
    secret = w.create("ada", DOC, "Launch", w.project("SEC"), body=SECRET)
    fact = w.create("ada", MEMORY, "Fridays are release days", w.org_scope, fields={"memory_type": "fact"})
    plan_id, sec_id, fact_id = str(plan.display_id), str(secret.display_id), str(fact.display_id)
    g = Generation(w, step(f'## Releases\n- We ship on Fridays [{plan_id} "ship every Friday"] [{fact_id}].\n'
                           f'- Launch [{sec_id}] and [{plan_id} "we never ship"].'))

    started = g.generate("bob", title="Week 9")
    assert started.run.kind == SNAPSHOT_RUN and started.run.status is AgentRunStatus.QUEUED
    assert started.snapshot.status == "generating" and started.snapshot.scope == w.private("bob")
    assert started.snapshot.fields["generated_by"] == f"agent_run:{started.run.id}"

    result = g.run(started)
    snapshot = w.records.rows[started.snapshot.id]
    assert snapshot.status == "pending_review" and snapshot.title == "Week 9"
    assert snapshot.scope == w.project("OPS")  # the narrowest of OPS and the organisation
    assert sec_id not in snapshot.body and "we never ship" not in snapshot.body and plan_id in snapshot.body
    assert sorted((d["display_id"], d["reason"]) for d in result.output["dropped_citations"]) == sorted(
        [(sec_id, "not_sent"), (plan_id, "quote_not_found")])
    assert {(p.record_id, p.version) for p in g.sources.pinned(w.org, snapshot.id)} == {
        (plan.id, plan.version), (fact.id, fact.version)}

    (request,), (context,) = g.model.requests, g.model.contexts
    assert SECRET not in g.model.sent_text() and sec_id not in sent_ids(request)
    assert {plan_id, fact_id} <= sent_ids(request)
    assert context.purpose is EgressPurpose.SNAPSHOT and context.acting_user_id == w.ids["bob"]
    assert all(did in g.model.sent_text() for did in request.record_display_ids)  # names exactly what it carries
    assert result.output["records_sent"] == len(request.record_display_ids)


def test_citing_a_private_doc_makes_the_snapshot_private_and_two_projects_too(w):
    mine = w.create("bob", DOC, "My notes", w.private("bob"), body="Hiring two engineers in March.")
    ops = w.create("ada", DOC, "Ops", w.project("OPS"), body="On-call rota changes weekly.")
    app = w.create("ada", DOC, "App", w.project("APP"), body="The app ships 2.0 soon.")
    g = Generation(w, step(f"- Hiring [{mine.display_id}]"), step(f"- Rota [{ops.display_id}]\n- 2.0 [{app.display_id}]"))
    first, second = g.generate("bob"), g.generate("bob")
    g.run(first)
    g.run(second)
    assert w.records.rows[first.snapshot.id].scope == w.private("bob")
    assert w.records.rows[second.snapshot.id].scope == w.private("bob")  # OPS and APP cannot be compared


def test_a_project_snapshot_reads_only_that_project_and_a_viewer_gets_it_privately(w):
    app = w.create("ada", DOC, "App", w.project("APP"), body="The app ships 2.0 soon.")
    ops = w.create("ada", DOC, "Ops", w.project("OPS"), body="On-call rota.")
    g = Generation(w, step(f"- 2.0 [{app.display_id}]"))
    started = g.generate("bob", project="APP")
    g.run(started)
    assert sent_ids(g.model.requests[0]) == {str(app.display_id)} and str(ops.display_id) not in g.model.sent_text()
    assert w.records.rows[started.snapshot.id].scope == w.private("bob")  # a viewer cannot write APP
    with pytest.raises(NotFound):
        g.generate("cy", project="SEC")


def test_a_citation_the_requester_lost_access_to_before_the_save_is_dropped(w):
    eng = w.create("ada", DOC, "Eng plan", w.group(), body="Migrate the database in April.")
    eng_id = str(eng.display_id)

    def revoke_then_answer(request):
        w.directory.remove_group_member(w.eng, w.ids["bob"])
        return step(f'- Migration [{eng_id} "Migrate the database"]')

    g = Generation(w, revoke_then_answer)
    started = g.generate("bob")
    result = g.run(started)
    snapshot = w.records.rows[started.snapshot.id]
    assert eng_id in sent_ids(g.model.requests[0])
    assert [d["reason"] for d in result.output["dropped_citations"]] == ["not_readable"]
    assert eng_id not in snapshot.body and g.sources.pinned(w.org, snapshot.id) == []
    assert snapshot.scope == w.org_scope and snapshot.status == "pending_review"


def test_sources_changed_since_names_readable_changes_and_counts_the_others(w):
    plan = w.create("ada", DOC, "Plan", w.org_scope, body="Ship on Fridays.")
    risk = w.create("ada", DOC, "Risk", w.org_scope, body="Supplier may fold.")
    g = Generation(w, step(f"- Fridays [{plan.display_id}]\n- Supplier [{risk.display_id}]"))
    started = g.generate("bob")
    g.run(started)
    snapshot = w.records.rows[started.snapshot.id]
    assert snapshot.scope == w.org_scope
    unchanged = g.provenance("cy", snapshot)
    assert unchanged.changed == () and unchanged.changed_count == 0 and len(unchanged.sources) == 2

    w.update("ada", plan, body="Ship on Thursdays.")
    w.update("ada", risk, scope=w.private("ada"))  # now Ada's alone, and changed
    seen = g.provenance("cy", snapshot)
    assert seen.changed == (str(plan.display_id),)
    assert seen.unreadable == 1 and seen.changed_unreadable == 1 and seen.changed_count == 2
    assert str(risk.display_id) not in repr(seen.sources)
    assert seen.run is None  # a plain member sees nothing of someone else's run
    assert g.provenance("bob", snapshot).run_content_visible


def test_without_ai_nothing_is_saved_and_bad_input_is_refused_by_field(w):
    g = Generation(w, ai_configured=False)
    with pytest.raises(AiNotConfigured):
        g.generate("bob")
    assert not any(r.type is SNAPSHOT for r in w.records.rows.values()) and g.runs.get(1) is None
    g = Generation(w)
    with pytest.raises(InvalidInput) as refused:
        g.generate("bob", "monthly_gossip")
    assert refused.value.field == "snapshot_type"
    with pytest.raises(NotFound):
        g.generate("oscar")


def test_a_failed_generation_leaves_a_failed_private_snapshot_with_the_reason(w):
    def outage(request):
        raise DependencyUnavailable("the reasoning provider did not answer", retry_after_seconds=30)

    g = Generation(w, outage)
    started = g.generate("bob")
    with pytest.raises(DependencyUnavailable):
        g.run(started)
    snapshot = w.records.rows[started.snapshot.id]
    assert snapshot.status == "failed" and snapshot.scope == w.private("bob")
    assert "did not answer" in snapshot.body


def test_a_snapshot_whose_run_died_or_was_cancelled_is_marked_failed_by_housekeeping(w):
    """No handler runs when a worker crashed on every attempt or the run was cancelled while queued: the
    housekeeping sweep fails the snapshot with the run's reason, so it does not say "generating" for ever."""
    g = Generation(w)
    crashed, cancelled, waiting = g.generate("bob", title="A"), g.generate("bob", title="B"), g.generate("bob")
    policy = RetryPolicy(lease_seconds=30, max_attempts=1)
    assert g.runs.claim(now=w.clock(), policy=policy).id == crashed.run.id  # and its worker dies
    g.runs.request_cancel(cancelled.run.id, now=w.clock())
    assert fail_abandoned_generations(g.transactions) == 1  # the cancelled one; the crashed one still has a lease
    assert w.records.rows[crashed.snapshot.id].status == "generating"
    later = w.clock() + timedelta(minutes=1)
    assert g.runs.claim(now=later, policy=policy).id == waiting.run.id  # queued first
    assert g.runs.claim(now=later, policy=policy) is None  # the crashed one's lease expired: it fails
    assert fail_abandoned_generations(g.transactions) == 1
    assert fail_abandoned_generations(g.transactions) == 0  # once
    for started, reason in ((crashed, "lease expired"), (cancelled, "cancelled")):
        snapshot = w.records.rows[started.snapshot.id]
        assert snapshot.status == "failed" and reason in snapshot.body and snapshot.scope == w.private("bob")
    assert w.records.rows[waiting.snapshot.id].status == "generating"  # its run was claimed and is running


def test_a_generated_snapshot_is_edited_and_activated_as_any_other(w):
    plan = w.create("ada", DOC, "Plan", w.org_scope, body="Ship on Fridays.")
    g = Generation(w, step(f"- Fridays [{plan.display_id}]"))
    started = g.generate("bob", "current_company_state")
    g.run(started)
    snapshot = w.records.rows[started.snapshot.id]
    edited = w.update("bob", snapshot, body=snapshot.body + "\n- Reviewed by Bob.")
    active = w.update("bob", edited, status="active")
    assert active.status == "active" and "Reviewed by Bob" in active.body
    with pytest.raises(InvalidInput):
        w.do("bob", lambda ws: knowledge.update_record(ws, DisplayId.parse(str(snapshot.display_id)),
                                                       expected_version=active.version,
                                                       change=RecordChange(body="rewritten")))
