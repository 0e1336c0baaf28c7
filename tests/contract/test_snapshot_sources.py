"""The ``SnapshotSources`` port's behaviour, against its in-memory fake (``InMemorySnapshotSources``) and
``PgSnapshotSources`` on a real PostgreSQL (migration 0019): pins are stored per snapshot with the version they
were written from, replaced whole, read back with each source's current version (None once the source is gone),
and kept inside their organisation. On PostgreSQL each test runs in one rolled-back transaction."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import sqlalchemy as sa

from tests.fake_agent_runs import InMemoryAgentRuns
from tests.fake_records import InMemoryRecordStore
from tests.fake_snapshot_sources import InMemorySnapshotSources
from tests.fakes import InMemoryDirectory
from tow_adapters.postgres.agent_runs import PgAgentRuns
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.records import PgRecordStore
from tow_adapters.postgres.snapshot_sources import PgSnapshotSources
from tow_core.access import OrgRole, Scope
from tow_core.agent_runs import new_run
from tow_core.identity import WorkflowMode
from tow_core.jobs import RetryPolicy
from tow_core.records import NewRecord, RecordType
from tow_core.snapshots import SNAPSHOT_RUN, PinnedSource, generated_by


@pytest.fixture(scope="module")
def sources_engine(embedded_postgres):
    embedded_postgres.ensure_database("snapshot_sources")
    engine = create_engine(embedded_postgres.url("snapshot_sources"), PoolOptions(pool_size=2, max_overflow=1))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()


class Org:
    def __init__(self, directory, records, sources, delete, runs) -> None:
        self.directory, self.records, self.sources, self.delete, self.runs = directory, records, sources, delete, runs
        self.id = directory.add_organisation("acme", WorkflowMode.ORGANIZATION).id
        self.other = directory.add_organisation("other", WorkflowMode.ORGANIZATION).id
        self.ada = directory.add_user(f"ada-{time.monotonic_ns()}@example.com", "Ada", None, server_admin=False).id
        directory.set_membership(self.id, self.ada, OrgRole.OWNER)
        directory.set_membership(self.other, self.ada, OrgRole.OWNER)

    def add(self, title: str, record_type: RecordType = RecordType.DOC, *, org_id: int | None = None):
        org_id = org_id or self.id
        prefix = "SNP" if record_type is RecordType.SNAPSHOT else "DOC"
        fields = {"snapshot_type": "weekly_review", "generated_by": None} if record_type is RecordType.SNAPSHOT \
            else {"parent_id": None, "tags": []}
        new = NewRecord(org_id, record_type, prefix, Scope.organisation(org_id), title, "", "active", self.ada, fields)
        return self.records.add(new, self.records.allocate_number(org_id, prefix))


@pytest.fixture(params=["fake", "postgres"])
def org(request) -> Org:
    if request.param == "fake":
        directory = InMemoryDirectory()
        records, runs = InMemoryRecordStore(directory), InMemoryAgentRuns()
        return Org(directory, records, InMemorySnapshotSources(records, runs), lambda r: records.rows.pop(r.id), runs)
    conn = request.getfixturevalue("sources_engine").connect()
    transaction = conn.begin()
    request.addfinalizer(conn.close)
    request.addfinalizer(transaction.rollback)
    return Org(PgDirectory(conn), PgRecordStore(conn), PgSnapshotSources(conn),
               lambda r: conn.execute(sa.text("DELETE FROM records WHERE id = :id"), {"id": r.id}), PgAgentRuns(conn))


def test_pins_are_read_back_with_each_sources_current_version(org):
    snapshot, plan, risk = org.add("Week 9", RecordType.SNAPSHOT), org.add("Plan"), org.add("Risk")
    assert org.sources.pinned(org.id, snapshot.id) == []
    org.sources.pin(org.id, snapshot.id, [(plan.id, plan.version), (risk.id, risk.version)])
    edited = org.records.save(replace(plan, body="changed"), expected_version=plan.version)
    assert org.sources.pinned(org.id, snapshot.id) == [PinnedSource(plan.id, 1, edited.version),
                                                       PinnedSource(risk.id, 1, 1)]


def test_pinning_again_replaces_the_pins_and_a_gone_source_has_no_current_version(org):
    snapshot, plan, risk = org.add("Week 9", RecordType.SNAPSHOT), org.add("Plan"), org.add("Risk")
    org.sources.pin(org.id, snapshot.id, [(plan.id, 1), (risk.id, 1)])
    org.sources.pin(org.id, snapshot.id, [(risk.id, 1)])
    assert org.sources.pinned(org.id, snapshot.id) == [PinnedSource(risk.id, 1, 1)]
    org.delete(risk)
    assert org.sources.pinned(org.id, snapshot.id) == [PinnedSource(risk.id, 1, None)]


def test_pins_stay_in_their_organisation_and_go_with_their_snapshot(org):
    snapshot, plan = org.add("Week 9", RecordType.SNAPSHOT), org.add("Plan")
    elsewhere = org.add("Other plan", org_id=org.other)
    org.sources.pin(org.other, snapshot.id, [(plan.id, 1)])  # the snapshot is not the other organisation's
    assert org.sources.pinned(org.other, snapshot.id) == [] and org.sources.pinned(org.id, snapshot.id) == []
    org.sources.pin(org.id, snapshot.id, [(plan.id, 1), (elsewhere.id, 1)])
    assert org.sources.pinned(org.id, snapshot.id) == [PinnedSource(plan.id, 1, 1),
                                                       PinnedSource(elsewhere.id, 1, None)]  # not readable here
    org.delete(snapshot)
    assert org.sources.pinned(org.id, snapshot.id) == []


def test_a_generating_snapshot_whose_run_ended_without_it_is_found_once_the_run_failed_or_was_cancelled(org):
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

    def generating(title: str):
        snapshot = org.add(title, RecordType.SNAPSHOT)
        run = org.runs.create(new_run(SNAPSHOT_RUN, owner_id=org.ada, organisation_id=org.id, project_id=None,
                                      input={"snapshot_id": snapshot.id}), now=now)
        fields = {**snapshot.fields, "generated_by": generated_by(run.id)}
        return org.records.save(replace(snapshot, status="generating", fields=fields),
                                expected_version=snapshot.version), run

    (crashed, crashed_run), (cancelled, cancelled_run) = generating("Crashed"), generating("Cancelled")
    (_, running_run), (finished, finished_run) = generating("Running"), generating("Finished")
    policy = RetryPolicy(lease_seconds=30, max_attempts=1)
    assert org.sources.abandoned(limit=10) == []  # queued runs: nothing abandoned yet
    assert org.runs.claim(now=now, policy=policy).id == crashed_run.id  # its worker dies: no more heartbeats
    org.runs.request_cancel(cancelled_run.id, now=now)  # cancelled while queued: no worker ever sees it
    running = org.runs.claim(now=now, policy=policy)
    done = org.runs.claim(now=now, policy=policy)
    assert (running.id, done.id) == (running_run.id, finished_run.id)
    org.records.save(replace(finished, status="pending_review"), expected_version=finished.version)
    org.runs.finish_failed(done, "handler_failed", "late", now=now)  # failed after writing its draft
    org.runs.heartbeat(running, now=now + timedelta(seconds=20), policy=policy)
    assert org.runs.claim(now=now + timedelta(seconds=40), policy=policy) is None  # the crashed one gives up

    found = org.sources.abandoned(limit=10)
    assert [(a.organisation_id, a.snapshot_id, a.run_id) for a in found] == [
        (org.id, crashed.id, crashed_run.id), (org.id, cancelled.id, cancelled_run.id)]
    assert "lease expired" in found[0].reason and found[1].reason == "the run was cancelled"
    assert running_run.id not in {a.run_id for a in found}
    assert org.sources.abandoned(limit=1) == found[:1]
