"""Agent runs' rules (tow_core.agent_runs) and the use case object the API calls
(tow_core.use_cases.agent_runs.AgentRunUseCases) over the in-memory fakes: which moves a run may make,
what a run's input may be, and who sees what — the owner sees their run whole, organisation owners and
admins see every run's metadata but never its input, output or error text, other members and outsiders
see nothing (NotFound) — and cancelling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fake_agent_runs import InMemoryAgentRuns
from tests.fake_unit_of_work import fake_transactions, signed_in
from tests.fakes import InMemoryDirectory
from tow_core.access import OrgRole
from tow_core.agent_runs import (
    MAX_INPUT_BYTES,
    MOVES,
    AgentRunResult,
    AgentRunStatus,
    TokenUsage,
    can_move,
    new_run,
    purge_finished_runs,
    require_move,
)
from tow_core.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from tow_core.identity import WorkflowMode
from tow_core.jobs import RetryPolicy
from tow_core.use_cases.agent_runs import AgentRunUseCases

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(lease_seconds=30, max_attempts=3)
S = AgentRunStatus

# --- the state rule ----------------------------------------------------------------------------------------


def test_a_run_moves_queued_running_then_ends_once():
    assert can_move(S.QUEUED, S.RUNNING) and can_move(S.QUEUED, S.CANCELLED)
    assert not can_move(S.QUEUED, S.COMPLETED) and not can_move(S.QUEUED, S.FAILED)  # never finished unrun
    assert {s for s in S if can_move(S.RUNNING, s)} == {S.RUNNING, S.COMPLETED, S.FAILED, S.CANCELLED}
    assert not can_move(S.RUNNING, S.QUEUED)  # an expired lease is re-claimed from running
    for finished in (S.COMPLETED, S.FAILED, S.CANCELLED):
        assert finished.finished and MOVES[finished] == frozenset()
    with pytest.raises(Conflict, match="completed cannot become cancelled"):
        require_move(S.COMPLETED, S.CANCELLED)


def test_a_new_run_needs_a_short_kind_and_a_json_object_input():
    run = new_run(" chat ", owner_id=1, organisation_id=2, project_id=None, input={"q": "hi", "n": [1, 2.5]})
    assert (run.kind, run.input) == ("chat", {"q": "hi", "n": [1, 2.5]})
    with pytest.raises(InvalidInput) as bad_kind:
        new_run("", owner_id=1, organisation_id=2, project_id=None, input={})
    assert bad_kind.value.field == "kind"
    for bad in ({"when": NOW}, {"x": float("nan")}, ["not", "an", "object"]):
        with pytest.raises(InvalidInput) as bad_input:
            new_run("chat", owner_id=1, organisation_id=2, project_id=None, input=bad)
        assert bad_input.value.field == "input"
    with pytest.raises(InvalidInput, match="larger than"):
        new_run("chat", owner_id=1, organisation_id=2, project_id=None, input={"q": "x" * MAX_INPUT_BYTES})


# --- the use case object -----------------------------------------------------------------------------------


class World:
    """Acme: Ada owns it, Abe is an admin, Mia and Max are members; Oscar is in Other only."""

    def __init__(self) -> None:
        self.now = NOW
        d = self.directory = InMemoryDirectory(lambda: self.now)
        self.ids = {n: d.add_user(f"{n}@example.com", n.title(), None, server_admin=False).id
                    for n in ("ada", "abe", "mia", "max", "oscar")}
        self.org = d.add_organisation("Acme", WorkflowMode.ORGANIZATION).id
        self.other = d.add_organisation("Other", WorkflowMode.FOUNDER).id
        for name, role in (("ada", OrgRole.OWNER), ("abe", OrgRole.ADMIN), ("mia", OrgRole.MEMBER),
                           ("max", OrgRole.MEMBER)):
            d.set_membership(self.org, self.ids[name], role)
        d.set_membership(self.other, self.ids["oscar"], OrgRole.OWNER)
        self.runs = InMemoryAgentRuns()
        self.use_cases = AgentRunUseCases(fake_transactions(lambda: self.now, rollback=(self.runs,),
                                                            directory=d, agent_runs=self.runs))

    def credential(self, name: str):
        return signed_in(self.directory, self.ids[name], self.now)

    def queue(self, owner: str = "mia", org: int | None = None, **input_):
        return self.runs.create(new_run("chat", owner_id=self.ids[owner], organisation_id=org or self.org,
                                        project_id=None, input=input_ or {"question": "our pen test findings?"}),
                                now=self.now)

    def completed(self, owner: str = "mia"):
        run = self.queue(owner)
        claimed = self.runs.claim(now=self.now, policy=POLICY)
        self.runs.finish_completed(claimed, AgentRunResult({"answer": "three criticals"}, TokenUsage(900, 80)),
                                   now=self.now + timedelta(seconds=4))
        return run


@pytest.fixture
def w() -> World:
    return World()


def test_the_owner_sees_their_run_whole(w):
    run = w.completed("mia")
    shown = w.use_cases.get(w.credential("mia"), w.org, run.id)
    assert shown.content_visible
    assert shown.run.input == {"question": "our pen test findings?"}
    assert shown.run.output == {"answer": "three criticals"}
    assert (shown.run.status, shown.run.usage, shown.run.finished_at) == (
        S.COMPLETED, TokenUsage(900, 80), NOW + timedelta(seconds=4))


@pytest.mark.parametrize("admin", ["ada", "abe"])
def test_owners_and_admins_see_metadata_but_never_the_conversation(w, admin):
    run = w.completed("mia")
    failed = w.queue("mia")
    w.runs.finish_failed(w.runs.claim(now=w.now, policy=POLICY), "handler_failed",
                         "the model quoted: our pen test findings", now=w.now)
    for shown in (w.use_cases.get(w.credential(admin), w.org, run.id),
                  w.use_cases.get(w.credential(admin), w.org, failed.id)):
        assert not shown.content_visible
        assert (shown.run.input, shown.run.output, shown.run.error) == (None, None, None)
    shown = w.use_cases.get(w.credential(admin), w.org, failed.id)
    assert (shown.run.kind, shown.run.status, shown.run.error_code, shown.run.owner_id) == (
        "chat", S.FAILED, "handler_failed", w.ids["mia"])
    listed = w.use_cases.list(w.credential(admin), w.org).items
    assert {r.run.id for r in listed} == {run.id, failed.id}
    assert all(r.run.input is None and r.run.output is None and r.run.error is None for r in listed)


def test_an_admins_own_runs_are_shown_to_them_whole(w):
    own = w.completed("abe")
    w.completed("mia")
    listed = {r.run.id: r for r in w.use_cases.list(w.credential("abe"), w.org).items}
    assert listed[own.id].content_visible and listed[own.id].run.output == {"answer": "three criticals"}


def test_a_member_lists_and_sees_only_their_own_runs(w):
    mine, theirs = w.queue("mia"), w.queue("max")
    assert [r.run.id for r in w.use_cases.list(w.credential("mia"), w.org).items] == [mine.id]
    with pytest.raises(NotFound):
        w.use_cases.get(w.credential("mia"), w.org, theirs.id)
    with pytest.raises(NotFound):
        w.use_cases.cancel(w.credential("mia"), w.org, theirs.id)
    assert w.runs.get(theirs.id).status is S.QUEUED


def test_an_outsider_finds_neither_the_organisation_nor_its_runs(w):
    run = w.queue("mia")
    oscar = w.credential("oscar")
    for call in (lambda: w.use_cases.list(oscar, w.org), lambda: w.use_cases.get(oscar, w.org, run.id),
                 lambda: w.use_cases.cancel(oscar, w.org, run.id)):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(NotFound):  # a run is only found under its own organisation
        w.use_cases.get(oscar, w.other, run.id)


def test_a_revoked_session_is_refused_at_once(w):
    run = w.queue("mia")
    mia = w.credential("mia")
    w.directory.revoke_session(mia.token_hash, w.now)
    with pytest.raises(NotAuthenticated):
        w.use_cases.get(mia, w.org, run.id)


def test_a_member_removed_from_the_organisation_no_longer_sees_their_runs(w):
    run = w.queue("mia")
    w.directory.remove_membership(w.org, w.ids["mia"])
    with pytest.raises(NotFound):
        w.use_cases.get(w.credential("mia"), w.org, run.id)


def test_listing_pages_newest_first_with_a_cursor(w):
    runs = [w.queue("mia") for _ in range(5)]
    mia = w.credential("mia")
    first = w.use_cases.list(mia, w.org, limit=2)
    assert [r.run.id for r in first.items] == [runs[4].id, runs[3].id] and first.next_cursor
    second = w.use_cases.list(mia, w.org, cursor=first.next_cursor, limit=2)
    third = w.use_cases.list(mia, w.org, cursor=second.next_cursor, limit=2)
    assert [r.run.id for r in second.items + third.items] == [runs[2].id, runs[1].id, runs[0].id]
    assert third.next_cursor is None
    with pytest.raises(InvalidInput) as bad:
        w.use_cases.list(mia, w.org, cursor="DROP TABLE")
    assert bad.value.field == "cursor"


@pytest.mark.parametrize("who", ["mia", "ada", "abe"])
def test_the_owner_or_an_admin_cancels_a_queued_run_at_once(w, who):
    run = w.queue("mia")
    cancelled = w.use_cases.cancel(w.credential(who), w.org, run.id)
    assert (cancelled.run.status, cancelled.run.finished_at) == (S.CANCELLED, NOW)
    assert cancelled.content_visible is (who == "mia")
    assert w.runs.claim(now=w.now, policy=POLICY) is None


def test_cancelling_a_running_run_asks_its_worker_and_a_finished_one_conflicts(w):
    run = w.queue("mia")
    w.runs.claim(now=w.now, policy=POLICY)
    requested = w.use_cases.cancel(w.credential("mia"), w.org, run.id)
    assert (requested.run.status, requested.run.cancel_requested) == (S.RUNNING, True)
    done = w.completed("mia")
    with pytest.raises(Conflict):
        w.use_cases.cancel(w.credential("ada"), w.org, done.id)
    assert w.runs.get(done.id).status is S.COMPLETED


def test_housekeeping_purges_runs_finished_before_the_retention_and_zero_keeps_every_one():
    runs, start = InMemoryAgentRuns(), datetime(2026, 1, 1, tzinfo=UTC)
    policy = RetryPolicy(lease_seconds=60, max_attempts=3)
    for _ in range(2):
        runs.create(new_run("chat", owner_id=1, organisation_id=1, project_id=None, input={}), now=start)
    finished = runs.claim(now=start, policy=policy)
    runs.finish_completed(finished, AgentRunResult({}), now=start)
    runs.claim(now=start, policy=policy)  # still running, however old
    later = start + timedelta(days=31)
    assert purge_finished_runs(runs, now=later, retention_days=0) == 0
    assert purge_finished_runs(runs, now=start + timedelta(days=29), retention_days=30) == 0
    assert purge_finished_runs(runs, now=later, retention_days=30) == 1
    assert runs.get(finished.id) is None and runs.get(finished.id + 1) is not None
