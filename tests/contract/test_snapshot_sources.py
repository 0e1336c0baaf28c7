"""The ``SnapshotSources`` port's behaviour, against its in-memory fake (``InMemorySnapshotSources``) and
``PgSnapshotSources`` on a real PostgreSQL (migration 0019): pins are stored per snapshot with the version they
were written from, replaced whole, read back with each source's current version (None once the source is gone),
and kept inside their organisation. On PostgreSQL each test runs in one rolled-back transaction."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import sqlalchemy as sa

from tests.fake_records import InMemoryRecordStore
from tests.fake_snapshot_sources import InMemorySnapshotSources
from tests.fakes import InMemoryDirectory
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.records import PgRecordStore
from tow_adapters.postgres.snapshot_sources import PgSnapshotSources
from tow_core.access import OrgRole, Scope
from tow_core.identity import WorkflowMode
from tow_core.records import NewRecord, RecordType
from tow_core.snapshots import PinnedSource


@pytest.fixture(scope="module")
def sources_engine(embedded_postgres):
    embedded_postgres.ensure_database("snapshot_sources")
    engine = create_engine(embedded_postgres.url("snapshot_sources"), PoolOptions(pool_size=2, max_overflow=1))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()


class Org:
    def __init__(self, directory, records, sources, delete) -> None:
        self.directory, self.records, self.sources, self.delete = directory, records, sources, delete
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
        records = InMemoryRecordStore(directory)
        return Org(directory, records, InMemorySnapshotSources(records), lambda r: records.rows.pop(r.id))
    conn = request.getfixturevalue("sources_engine").connect()
    transaction = conn.begin()
    request.addfinalizer(conn.close)
    request.addfinalizer(transaction.rollback)
    return Org(PgDirectory(conn), PgRecordStore(conn), PgSnapshotSources(conn),
               lambda r: conn.execute(sa.text("DELETE FROM records WHERE id = :id"), {"id": r.id}))


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
