"""The ``NotificationStore`` port's behaviour, against its in-memory fake (``InMemoryNotifications``) and
``PgNotifications`` on a real PostgreSQL: notifications kept by id and listed newest first, each shown with its
record only while the reader reads it (a lost record: no title, no actor, no comment), unread counted and
marked per reader only, watchers, preferences and the digest setting kept per person (and read for many people
in one call), many notifications added at once as if one by one, a due digest claimed once.

On PostgreSQL each test runs in one transaction that is rolled back."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.fake_agent_runs import InMemoryAgentRuns
from tests.fake_notifications import InMemoryNotifications
from tests.fake_records import InMemoryMemoryDiffStore, InMemoryRecordStore
from tests.fakes import InMemoryDirectory
from tow_adapters.postgres.agent_runs import PgAgentRuns
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.memory_diffs import PgMemoryDiffStore
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.notifications import PgNotifications
from tow_adapters.postgres.records import PgRecordStore
from tow_core.access import OrgRole, ProjectRole, Scope, Visibility
from tow_core.agent_runs import new_run
from tow_core.identity import Project, ProjectStatus, WorkflowMode
from tow_core.memory_diffs import CreateItem, DiffSource, NewMemoryDiff
from tow_core.notifications import Delivery, DeliverySettings, Digest, NewNotification, NotificationKind
from tow_core.records import NewRecord, RecordType

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def notifications_engine(embedded_postgres):
    embedded_postgres.ensure_database("notification_contract")
    engine = create_engine(embedded_postgres.url("notification_contract"), PoolOptions(pool_size=2, max_overflow=1))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()


class Org:
    """Acme with Ada and Bob; project APP restricted with Bob as viewer; a record in APP; Other, Oscar's."""

    def __init__(self, directory, records, store) -> None:
        self.directory, self.records, self.store = directory, records, store
        self.id = directory.add_organisation("acme", WorkflowMode.ORGANIZATION).id
        self.other = directory.add_organisation("other", WorkflowMode.ORGANIZATION).id
        self.ada, self.bob, self.oscar = (directory.add_user(f"{n}-{time.monotonic_ns()}@example.com", n.title(),
                                                             None, server_admin=False).id
                                          for n in ("ada", "bob", "oscar"))
        directory.set_membership(self.id, self.ada, OrgRole.OWNER)
        directory.set_membership(self.id, self.bob, OrgRole.MEMBER)
        directory.set_membership(self.other, self.oscar, OrgRole.OWNER)
        self.app = directory.add_project(Project(0, self.id, "APP", "App", "", None, Visibility.RESTRICTED,
                                                 ProjectStatus.ACTIVE)).id
        self.grant = directory.put_grant(self.app, user_id=self.bob, group_id=None, role=ProjectRole.VIEWER)
        self.record = self.add_record(Scope.project(self.id, self.app), "Secret plan")
        self.open = self.add_record(Scope.organisation(self.id), "Lunch menu")

    def add_record(self, scope: Scope, title: str):
        new = NewRecord(self.id, RecordType.DOC, "DOC", scope, title, "body", "draft", self.ada, {})
        return self.records.add(new, self.records.allocate_number(self.id, "DOC"))

    def notify(self, user: int, record, *, kind=NotificationKind.MENTIONED, at=T, org=None, comment=None) -> int:
        return self.store.add(NewNotification(user, org or self.id, kind, record.id if record else None, comment,
                                              self.ada, at))


@pytest.fixture(params=["fake", "postgres"])
def org(request) -> Org:
    if request.param == "fake":
        directory = InMemoryDirectory()
        records = InMemoryRecordStore(directory)
        diffs = InMemoryMemoryDiffStore(directory)
        found = Org(directory, records, InMemoryNotifications(records, directory, InMemoryAgentRuns(), diffs))
        found.runs, found.diffs = found.store.runs, diffs
        return found
    conn = request.getfixturevalue("notifications_engine").connect()
    transaction = conn.begin()
    request.addfinalizer(conn.close)
    request.addfinalizer(transaction.rollback)
    found = Org(PgDirectory(conn), PgRecordStore(conn), PgNotifications(conn))
    found.runs, found.diffs = PgAgentRuns(conn), PgMemoryDiffStore(conn)
    return found


def test_notifications_are_listed_newest_first_with_their_record_and_actor(org):
    first = org.notify(org.bob, org.record)
    second = org.notify(org.bob, org.open, kind=NotificationKind.COMMENTED, at=T + timedelta(1))
    access = org.notify(org.bob, None, kind=NotificationKind.ACCESS, at=T + timedelta(2))
    shown = org.store.shown(org.bob, org.id, unread_only=False, before_id=None, limit=10)
    assert [n.id for n in shown] == [access, second, first]
    assert [(n.kind, n.record.title if n.record else None, n.actor_name, n.lost, n.read_at) for n in shown] == [
        (NotificationKind.ACCESS, None, "Ada", False, None), (NotificationKind.COMMENTED, "Lunch menu", "Ada", False,
                                                              None),
        (NotificationKind.MENTIONED, "Secret plan", "Ada", False, None)]
    assert shown[2].created_at == T and str(shown[2].record.display_id) == str(org.record.display_id)
    assert [n.id for n in org.store.shown(org.bob, org.id, unread_only=False, before_id=second, limit=10)] == [first]
    assert [n.id for n in org.store.shown(org.bob, org.id, unread_only=False, before_id=None, limit=1)] == [access]
    assert org.store.shown(org.ada, org.id, unread_only=False, before_id=None, limit=10) == []


def test_notifications_added_at_once_are_kept_and_shown_as_if_added_one_by_one(org):
    news = [NewNotification(org.bob, org.id, NotificationKind.COMMENTED, org.open.id, None, org.ada, T),
            NewNotification(org.ada, org.id, NotificationKind.ACCESS, None, None, None, T + timedelta(1)),
            NewNotification(org.bob, org.id, NotificationKind.MENTIONED, org.record.id, None, org.ada, T + timedelta(2))]
    ids = org.store.add_many(news)
    assert len(ids) == 3 and ids == sorted(ids) and org.store.add_many([]) == []
    assert [org.store.recipient(i) for i in ids] == [(org.bob, org.id), (org.ada, org.id), (org.bob, org.id)]
    shown = org.store.shown(org.bob, org.id, unread_only=False, before_id=None, limit=10)
    assert [(n.id, n.kind, n.record.title, n.actor_name, n.created_at) for n in shown] == [
        (ids[2], NotificationKind.MENTIONED, "Secret plan", "Ada", T + timedelta(2)),
        (ids[0], NotificationKind.COMMENTED, "Lunch menu", "Ada", T)]
    (access,) = org.store.shown(org.ada, org.id, unread_only=False, before_id=None, limit=10)
    assert (access.id, access.record, access.actor_name, access.lost) == (ids[1], None, None, False)


def test_what_each_person_chose_for_a_kind_is_read_for_all_at_once(org):
    people = [org.ada, org.bob, org.oscar]
    assert org.store.deliveries_for(people, NotificationKind.COMMENTED) == dict.fromkeys(people, DeliverySettings())
    org.store.set_preference(org.bob, NotificationKind.COMMENTED, Delivery.EMAIL)
    org.store.set_preference(org.bob, NotificationKind.MENTIONED, Delivery.OFF)
    org.store.set_preference(org.ada, NotificationKind.COMMENTED, Delivery.EMAIL)
    org.store.set_digest(org.ada, Digest.DAILY, now=T)
    commented = org.store.deliveries_for(people, NotificationKind.COMMENTED)
    assert commented == {org.ada: DeliverySettings(Delivery.EMAIL, Digest.DAILY),
                         org.bob: DeliverySettings(Delivery.EMAIL, Digest.IMMEDIATE),
                         org.oscar: DeliverySettings(Delivery.IN_APP, Digest.IMMEDIATE)}
    assert [commented[p].emailed_at_once for p in people] == [False, True, False]  # Ada's come in her daily digest
    assert org.store.deliveries_for([org.bob], NotificationKind.MENTIONED) == {
        org.bob: DeliverySettings(Delivery.OFF, Digest.IMMEDIATE)}
    assert org.store.deliveries_for([], NotificationKind.MENTIONED) == {}


def test_a_record_the_reader_lost_is_shown_as_lost_with_nothing_of_it(org):
    org.notify(org.bob, org.record, comment=None)
    org.directory.delete_grant(org.grant.id)
    (shown,) = org.store.shown(org.bob, None, unread_only=False, before_id=None, limit=10)
    assert (shown.lost, shown.record, shown.actor_name, shown.comment_id) == (True, None, None, None)


def test_a_notification_is_shown_only_in_its_organisation_and_only_to_its_reader(org):
    mine = org.notify(org.oscar, None, kind=NotificationKind.ACCESS, org=org.other)
    assert [n.id for n in org.store.shown(org.oscar, org.other, unread_only=False, before_id=None, limit=5)] == [mine]
    assert org.store.shown(org.oscar, org.id, unread_only=False, before_id=None, limit=5) == []
    assert org.store.count_unread(org.oscar, org.id) == 0 and org.store.count_unread(org.oscar, None) == 1


def test_unread_is_counted_and_marked_read_for_the_reader_only(org):
    one, two = org.notify(org.bob, org.open), org.notify(org.bob, org.open)
    theirs = org.notify(org.ada, org.open)
    assert org.store.count_unread(org.bob, org.id) == 2
    assert org.store.mark_read(org.bob, [one, theirs], org.id, now=T) == 1
    assert org.store.count_unread(org.ada, org.id) == 1
    assert [n.id for n in org.store.shown(org.bob, org.id, unread_only=True, before_id=None, limit=5)] == [two]
    assert org.store.mark_read(org.bob, None, org.id, now=T) == 1
    assert org.store.count_unread(org.bob, org.id) == 0
    read = org.store.shown(org.bob, org.id, unread_only=False, before_id=None, limit=5)
    assert {n.read_at for n in read} == {T}


def test_watchers_and_preferences_are_kept_per_person(org):
    org.store.watch(org.record.id, org.bob)
    org.store.watch(org.record.id, org.bob)
    org.store.watch(org.record.id, org.ada)
    assert org.store.watchers(org.record.id) == sorted([org.ada, org.bob])
    org.store.unwatch(org.record.id, org.bob)
    assert (org.store.is_watching(org.record.id, org.bob), org.store.is_watching(org.record.id, org.ada)) == (
        False, True)
    assert org.store.preferences(org.bob) == {}
    org.store.set_preference(org.bob, NotificationKind.COMMENTED, Delivery.OFF)
    org.store.set_preference(org.bob, NotificationKind.COMMENTED, Delivery.EMAIL)
    assert org.store.preferences(org.bob) == {NotificationKind.COMMENTED: Delivery.EMAIL}
    assert org.store.preferences(org.ada) == {}


def test_the_digest_setting_is_kept_per_person_and_immediate_by_default(org):
    assert org.store.digest(org.bob) is Digest.IMMEDIATE
    org.store.set_digest(org.bob, Digest.OFF, now=T)
    assert (org.store.digest(org.bob), org.store.digest(org.ada)) == (Digest.OFF, Digest.IMMEDIATE)
    org.store.set_digest(org.bob, Digest.DAILY, now=T)
    assert org.store.digest(org.bob) is Digest.DAILY


def test_a_due_digest_is_claimed_once_with_the_time_of_the_last(org):
    mine = {org.ada, org.bob}

    def claim(cutoff, now):
        return [c for c in org.store.claim_digests(cutoff, now=now) if c[0] in mine]

    org.store.set_digest(org.bob, Digest.DAILY, now=T)
    org.store.set_digest(org.ada, Digest.IMMEDIATE, now=T)
    assert claim(T - timedelta(seconds=1), T + DAY) == []  # not due yet
    org.store.set_digest(org.bob, Digest.DAILY, now=T + timedelta(hours=5))  # again: keeps its day
    assert claim(T, T + DAY) == [(org.bob, T)]
    assert claim(T, T + DAY) == []  # claimed: not again
    assert claim(T + DAY - timedelta(seconds=1), T + DAY) == []
    assert claim(T + DAY, T + 2 * DAY) == [(org.bob, T + DAY)]
    org.store.set_digest(org.bob, Digest.OFF, now=T + 2 * DAY)
    assert claim(T + 5 * DAY, T + 6 * DAY) == []  # off (or immediate) is never claimed
    org.store.set_digest(org.bob, Digest.DAILY, now=T + 6 * DAY)  # daily again: its day starts now
    assert claim(T + 5 * DAY, T + 7 * DAY) == [] and claim(T + 6 * DAY, T + 7 * DAY) == [(org.bob, T + 6 * DAY)]


def test_an_agent_run_notification_shows_the_run_only_to_its_owner(org):
    run = org.runs.create(new_run("snapshot_generation", owner_id=org.bob, organisation_id=org.id, project_id=None,
                                  input={"q": 1}), now=T)
    for user in (org.bob, org.ada):  # Ada's row names Bob's run (a forged id): she is shown nothing of it
        org.store.add(NewNotification(user, org.id, NotificationKind.RUN_FAILED, None, None, None, T, run.id))
    (bobs,) = org.store.shown(org.bob, org.id, unread_only=False, before_id=None, limit=5)
    (adas,) = org.store.shown(org.ada, org.id, unread_only=False, before_id=None, limit=5)
    assert (bobs.agent_run_id, bobs.run_kind, bobs.text) == (run.id, "snapshot_generation",
                                                             "Your snapshot generation failed")
    assert (adas.agent_run_id, adas.run_kind, adas.text, adas.lost) == (None, None, "Your agent run failed", False)



def test_a_memory_diff_notification_shows_the_diff_while_the_reader_reads_its_scope(org):
    ops = (CreateItem("Secret fact", "b", {"memory_type": "fact"}), CreateItem("Another", "b", {"memory_type": "fact"}))
    diff = org.diffs.add(NewMemoryDiff(org.id, Scope.project(org.id, org.app), DiffSource.MANUAL, None, "why",
                                       org.ada, ops))
    org.store.add(NewNotification(org.bob, org.id, NotificationKind.REVIEW, None, None, org.ada, T,
                                  memory_diff_id=diff.id))
    (shown,) = org.store.shown(org.bob, org.id, unread_only=False, before_id=None, limit=5)
    assert (shown.memory_diff_id, shown.diff_changes, shown.lost, shown.actor_name) == (diff.id, 2, False, "Ada")
    assert shown.text == f"Ada proposed memory diff #{diff.id} (2 changes) for your review"
    assert shown.link == f"/o/{org.id}/memory-diffs/{diff.id}"
    org.directory.delete_grant(org.grant.id)  # Bob no longer reads APP
    (lost,) = org.store.shown(org.bob, org.id, unread_only=False, before_id=None, limit=5)
    assert (lost.memory_diff_id, lost.lost, lost.lost_diff, lost.actor_name, lost.link) == (None, True, True, None,
                                                                                             None)
    assert lost.text == "A snapshot or memory diff awaits your review: a memory diff you can no longer see"
