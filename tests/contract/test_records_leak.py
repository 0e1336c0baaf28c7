"""Differential leak test over every PgRecordStore read path (SPEC §2 "One predicate").

The random worlds of test_visibility_differential (organisations, memberships, deactivated users,
groups, open/restricted projects, direct and group grants, records in all four scopes) become real
records: ``DOC-<id>`` titled "alpha record <id>", whose body says "zebra" (1–3 times, so ranks differ
and tie) and cites one or two other records of the world (possibly in another organisation, where the
citation resolves to nothing). Then, for every user and organisation, each path must return exactly
what the pure policy (``can_read_scope``) allows: get by id and by display ID, every page of the list
and of the search (no superset, no short page), the count, the title lookup and the display-ID prefix
lookup (``DOC-``, highest number first), references and backlinks.
Random revocations follow, and everything is checked again on the very next statements.

``LEAK_STATS`` counts the (user, path, record) checks made; each world runs in one rolled-back
transaction.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.test_visibility_differential import REVOCATIONS, World, load, revoke, worlds
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.records import PgRecordStore
from tow_core.access import can_read_scope
from tow_core.records import DisplayId, RecordQuery, RecordType

LEAK_STATS: dict = {"worlds": 0, "checks": 0, "leaks": 0, "by_path": Counter()}

PAGE = 3  # small, so that most lists span several pages
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def leak_engine(embedded_postgres):
    embedded_postgres.ensure_database("records_leak")
    engine = create_engine(embedded_postgres.url("records_leak"), PoolOptions(pool_size=1, max_overflow=0))
    PgSchemaMigrator(engine).upgrade()
    with engine.begin() as conn:
        # ``load`` (shared with the visibility differential) also fills this probe table; unused here.
        conn.execute(sa.text(
            "CREATE TABLE IF NOT EXISTS probe_records (id bigint PRIMARY KEY, organisation_id bigint NOT NULL, "
            "scope_kind text NOT NULL, scope_ref bigint NOT NULL)"
        ))
    yield engine
    engine.dispose()


class Facts:
    """The world's records as stored: citations and timestamps drawn by hypothesis."""

    def __init__(self, world: World, data) -> None:
        ids = sorted(world.records)
        self.world = world
        self.cites = {r: set(data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=2), label=f"cites{r}"))
                      for r in ids}
        self.zebras = {r: data.draw(st.integers(1, 3), label=f"zebras{r}") for r in ids}
        self.age = {r: data.draw(st.integers(0, 3), label=f"age{r}") for r in ids}  # ties on purpose

    def org(self, record_id: int) -> int:
        return self.world.records[record_id].organisation_id

    def links(self, source: int) -> set[int]:
        """Resolved references: same organisation, not itself (DOC-<n> is record n)."""
        return {t for t in self.cites[source] if t != source and self.org(t) == self.org(source)}

    def insert(self, conn: sa.Connection, store: PgRecordStore) -> None:
        conn.execute(sa.text(
            "INSERT INTO records (id, organisation_id, type, prefix, number, scope_kind, scope_ref, title, body, "
            "status, updated_at) VALUES (:id, :o, 'doc', 'DOC', :id, :k, :ref, :title, :body, 'active', :at)"
        ), [{"id": r, "o": s.organisation_id, "k": s.kind.value, "ref": s.ref_id, "title": f"alpha record {r}",
             "body": " ".join(["zebra"] * self.zebras[r] + [f"see DOC-{t}" for t in sorted(self.cites[r])]),
             "at": EPOCH - timedelta(days=self.age[r])} for r, s in self.world.records.items()])
        for r in self.world.records:
            store.set_references(self.org(r), r, [DisplayId("DOC", t) for t in sorted(self.cites[r])])


def tally(path: str, n: int) -> None:
    LEAK_STATS["checks"] += n
    LEAK_STATS["by_path"][path] += n


def expect(path: str, got, want, universe: int, context: str) -> None:
    tally(path, universe)
    if got != want:
        LEAK_STATS["leaks"] += 1
    assert got == want, f"{path} for {context}: got {got}, policy says {want}"


def walk(fetch) -> list[int]:
    """Every page's ids; only the last page may be short, and it has no cursor."""
    found, cursor = [], None
    while True:
        page = fetch(cursor)
        found += [getattr(item, "summary", item).id for item in page.items]
        if page.next_cursor is None:
            return found
        assert len(page.items) == PAGE, "short page before the last"
        cursor = page.next_cursor


def check_user(store: PgRecordStore, facts: Facts, user: int) -> None:
    world = facts.world
    principal = world.principal(user)
    readable = {r for r, s in world.records.items() if can_read_scope(principal, s, world.project_access(s))}
    n = len(world.records)
    for r in world.records:
        got = store.readable(user, facts.org(r), r)
        expect("readable", got is not None, r in readable, 1, f"user {user}, record {r}")
        got = store.readable_by_display_id(user, facts.org(r), DisplayId("DOC", r))
        expect("readable_by_display_id", got is not None, r in readable, 1, f"user {user}, DOC-{r}")
    for org in world.orgs:
        in_org = {r for r in world.records if facts.org(r) == org}
        want = readable & in_org
        context = f"user {user}, organisation {org}"
        listed = walk(lambda c, org=org: store.list_readable(user, org, RecordQuery(), cursor=c, limit=PAGE))
        assert len(listed) == len(set(listed)), f"list repeats a record for {context}"
        expect("list_readable", set(listed), want, n, context)
        expect("count_readable", store.count_readable(user, org, RecordQuery()), len(want), n, context)
        found = walk(lambda c, org=org: store.search_readable(user, org, "zebra", RecordQuery(), cursor=c, limit=PAGE))
        assert len(found) == len(set(found)), f"search repeats a record for {context}"
        expect("search_readable", set(found), want, n, context)
        looked_up = {s.id for s in store.lookup_readable(user, org, "alpha", limit=1000)}
        expect("lookup_readable", looked_up, want, n, context)
        by_prefix = [s.id for s in store.lookup_readable(user, org, "DOC-", limit=1000)]  # the editor's completion
        expect("lookup_readable(prefix)", by_prefix, sorted(want, reverse=True), n, context)
        for r in in_org:
            backlinks = {s.id for s in store.backlinks_readable(user, org, r)}
            references = {s.id for s in store.references_readable(user, org, r)}
            if r in readable:
                expect("backlinks_readable", backlinks, {s for s in want if r in facts.links(s)}, n, f"{context}, {r}")
                expect("references_readable", references, facts.links(r) & want, n, f"{context}, {r}")
            else:  # the caller refuses an unreadable record; even so, nothing unreadable comes back
                expect("backlinks_readable", backlinks - want, set(), n, f"{context}, unreadable {r}")
                expect("references_readable", references - want, set(), n, f"{context}, unreadable {r}")
    for project in world.projects:
        org = world.projects[project][0]
        query = RecordQuery(types=frozenset({RecordType.DOC}), project_id=project)
        want = {r for r in readable if world.records[r].kind.value == "project" and world.records[r].ref_id == project}
        page = store.list_readable(user, org, query, cursor=None, limit=1000)
        expect("list_readable(project)", {x.id for x in page.items}, want, n, f"user {user}, project {project}")


def check(store: PgRecordStore, facts: Facts) -> None:
    for user in facts.world.active:
        check_user(store, facts, user)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(world=worlds(), revocations=REVOCATIONS, data=st.data())
def test_every_record_path_returns_exactly_what_the_policy_allows(leak_engine, world, revocations, data):
    facts = Facts(world, data)
    with leak_engine.connect() as conn:
        transaction = conn.begin()
        try:
            store = PgRecordStore(conn)
            load(world, conn)
            facts.insert(conn, store)
            check(store, facts)
            for kind, pick in revocations:
                revoke(world, conn, kind, pick)
            check(store, facts)  # the very next statements see every revocation
            LEAK_STATS["worlds"] += 1
        finally:
            transaction.rollback()
