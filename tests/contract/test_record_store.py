"""The ``RecordStore`` port's behaviour, against its in-memory fake (``InMemoryRecordStore``) and
``PgRecordStore`` on a real PostgreSQL: numbers, writes with optimistic concurrency, keyset pages, keyword
search, references and lookup — and that none of them tells a reader about records it may not read.

The world is built through the ``Directory`` port (``InMemoryDirectory`` / ``PgDirectory``). On PostgreSQL
each test runs in one transaction that is rolled back; the concurrency test commits on purpose, in an
organisation of its own. Postgres-only tests say why in their first line.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from tests.fake_records import InMemoryRecordStore
from tests.fakes import InMemoryDirectory
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.records import PgRecordStore
from tow_core.access import OrgRole, ProjectRole, Scope, Visibility
from tow_core.errors import Conflict, InvalidInput, NotFound
from tow_core.identity import Project, ProjectStatus, WorkflowMode
from tow_core.records import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    DisplayId,
    NewRecord,
    RecordQuery,
    RecordType,
    references_in,
)

THREADS = 20


@pytest.fixture(scope="module")
def store_engine(embedded_postgres):
    embedded_postgres.ensure_database("record_store")
    engine = create_engine(embedded_postgres.url("record_store"), PoolOptions(pool_size=THREADS + 2, max_overflow=2))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()


@pytest.fixture
def conn(store_engine):
    with store_engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


class Org:
    """One organisation: an admin, two members (alice is granted the restricted project APP, bob is not),
    an outsider, a restricted project APP and an open project WEB — built through the Directory port."""

    def __init__(self, directory, store, touch) -> None:
        self.directory, self.store, self._touch = directory, store, touch
        self.id = self.organisation("acme")
        self.admin, self.alice, self.bob, self.outsider = (self.user(name) for name in ("admin", "alice", "bob", "out"))
        for user, role in ((self.admin, OrgRole.ADMIN), (self.alice, OrgRole.MEMBER), (self.bob, OrgRole.MEMBER)):
            directory.set_membership(self.id, user, role)
        self.app = self.project("APP", "App", Visibility.RESTRICTED)
        self.web = self.project("WEB", "Web", Visibility.OPEN)
        directory.put_grant(self.app, user_id=self.alice, group_id=None, role=ProjectRole.VIEWER)

    def organisation(self, name: str) -> int:
        return self.directory.add_organisation(name, WorkflowMode.ORGANIZATION).id

    def user(self, name: str) -> int:
        return self.directory.add_user(f"{name}-{time.monotonic_ns()}@example.com", name, None,
                                       server_admin=False).id

    def project(self, key: str, name: str, visibility: Visibility) -> int:
        return self.directory.add_project(Project(0, self.id, key, name, "", None, visibility,
                                                  ProjectStatus.ACTIVE)).id

    def add(self, title: str, body: str = "", *, type: RecordType = RecordType.DOC, prefix: str = "DOC",
            scope: Scope | None = None, status: str = "active", fields=None, org_id: int | None = None):
        org_id = org_id or self.id
        new = NewRecord(org_id, type, prefix, scope or Scope.organisation(org_id), title, body, status, self.admin,
                        fields or {})
        record = self.store.add(new, self.store.allocate_number(org_id, prefix))
        self.store.set_references(org_id, record.id, references_in(title, body))
        return record

    def touch(self, record, at: str) -> None:
        """Set ``updated_at`` behind the port's back (to build ties and orders the clock would not)."""
        self._touch(record, datetime.fromisoformat(at).replace(tzinfo=UTC))


def _fake_touch(store: InMemoryRecordStore):
    def touch(record, at: datetime) -> None:
        store.rows[record.id] = replace(store.rows[record.id], updated_at=at)
    return touch


def _sql_touch(conn):
    def touch(record, at: datetime) -> None:
        conn.execute(sa.text("UPDATE records SET updated_at = :at WHERE id = :id"), {"at": at, "id": record.id})
    return touch


@pytest.fixture(params=["fake", "postgres"])
def org(request) -> Org:
    if request.param == "fake":
        directory = InMemoryDirectory()
        store = InMemoryRecordStore(directory)
        return Org(directory, store, _fake_touch(store))
    conn = request.getfixturevalue("conn")
    return Org(PgDirectory(conn), PgRecordStore(conn), _sql_touch(conn))


def ids(items) -> list[int]:
    return [getattr(item, "summary", item).id for item in items]


def walk(fetch, limit: int) -> list[list]:
    """Every page of a paginated read, checking that only the last page is short or has no cursor."""
    pages, cursor = [], None
    while True:
        page = fetch(cursor=cursor, limit=limit)
        pages.append(list(page.items))
        if page.next_cursor is None:
            break
        assert len(page.items) == limit, "a page before the last is short"
        cursor = page.next_cursor
    return pages


# --- writes ------------------------------------------------------------------------------------------


def test_add_then_read_back_by_id_display_id_and_for_update(org):
    record = org.add("Onboarding guide", "Read this first.", fields={"tags": ["hr"], "parent_id": None})
    assert record.display_id == DisplayId("DOC", 1) and record.version == 1
    assert record.fields == {"tags": ["hr"], "parent_id": None}
    assert record.scope == Scope.organisation(org.id) and record.author_id == org.admin
    assert org.store.readable(org.bob, org.id, record.id) == record
    assert org.store.readable_by_display_id(org.bob, org.id, DisplayId("DOC", 1)) == record
    assert org.store.for_update(org.id, record.id) == record
    assert org.add("Second").display_id == DisplayId("DOC", 2)
    assert org.add("A decision", type=RecordType.DECISION, prefix="DEC").display_id == DisplayId("DEC", 1)


def test_reads_deny_outsiders_other_organisations_and_other_users_private_records(org):
    shared = org.add("Shared")
    private = org.add("Alice's notes", scope=Scope.private(org.id, org.alice))
    other_org = org.organisation("other")
    assert org.store.readable(org.outsider, org.id, shared.id) is None
    assert org.store.readable(org.admin, other_org, shared.id) is None
    assert org.store.for_update(other_org, shared.id) is None
    assert org.store.readable(org.alice, org.id, private.id) == private
    for reader in (org.admin, org.bob):  # private means private: not even organisation admins
        assert org.store.readable(reader, org.id, private.id) is None
        assert org.store.readable_by_display_id(reader, org.id, private.display_id) is None


def test_readers_among_are_the_listed_users_who_read_or_write_the_record_now(org):
    everyone = [org.admin, org.alice, org.bob, org.outsider]
    shared = org.add("Shared")
    app = org.add("App plan", scope=Scope.project(org.id, org.app))
    private = org.add("Alice's notes", scope=Scope.private(org.id, org.alice))
    assert org.store.readers_among(org.id, shared.id, everyone) == {org.admin, org.alice, org.bob}
    assert org.store.readers_among(org.id, app.id, everyone) == {org.admin, org.alice}
    assert org.store.readers_among(org.id, app.id, everyone, write=True) == {org.admin}  # alice is a viewer
    assert org.store.readers_among(org.id, private.id, everyone) == {org.alice}
    assert org.store.readers_among(org.id, shared.id, [org.bob, org.outsider]) == {org.bob}  # only those asked
    assert org.store.readers_among(org.organisation("other"), shared.id, everyone) == frozenset()
    grant = next(g for g in org.directory.grants(org.app) if g.user_id == org.alice)
    org.directory.delete_grant(grant.id)  # revoked: gone on the very next statement
    assert org.store.readers_among(org.id, app.id, everyone) == {org.admin}


def test_save_bumps_the_version_and_refuses_a_stale_write(org):
    record = org.add("Draft", "v1")
    saved = org.store.save(replace(record, title="Final", body="v2", status="archived",
                                   scope=Scope.project(org.id, org.web), fields={"tags": ["x"]}),
                           expected_version=1)
    assert (saved.version, saved.title, saved.body, saved.status) == (2, "Final", "v2", "archived")
    assert saved.scope == Scope.project(org.id, org.web) and saved.fields == {"tags": ["x"]}
    assert saved.updated_at >= record.updated_at and saved.created_at == record.created_at
    assert org.store.readable(org.bob, org.id, record.id) == saved
    with pytest.raises(Conflict) as refused:
        org.store.save(replace(record, title="Lost update"), expected_version=1)
    assert refused.value.field == "version" and "current version is 2" in refused.value.message
    assert org.store.readable(org.bob, org.id, record.id).title == "Final"  # the transaction is still usable


def test_save_of_a_missing_record_is_not_found_and_bad_values_are_invalid_input(org):
    record = org.add("Here")
    with pytest.raises(NotFound):
        org.store.save(replace(record, id=record.id + 10_000), expected_version=1)
    with pytest.raises(InvalidInput):
        org.store.save(replace(record, title="x" * 501), expected_version=1)
    with pytest.raises(InvalidInput) as wrong_scope:
        org.store.save(replace(record, scope=Scope.organisation(org.id + 1)), expected_version=1)
    assert wrong_scope.value.field == "scope"
    with pytest.raises(Conflict):  # a number handed out twice (not through allocate_number)
        org.store.add(NewRecord(org.id, RecordType.DOC, "DOC", Scope.organisation(org.id), "Dup", "", "active",
                                org.admin, {}), 1)
    assert org.store.readable(org.admin, org.id, record.id) == record


def test_save_stores_only_the_mutable_parts_and_only_in_the_records_organisation(org):
    record = org.add("Kept", "body")
    other_org = org.organisation("other")
    with pytest.raises(NotFound):  # the id exists, but not in that organisation
        org.store.save(replace(record, organisation_id=other_org, scope=Scope.organisation(other_org)),
                       expected_version=1)
    later = datetime(2030, 1, 1, tzinfo=UTC)
    saved = org.store.save(replace(record, type=RecordType.RISK, display_id=DisplayId("RSK", 9), author_id=org.bob,
                                   created_at=later, updated_at=later, version=7, title="Changed"),
                           expected_version=1)
    assert (saved.type, saved.display_id, saved.author_id, saved.created_at) == (
        record.type, record.display_id, record.author_id, record.created_at)
    assert (saved.version, saved.title) == (2, "Changed") and saved.updated_at != later
    assert org.store.readable(org.admin, org.id, record.id) == saved


def test_add_refuses_what_the_schema_refuses_and_keeps_nothing(org):
    def new(title="Fine", author=org.admin, prefix="DOC"):
        return NewRecord(org.id, RecordType.DOC, prefix, Scope.organisation(org.id), title, "", "active", author, {})

    for bad in (new(title=""), new(title="x" * 501), new(author=10**12), new(prefix="doc")):
        with pytest.raises(InvalidInput):
            org.store.add(bad, org.store.allocate_number(org.id, bad.prefix))
    with pytest.raises(InvalidInput) as wrong_scope:
        org.store.add(replace(new(), scope=Scope.organisation(org.id + 1)), 50)
    assert wrong_scope.value.field == "scope"
    assert org.store.count_readable(org.admin, org.id, RecordQuery()) == 0


# --- lists and counts --------------------------------------------------------------------------------


def test_list_walks_every_page_newest_first_without_duplicates_or_gaps(org):
    records = [org.add(f"Record {i}") for i in range(9)]
    touched = list(zip(records, ["2026-01-02", "2026-01-05", "2026-01-05", "2026-01-01", "2026-01-05",
                                 "2026-01-03", "2026-01-03", "2026-01-04", "2026-01-02"], strict=True))
    for record, at in touched:
        org.touch(record, at)
    expected = [r.id for r, _ in sorted(touched, key=lambda t: (t[1], t[0].id), reverse=True)]  # updated_at, id DESC
    pages = walk(lambda **kw: org.store.list_readable(org.bob, org.id, RecordQuery(), **kw), 2)
    assert [len(p) for p in pages] == [2, 2, 2, 2, 1]
    assert [i for page in pages for i in ids(page)] == expected
    assert org.store.count_readable(org.bob, org.id, RecordQuery()) == 9
    exact = walk(lambda **kw: org.store.list_readable(org.bob, org.id, RecordQuery(), **kw), 3)
    assert [len(p) for p in exact] == [3, 3, 3]  # a full last page has no cursor to an empty one


def test_list_and_count_apply_type_status_and_project_filters_inside_the_visible_set(org):
    org.add("Org doc")
    archived = org.add("Old doc", status="archived")
    web_risk = org.add("Web risk", type=RecordType.RISK, prefix="RSK", scope=Scope.project(org.id, org.web))
    app_risk = org.add("App risk", type=RecordType.RISK, prefix="RSK", scope=Scope.project(org.id, org.app))

    def listed(user, query):
        page = org.store.list_readable(user, org.id, query, cursor=None, limit=50)
        assert org.store.count_readable(user, org.id, query) == len(page.items)
        return set(ids(page.items))

    risks = RecordQuery(types=frozenset({RecordType.RISK}))
    assert listed(org.alice, risks) == {web_risk.id, app_risk.id}
    assert listed(org.bob, risks) == {web_risk.id}
    assert listed(org.bob, RecordQuery(statuses=frozenset({"archived"}))) == {archived.id}
    assert listed(org.bob, RecordQuery(project_id=org.app)) == set()
    assert listed(org.alice, RecordQuery(project_id=org.app)) == {app_risk.id}
    assert listed(org.outsider, RecordQuery()) == set()


@pytest.mark.parametrize("cursor", [
    "!!!", "not base64 at all", base64.urlsafe_b64encode(b"{}").decode(),
    base64.urlsafe_b64encode(b'["yesterday", 1]').decode(), base64.urlsafe_b64encode(b'["2026-01-01", 1]').decode(),
    base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00", "1"]').decode(),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
])
def test_a_malformed_cursor_is_invalid_input(org, cursor):
    with pytest.raises(InvalidInput) as refused:
        org.store.list_readable(org.bob, org.id, RecordQuery(), cursor=cursor, limit=2)
    assert refused.value.field == "cursor"
    with pytest.raises(InvalidInput) as refused:
        org.store.search_readable(org.bob, org.id, "word", RecordQuery(), cursor=cursor, limit=2)
    assert refused.value.field == "cursor"


def test_a_limit_below_one_is_invalid_input(org):
    org.add("Something to find")
    reads = (lambda: org.store.list_readable(org.bob, org.id, RecordQuery(), cursor=None, limit=0),
             lambda: org.store.search_readable(org.bob, org.id, "something", RecordQuery(), cursor=None, limit=0),
             lambda: org.store.lookup_readable(org.bob, org.id, "Some", limit=0))
    for read in reads:
        with pytest.raises(InvalidInput) as refused:
            read()
        assert refused.value.field == "limit"


def test_active_snapshots_for_update_are_one_type_in_exactly_one_scope_whoever_may_read_them(org):
    def snapshot(title, snapshot_type="daily_summary", scope=None, status="active"):
        return org.add(title, type=RecordType.SNAPSHOT, prefix="SNP", scope=scope, status=status,
                       fields={"snapshot_type": snapshot_type})

    first, second = snapshot("First"), snapshot("Second")
    snapshot("Pending", status="pending_review")
    snapshot("Weekly", "weekly_review")
    in_app, bobs = snapshot("In APP", scope=Scope.project(org.id, org.app)), snapshot("Bob's", scope=Scope.private(
        org.id, org.bob))
    org.add("A doc", fields={"snapshot_type": "daily_summary"})  # not a snapshot
    assert org.store.active_snapshots_for_update(org.id, "daily_summary", Scope.organisation(org.id)) == [first, second]
    assert org.store.active_snapshots_for_update(org.id, "daily_summary", Scope.project(org.id, org.app)) == [in_app]
    assert org.store.active_snapshots_for_update(org.id, "daily_summary", Scope.private(org.id, org.bob)) == [bobs]
    assert org.store.active_snapshots_for_update(org.id, "cto_state", Scope.organisation(org.id)) == []
    other_org = org.organisation("other")
    assert org.store.active_snapshots_for_update(other_org, "daily_summary", Scope.organisation(other_org)) == []


# --- keyword search ------------------------------------------------------------------------------------


def test_search_ranks_a_title_match_above_a_body_only_match_and_marks_the_snippet(org):
    # one mention each: weight A (title, 1.0) beats weight B (body, 0.4); ts_rank_cd sums covers, so
    # three body mentions would outrank one title mention
    body_only = org.add("Quarterly plan", "We will move the billing service to kubernetes next quarter.")
    in_title = org.add("Kubernetes migration", "Notes about the cluster.")
    org.add("Unrelated", "Nothing to see.")
    page = org.store.search_readable(org.bob, org.id, "kubernetes", RecordQuery(), cursor=None, limit=10)
    assert ids(page.items) == [in_title.id, body_only.id] and page.next_cursor is None
    assert page.items[0].rank > page.items[1].rank > 0
    assert f"{HIGHLIGHT_START}Kubernetes{HIGHLIGHT_END}" in page.items[0].snippet
    assert f"{HIGHLIGHT_START}kubernetes{HIGHLIGHT_END}" in page.items[1].snippet
    assert page.items[0].summary.display_id == in_title.display_id


def test_search_pages_through_equal_ranks_without_losing_or_repeating_hits(org):
    same = [org.add(f"Note {i}", "deploy checklist") for i in range(7)]
    pages = walk(lambda **kw: org.store.search_readable(org.bob, org.id, "deploy", RecordQuery(), **kw), 2)
    found = [i for page in pages for i in ids(page)]
    assert found == sorted((r.id for r in same), reverse=True)


def test_search_filters_by_visibility_and_query_in_the_same_statement(org):
    public = org.add("Incident review", "database outage")
    secret = org.add("Secret incident", "database outage", scope=Scope.project(org.id, org.app))
    mine = org.add("My incident notes", "database outage", scope=Scope.private(org.id, org.bob))

    def found(user, query=None):
        query = query or RecordQuery()
        return set(ids(org.store.search_readable(user, org.id, "outage", query, cursor=None, limit=1).items))

    assert found(org.bob) == {mine.id}  # the best readable hit, not the best hit filtered afterwards
    assert len(walk(lambda **kw: org.store.search_readable(org.bob, org.id, "outage", RecordQuery(), **kw), 1)) == 2
    assert found(org.alice, RecordQuery(project_id=org.app)) == {secret.id}
    assert found(org.outsider) == set()
    assert public.id in {i for p in walk(lambda **kw: org.store.search_readable(
        org.alice, org.id, "database", RecordQuery(), **kw), 1) for i in ids(p)}


@pytest.mark.parametrize("text", ["", "   ", "the and of", "!!!"])
def test_an_empty_or_stop_word_only_search_is_refused(org, text):
    org.add("The and of", "the")
    with pytest.raises(InvalidInput) as refused:
        org.store.search_readable(org.bob, org.id, text, RecordQuery(), cursor=None, limit=5)
    assert refused.value.field == "q"


def test_postgres_search_matches_english_word_forms(conn):
    """Postgres-only: stemming is PostgreSQL's English dictionary (the fake matches whole words only)."""
    org = Org(PgDirectory(conn), PgRecordStore(conn), _sql_touch(conn))
    migrating = org.add("Migrating the billing service")
    page = org.store.search_readable(org.bob, org.id, "migrations", RecordQuery(), cursor=None, limit=5)
    assert ids(page.items) == [migrating.id]


# --- references, backlinks and lookup ----------------------------------------------------------------


def test_references_and_backlinks_resolve_in_the_organisation_and_follow_visibility(org):
    roadmap = org.add("Roadmap")  # DOC-1
    secret = org.add("Secret launch plan", type=RecordType.TICKET, prefix="APP",
                     scope=Scope.project(org.id, org.app))  # APP-1
    citing = org.add("Status", "See DOC-1 and APP-1, not NOPE-99 nor DOC-2 (this very doc).")
    assert citing.display_id == DisplayId("DOC", 2)
    risky = org.add("Launch risk", "Blocks APP-1; background in DOC-1.", type=RecordType.RISK, prefix="RSK",
                    scope=Scope.project(org.id, org.app))
    other_org = org.organisation("other")
    org.add("Elsewhere", org_id=other_org)  # DOC-1 of another organisation

    def refs(user, record):
        return ids(org.store.references_readable(user, org.id, record.id))

    def backs(user, record):
        return ids(org.store.backlinks_readable(user, org.id, record.id))

    assert refs(org.alice, citing) == [secret.id, roadmap.id]  # ordered by display ID: APP-1, DOC-1
    assert refs(org.bob, citing) == [roadmap.id]  # APP-1 stays unknown to bob
    assert backs(org.alice, roadmap) == [citing.id, risky.id]  # DOC-2, RSK-1
    assert backs(org.bob, roadmap) == [citing.id]  # the restricted risk citing DOC-1 stays unknown
    assert backs(org.alice, secret) == [citing.id, risky.id]
    assert refs(org.outsider, citing) == [] and backs(org.outsider, roadmap) == []
    org.store.set_references(org.id, citing.id, [DisplayId("DOC", 1), DisplayId("DOC", 1)])
    assert refs(org.alice, citing) == [roadmap.id] and backs(org.alice, secret) == [risky.id]
    org.store.set_references(org.id, citing.id, [])
    assert refs(org.alice, citing) == []
    org.store.set_references(other_org, citing.id, [DisplayId("DOC", 1)])  # not this organisation's record
    assert refs(org.alice, citing) == []


def test_references_resolve_when_set_and_a_call_naming_another_organisation_changes_nothing(org):
    citing = org.add("Plan", "Depends on DOC-2.")  # DOC-1, citing a number not handed out yet
    later = org.add("Later")  # DOC-2

    def refs():
        return ids(org.store.references_readable(org.admin, org.id, citing.id))

    assert refs() == []  # kept out when set, not picked up by a record that appears afterwards
    org.store.set_references(org.id, citing.id, [DisplayId("DOC", 2)])
    assert refs() == [later.id]
    org.store.set_references(org.organisation("other"), citing.id, [])  # not that organisation's record
    assert refs() == [later.id]
    assert ids(org.store.backlinks_readable(org.admin, org.id, later.id)) == [citing.id]


def test_a_record_citing_a_restricted_ticket_reveals_nothing_about_it(org):
    org.add("Filler")
    tickets = [org.add(f"Ticket {i}", type=RecordType.TICKET, prefix="APP", scope=Scope.project(org.id, org.app))
               for i in range(7)]
    app7 = tickets[-1]
    assert str(app7.display_id) == "APP-7"
    citing = org.add("Weekly notes", "Blocked by APP-7, see there.")
    for reader, sees in ((org.alice, True), (org.bob, False)):
        assert (ids(org.store.references_readable(reader, org.id, citing.id)) == [app7.id]) is sees
        assert (org.store.readable_by_display_id(reader, org.id, DisplayId("APP", 7)) is not None) is sees
        assert (ids(org.store.lookup_readable(reader, org.id, "APP-7", limit=5)) == [app7.id]) is sees
        assert bool(org.store.lookup_readable(reader, org.id, "Ticket", limit=50)) is sees
        assert (org.store.count_readable(reader, org.id, RecordQuery(project_id=org.app)) == 7) is sees
        assert bool(org.store.search_readable(reader, org.id, "ticket", RecordQuery(), cursor=None,
                                              limit=5).items) is sees
    # bob can read the citing record, but even its backlink list of APP-7 only ever holds what he reads
    assert ids(org.store.backlinks_readable(org.bob, org.id, app7.id)) == [citing.id]
    assert ids(org.store.backlinks_readable(org.bob, org.id, citing.id)) == []


def test_lookup_by_display_id_or_literal_title_prefix(org):
    org.add("100% done")
    org.add("100 items")
    under = org.add("a_b plan")
    org.add("axb plan")
    slash = org.add("back\\slash")
    covid = org.add("COVID-19 response")
    doc3 = org.store.readable_by_display_id(org.admin, org.id, DisplayId("DOC", 3))

    def titles(text, limit=50):
        return [s.title for s in org.store.lookup_readable(org.bob, org.id, text, limit=limit)]

    assert titles("100%") == ["100% done"]
    assert titles("100") == ["100 items", "100% done"]  # by title
    assert titles("A_") == [under.title]
    assert titles("back\\") == [slash.title]
    assert titles("doc-3") == [doc3.title]  # display IDs are matched case-insensitively
    assert titles("COVID-19") == [covid.title]  # looks like a display ID, names no record: title prefix
    assert titles("", limit=2) == ["100 items", "100% done"]
    assert titles("zzz") == []
    with pytest.raises(InvalidInput):
        org.store.lookup_readable(org.bob, org.id, "x", limit=0)


def test_lookup_of_a_bare_prefix_lists_that_prefixs_readable_records_highest_number_first(org):
    """What the editor's reference completion asks for when someone types ``DOC-`` (issue 18)."""
    first, second = org.add("Guide"), org.add("Another page")
    org.add("DOC- naming rules", type=RecordType.TICKET, prefix="TKT")  # a title that starts with the text
    hidden = [org.add(f"Ticket {i}", type=RecordType.TICKET, prefix="APP", scope=Scope.project(org.id, org.app))
              for i in range(2)]

    def found(reader, text):
        return [str(s.display_id) for s in org.store.lookup_readable(reader, org.id, text, limit=50)]

    assert found(org.bob, "doc-") == [str(second.display_id), str(first.display_id), "TKT-1"]
    assert found(org.bob, "APP-") == [] and found(org.alice, "app-") == [str(h.display_id) for h in reversed(hidden)]
    assert found(org.bob, "DOC-1") == [str(first.display_id)]  # with a number: the exact match, as before
    assert found(org.bob, "D-") == []  # too short for a prefix: a title prefix, matching nothing


# --- concurrency ----------------------------------------------------------------------------------------


def test_numbers_are_gap_free_and_unique_when_raced_with_rollbacks(store_engine):
    """Postgres-only: racing real transactions (the fake is single-threaded and has no rollback)."""
    with store_engine.begin() as setup:
        org_id = PgDirectory(setup).add_organisation("race", WorkflowMode.ORGANIZATION).id
    start = threading.Barrier(THREADS)
    committed: list[int] = []
    errors: list[BaseException] = []

    def allocate(i: int) -> None:
        try:
            with store_engine.connect() as conn:
                transaction = conn.begin()
                start.wait(timeout=30)
                store = PgRecordStore(conn)
                number = store.allocate_number(org_id, "DOC")
                store.add(NewRecord(org_id, RecordType.DOC, "DOC", Scope.organisation(org_id), f"r{i}", "", "active",
                                    None, {}), number)
                time.sleep(0.005)  # hold the sequence row's lock so that others queue behind it
                if i % 3 == 0:
                    transaction.rollback()  # its number must go back, not leave a gap
                else:
                    transaction.commit()
                    committed.append(number)
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=allocate, args=(i,)) for i in range(THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        k = THREADS - len(range(0, THREADS, 3))
        assert sorted(committed) == list(range(1, k + 1))
        with store_engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT number FROM records WHERE organisation_id = :o ORDER BY number"),
                                  {"o": org_id}).scalars().all()
            last = conn.execute(sa.text("SELECT last_number FROM record_sequences WHERE organisation_id = :o"),
                                {"o": org_id}).scalar_one()
        assert stored == list(range(1, k + 1)) and last == k
    finally:
        with store_engine.begin() as cleanup:
            cleanup.execute(sa.text("DELETE FROM organisations WHERE id = :o"), {"o": org_id})
