"""Differential leak test of live updates (issue 19 item 3) on a real PostgreSQL, over the random worlds of
test_snapshot_leak (members of random roles, groups, open and restricted projects with user and group grants,
records in every kind of scope — including another organisation's).

For every user and every record, ``LiveUseCases.deliver`` is asked what a ``record_changed`` and a
``comment_added`` event about it tell that user as a subscriber in the organisation, and what a
``reviews_changed`` event for each scope does: a record event says something — with the actor's name — exactly
when the pure policy (``can_read_scope``) lets the user read the record in this organisation and they are not
the actor; a review nudge exactly when they may write the scope; a non-member is refused outright (the stream
ends). ``subscribe`` refuses every record the user cannot read. Then every grant and group membership is revoked
and everything is checked again on the very next statements. ``STATS`` counts worlds, deliveries checked and
leaks (anything told that the policy does not allow) — which must stay 0.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings

from tests.contract.test_snapshot_leak import NOW, Loaded, Plan, load, plans, transactions_on
from tests.fake_live import FakeLiveFeed
from tests.suite_figures import say
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.records import PgRecordStore
from tow_core.access import Scope, ScopeKind, can_read_scope, can_write_scope
from tow_core.errors import NotFound
from tow_core.identity import Session
from tow_core.live import LiveEvent, LiveHub
from tow_core.unit_of_work import SessionCredential
from tow_core.use_cases.live import LiveUseCases

STATS = {"worlds": 0, "deliveries": 0, "told": 0, "refused": 0, "leaks": 0, "missed": 0}


@pytest.fixture(scope="module")
def live_leak_engine(embedded_postgres, request):
    embedded_postgres.ensure_database("live_leak")
    engine = create_engine(embedded_postgres.url("live_leak"), PoolOptions(pool_size=2, max_overflow=1))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()
    if STATS["worlds"]:
        say(request.config, f"live leak: {STATS['worlds']} worlds, {STATS['deliveries']} deliveries checked "
            f"({STATS['told']} told, {STATS['refused']} refused), {STATS['leaks']} leaks")


class Checker:
    def __init__(self, conn: sa.Connection, plan: Plan, loaded: Loaded) -> None:
        self.directory, self.loaded = PgDirectory(conn), loaded
        self.live = LiveUseCases(transactions_on(conn), LiveHub(FakeLiveFeed(), max_subscribers=1000))
        self.credentials = {}
        for user in loaded.users:
            token = secrets.token_hex(16)
            self.directory.add_session(Session(token, user, None, NOW + timedelta(days=1)))
            self.credentials[user] = SessionCredential(token)
        self.actor = loaded.users[plan.requester]

    def project_access(self, scope: Scope):
        return self.directory.project(scope.ref_id).access if scope.kind is ScopeKind.PROJECT else None

    def run(self) -> None:
        scopes = set(self.loaded.scopes.values())
        for user in self.loaded.users:
            principal = self.directory.principal(user)
            member = principal is not None and self.loaded.org in principal.org_roles
            for record in self.loaded.records:
                scope = self.loaded.scopes[record.id]
                reads = member and scope.organisation_id == self.loaded.org and can_read_scope(
                    principal, scope, self.project_access(scope))
                for event in (LiveEvent.record_changed(self.loaded.org, record.id, self.actor),
                              LiveEvent.comment_added(self.loaded.org, record.id, 1, self.actor)):
                    self.compare(user, member, event, reads and user != self.actor)
                self.subscribe(user, member, record, reads)
            for scope in scopes:
                writes = member and scope.organisation_id == self.loaded.org and can_write_scope(
                    principal, scope, self.project_access(scope))
                self.compare(user, member, LiveEvent.reviews_changed(scope), writes)

    def compare(self, user: int, member: bool, event: LiveEvent, allowed: bool) -> None:
        STATS["deliveries"] += 1
        try:
            told = self.live.deliver(self.credentials[user], self.loaded.org, event)
        except NotFound:
            STATS["refused"] += 1
            assert not member, f"member {user} refused {event}"
            return
        assert member, f"non-member {user} was answered about {event}"
        if told is not None:
            STATS["told"] += 1
            if not allowed:
                STATS["leaks"] += 1
            assert allowed, f"user {user} was told {told} about {event}"
            if "by" in told.data:
                assert told.data["by"] == self.directory.user(self.actor).display_name
        elif allowed:
            STATS["missed"] += 1
            pytest.fail(f"user {user} was not told of {event}")

    def subscribe(self, user: int, member: bool, record, reads: bool) -> None:
        if record.organisation_id != self.loaded.org:
            return  # display IDs are per organisation: the other one's DOC-1 would name this one's
        try:
            leave = self.live.subscribe(self.credentials[user], self.loaded.org, [record.display_id],
                                        lambda event: None, lambda: None)
        except NotFound:
            assert not reads, f"user {user} may not follow {record.display_id}, which they read"
            return
        leave()
        assert reads, f"user {user} followed {record.display_id}, which they cannot read"

    def revoke_everything(self, conn: sa.Connection) -> None:
        conn.execute(sa.text("DELETE FROM project_grants WHERE project_id = ANY(:ids)"),
                     {"ids": self.loaded.project_ids})
        conn.execute(sa.text("DELETE FROM group_members WHERE group_id IN "
                             "(SELECT id FROM groups WHERE organisation_id = :org)"), {"org": self.loaded.org})


def check(engine: sa.Engine, plan: Plan) -> None:
    with engine.connect() as conn, conn.begin() as transaction:
        try:
            loaded = load(plan, PgDirectory(conn), PgRecordStore(conn))
            checker = Checker(conn, plan, loaded)
            STATS["worlds"] += 1
            checker.run()
            checker.revoke_everything(conn)
            checker.run()
        finally:
            transaction.rollback()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(plan=plans())
def test_a_live_event_tells_each_subscriber_only_what_the_policy_lets_them_read_now(live_leak_engine, plan):
    check(live_leak_engine, plan)


@pytest.mark.nightly
def test_a_live_event_tells_only_what_the_policy_allows_on_many_worlds(live_leak_engine, request):
    if not request.config.getoption("--nightly"):
        pytest.skip("nightly run: make nightly")

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(plan=plans())
    def run(plan):
        check(live_leak_engine, plan)

    run()
