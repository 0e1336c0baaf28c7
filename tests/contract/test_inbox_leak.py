"""Differential leak test of the inbox (issue 14 item 3) on a real PostgreSQL, over the random worlds of
test_visibility_differential and the records, memory diffs and conversations of test_more_leak_paths.

On top of those rows each world gets snapshots (pending_review or active) in random scopes, answers in the
conversations carrying pending actions (applied or not) and agent runs of random owners, organisations,
projects and statuses (failed ones dismissed or not). Then for every member and organisation, over all
projects and over each project they read, ``tow_core.inbox.gather`` and ``count`` through the Postgres stores
must list — and count — exactly what the pure policy says waits for them: pending diffs and pending_review
snapshots whose scope they may read *and write* (``can_read_scope`` / ``can_write_scope``), the unapplied
actions of their own conversations and their own failed, undismissed runs, each while they read its project.
Nothing more (a leak) and nothing less. Random revocations follow and everything is checked again on the very
next statements. ``STATS`` counts worlds, (user, scope, kind) checks and disagreements.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.test_more_leak_paths import EPOCH, Facts, all_scopes
from tests.contract.test_visibility_differential import REVOCATIONS, World, load, revoke, world_engine, worlds
from tests.suite_figures import say
from tow_adapters.postgres.agent_runs import PgAgentRuns
from tow_adapters.postgres.conversations import PgConversations
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.memory_diffs import PgMemoryDiffStore
from tow_adapters.postgres.records import PgRecordStore
from tow_core import inbox
from tow_core.access import ProjectAccess, Scope, can_read_project, can_read_scope, can_write_scope
from tow_core.inbox import InboxDesk

STATS: dict = {"worlds": 0, "checks": 0, "leaks": 0}
SNAPSHOT_BASE = 100_000  # snapshot record ids, clear of the world's records


@pytest.fixture(scope="module")
def inbox_engine(embedded_postgres, request):
    engine = world_engine(embedded_postgres, "inbox_leak")
    yield engine
    engine.dispose()
    if STATS["worlds"]:
        say(request.config, f"inbox leak: {STATS['worlds']} worlds, {STATS['checks']} (user, scope, kind) "
        f"checks, {STATS['leaks']} leaks")


class InboxFacts:
    """Snapshots, pending actions and agent runs drawn on top of ``Facts``."""

    def __init__(self, facts: Facts, data) -> None:
        world = self.world = facts.world
        self.facts = facts
        scopes = all_scopes(world)
        self.snapshots: dict[int, tuple[Scope, str]] = {}
        for n in range(data.draw(st.integers(0, 6), label="snapshots")):
            self.snapshots[SNAPSHOT_BASE + n] = (data.draw(st.sampled_from(scopes), label=f"snapshot{n}"),
                                                 data.draw(st.sampled_from(["pending_review", "active"]), label="s"))
        self.actions: dict[str, tuple[int, bool]] = {}  # action id -> (conversation, applied)
        for conversation in facts.conversations:
            for n in range(data.draw(st.integers(0, 2), label=f"actions{conversation}")):
                self.actions[f"{conversation}-{n}"] = (conversation, data.draw(st.booleans(), label="applied"))
        users, self.runs = sorted(world.active), {}
        for run_id in range(1, data.draw(st.integers(0, 6), label="runs") + 1):
            org = data.draw(st.sampled_from(world.orgs), label=f"run{run_id}")
            in_org = [p for p, (p_org, _) in world.projects.items() if p_org == org]
            self.runs[run_id] = (data.draw(st.sampled_from(users), label="owner"), org,
                                 data.draw(st.sampled_from([None, *in_org]), label="project"),
                                 data.draw(st.sampled_from(["failed", "failed", "completed"]), label="status"),
                                 data.draw(st.booleans(), label="dismissed"))

    def insert(self, conn: sa.Connection) -> None:
        def insert(sql: str, rows: list[dict]) -> None:
            if rows:
                conn.execute(sa.text(sql), rows)

        insert("INSERT INTO records (id, organisation_id, type, prefix, number, scope_kind, scope_ref, title, body, "
               "status, fields) VALUES (:id, :o, 'snapshot', 'SNP', :id, :k, :ref, 'state', 'body', :status, "
               "CAST(:fields AS jsonb))",
               [{"id": i, "o": s.organisation_id, "k": s.kind.value, "ref": s.ref_id, "status": status,
                 "fields": json.dumps({"snapshot_type": "cto_state"})} for i, (s, status) in self.snapshots.items()])
        by_conversation: dict[int, list[dict]] = {}
        for action_id, (conversation, applied) in self.actions.items():
            by_conversation.setdefault(conversation, []).append({"tool": "propose_ticket", "pending_action": {
                "id": action_id, "kind": "ticket", "title": "t", "applied": {"record": "TKT-1"} if applied else None}})
        insert("INSERT INTO conversation_turns (conversation_id, position, role, text, tool_activity, created_at) "
               "VALUES (:c, 1, 'assistant', 'proposed', CAST(:activity AS jsonb), :at)",
               [{"c": c, "activity": json.dumps(activity), "at": EPOCH} for c, activity in by_conversation.items()])
        insert("INSERT INTO agent_runs (id, kind, owner_id, organisation_id, project_id, status, error_code, error, "
               "created_at, finished_at, dismissed_at) VALUES (:id, 'chat', :owner, :o, :p, :status, :code, 'msg', "
               ":at, :at, :dismissed)",
               [{"id": i, "owner": owner, "o": org, "p": project, "status": status,
                 "code": "handler_failed" if status == "failed" else None, "at": EPOCH - timedelta(minutes=i),
                 "dismissed": EPOCH if dismissed and status == "failed" else None}
                for i, (owner, org, project, status, dismissed) in self.runs.items()])


def expect(got, want, context: str) -> None:
    STATS["checks"] += 1
    if got != want:
        STATS["leaks"] += 1
    assert got == want, f"{context}: got {got}, policy says {want}"


class Checker:
    def __init__(self, conn: sa.Connection, facts: InboxFacts) -> None:
        self.facts, self.world = facts, facts.world
        self.directory = PgDirectory(conn)
        self.desk = InboxDesk(PgRecordStore(conn), PgMemoryDiffStore(conn), PgConversations(conn), PgAgentRuns(conn))

    def run(self) -> None:
        for user in self.world.active:
            for org in self.world.orgs:
                self.check(user, org)

    def check(self, user: int, org: int) -> None:
        world = self.world
        principal = world.principal(user)
        if not (world.active[user] and (org, user) in world.memberships):  # the use case refuses them (404) ...
            where = inbox.Within(user, org, None, frozenset(world.projects), unscoped=True)
            counts = inbox.count(self.desk, where)  # ... and the stores alone find nothing of theirs either
            expect((counts.memory_diffs, counts.snapshots), (0, 0), f"non-member {user} in {org}")
            return
        readable = [p for p, (p_org, v) in world.projects.items()
                    if p_org == org and can_read_project(principal, ProjectAccess(p, org, v))]
        self.compare(user, org, inbox.within(principal, org, None, readable), None)
        for project in readable:
            self.compare(user, org, inbox.within(principal, org, project, readable), project)

    def allowed(self, user: int, scope: Scope) -> bool:
        principal, project = self.world.principal(user), self.world.project_access(scope)
        return can_read_scope(principal, scope, project) and can_write_scope(principal, scope, project)

    def covers(self, project: int | None, where: inbox.Within) -> bool:
        return project in where.project_ids if project is not None else where.unscoped

    def in_scope(self, scope: Scope, picked: int | None) -> bool:
        return picked is None or (scope.kind.value == "project" and scope.ref_id == picked)

    def compare(self, user: int, org: int, where: inbox.Within, picked: int | None) -> None:
        facts, base = self.facts, self.facts.facts
        context = f"user {user}, organisation {org}, project {picked}"
        box = inbox.gather(self.desk, where)
        want_diffs = {i for i, (scope, status, _, _) in base.diffs.items() if status == "pending"
                      and scope.organisation_id == org and self.in_scope(scope, picked) and self.allowed(user, scope)}
        want_snapshots = {i for i, (scope, status) in facts.snapshots.items() if status == "pending_review"
                          and scope.organisation_id == org and self.in_scope(scope, picked)
                          and self.allowed(user, scope)}
        want_actions = {a for a, (c, applied) in facts.actions.items() if not applied
                        and base.conversations[c][:2] == (user, org) and self.covers(base.conversations[c][2], where)}
        want_runs = {i for i, (owner, o, project, status, dismissed) in facts.runs.items()
                     if (owner, o, status, dismissed) == (user, org, "failed", False) and self.covers(project, where)}
        expect({d.id for d in box.memory_diffs}, want_diffs, f"diffs for {context}")
        expect({s.id for s in box.snapshots}, want_snapshots, f"snapshots for {context}")
        expect({a.action["id"] for a in box.chat_actions}, want_actions, f"chat actions for {context}")
        expect({r.id for r in box.failed_runs}, want_runs, f"failed runs for {context}")
        expect((box.counts.memory_diffs, box.counts.snapshots, box.counts.chat_actions, box.counts.failed_runs),
               (len(want_diffs), len(want_snapshots), len(want_actions), len(want_runs)), f"counts for {context}")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(world=worlds(), revocations=REVOCATIONS, data=st.data())
def test_the_inbox_lists_and_counts_exactly_what_the_policy_lets_each_person_read_and_write(
        inbox_engine, world: World, revocations, data):
    facts = InboxFacts(Facts(world, data), data)
    with inbox_engine.connect() as conn:
        transaction = conn.begin()
        try:
            load(world, conn)
            facts.facts.insert(conn)
            facts.insert(conn)
            checker = Checker(conn, facts)
            checker.run()
            for kind, pick in revocations:
                revoke(world, conn, kind, pick)
            checker.run()  # the very next statements see every revocation
            STATS["worlds"] += 1
        finally:
            transaction.rollback()
