"""Differential property test: the SQL visibility filter equals the pure policy on random worlds.

Hypothesis builds worlds (organisations, users with several memberships, deactivated users, groups
whose members may or may not belong to the organisation, open/restricted projects, direct and group
grants, records in all four scopes), loads each into PostgreSQL inside a transaction, and compares,
for every (user, record) pair, ``visible_predicate`` (SQL) with ``can_read_scope`` /
``can_write_scope`` (pure) — both directions. Then it applies random revocations (grant removed,
user removed from group, membership removed, project switched to restricted, user deactivated) to
both and compares again on the very next query. ``--nightly`` runs many more worlds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tow_adapters.postgres.visibility import visible_predicate
from tow_core.access import (
    OrgRole,
    Principal,
    ProjectAccess,
    ProjectRole,
    Scope,
    ScopeKind,
    Visibility,
    can_read_scope,
    can_write_scope,
)
from tow_http.composition import Container
from tow_http.config import load_config

STATS = {"worlds": 0, "pairs": 0, "disagreements": 0}


@dataclass
class World:
    orgs: list[int]
    active: dict[int, bool]  # user id -> active
    memberships: dict[tuple[int, int], OrgRole]  # (org, user) -> role
    groups: dict[int, int]  # group id -> org
    group_members: set[tuple[int, int]]  # (group, user)
    projects: dict[int, tuple[int, Visibility]]  # project id -> (org, visibility)
    grants: dict[tuple[int, str, int], ProjectRole]  # (project, "user"|"group", id) -> role
    records: dict[int, Scope] = field(default_factory=dict)

    def principal(self, user: int) -> Principal:
        my_groups = {g for (g, u) in self.group_members if u == user}
        group_roles: dict[int, list[ProjectRole]] = {}
        for (project, kind, holder), role in self.grants.items():
            if kind == "group" and holder in my_groups and self.groups[holder] == self.projects[project][0]:
                group_roles.setdefault(project, []).append(role)
        return Principal.build(
            user,
            is_active=self.active[user],
            org_roles={org: role for (org, u), role in self.memberships.items() if u == user},
            group_ids=my_groups,
            direct_grants={p: r for (p, kind, holder), r in self.grants.items() if kind == "user" and holder == user},
            group_grants={p: ProjectRole.highest(roles) for p, roles in group_roles.items()},
        )

    def project_access(self, scope: Scope) -> ProjectAccess | None:
        if scope.kind is not ScopeKind.PROJECT:
            return None
        org, visibility = self.projects[scope.ref_id]
        return ProjectAccess(id=scope.ref_id, organisation_id=org, visibility=visibility)


@st.composite
def worlds(draw) -> World:
    orgs = list(range(1, draw(st.integers(1, 3)) + 1))
    users = list(range(1, draw(st.integers(1, 6)) + 1))
    active = {u: draw(st.booleans()) or draw(st.booleans()) for u in users}  # ~75% active
    memberships = {}
    for org in orgs:
        for user in users:
            role = draw(st.sampled_from([None, None, *OrgRole]))
            if role is not None:
                memberships[(org, user)] = role
    groups = {g: draw(st.sampled_from(orgs)) for g in range(1, draw(st.integers(0, 4)) + 1)}
    group_members = {(g, u) for g in groups for u in users if draw(st.booleans())}
    projects = {p: (draw(st.sampled_from(orgs)), draw(st.sampled_from(list(Visibility))))
                for p in range(1, draw(st.integers(0, 4)) + 1)}
    grants = {}
    for project, (org, _) in projects.items():
        holders = [("user", u) for u in users] + [("group", g) for g, g_org in groups.items() if g_org == org]
        for kind, holder in holders:
            role = draw(st.sampled_from([None, None, *ProjectRole]))
            if role is not None:
                grants[(project, kind, holder)] = role
    world = World(orgs, active, memberships, groups, group_members, projects, grants)
    scopes = [Scope.organisation(o) for o in orgs]
    scopes += [Scope.group(org, g) for g, org in groups.items()]
    scopes += [Scope.project(org, p) for p, (org, _) in projects.items()]
    scopes += [Scope.private(o, u) for o in orgs for u in users]
    for record_id in range(1, draw(st.integers(1, 16)) + 1):
        world.records[record_id] = draw(st.sampled_from(scopes))
    return world


REVOCATIONS = st.lists(
    st.tuples(st.sampled_from(["grant", "group_member", "membership", "restrict", "deactivate"]), st.integers(0, 99)),
    min_size=1,
    max_size=4,
)


def revoke(world: World, conn: sa.Connection, kind: str, pick: int) -> None:
    """Apply one revocation to the world model and the database alike."""

    def choose(items):
        items = sorted(items)
        return items[pick % len(items)] if items else None

    if kind == "grant" and (key := choose(world.grants)):
        del world.grants[key]
        project, holder_kind, holder = key
        conn.execute(sa.text(f"DELETE FROM project_grants WHERE project_id = :p AND {holder_kind}_id = :h"),
                     {"p": project, "h": holder})
    elif kind == "group_member" and (key := choose(world.group_members)):
        world.group_members.discard(key)
        conn.execute(sa.text("DELETE FROM group_members WHERE group_id = :g AND user_id = :u"),
                     {"g": key[0], "u": key[1]})
    elif kind == "membership" and (key := choose(world.memberships)):
        del world.memberships[key]
        conn.execute(sa.text("DELETE FROM memberships WHERE organisation_id = :o AND user_id = :u"),
                     {"o": key[0], "u": key[1]})
    elif kind == "restrict" and (project := choose(world.projects)):
        world.projects[project] = (world.projects[project][0], Visibility.RESTRICTED)
        conn.execute(sa.text("UPDATE projects SET visibility = 'restricted' WHERE id = :p"), {"p": project})
    elif kind == "deactivate" and (user := choose(u for u, a in world.active.items() if a)):
        world.active[user] = False
        conn.execute(sa.text("UPDATE users SET is_active = false WHERE id = :u"), {"u": user})


def load(world: World, conn: sa.Connection) -> None:
    def insert(sql: str, rows: list[dict]) -> None:
        if rows:
            conn.execute(sa.text(sql), rows)

    insert("INSERT INTO organisations (id, name) VALUES (:id, 'org')", [{"id": o} for o in world.orgs])
    insert("INSERT INTO users (id, email, display_name, is_active) VALUES (:id, :email, 'u', :active)",
           [{"id": u, "email": f"u{u}@example.com", "active": a} for u, a in world.active.items()])
    insert("INSERT INTO memberships (organisation_id, user_id, role) VALUES (:o, :u, :r)",
           [{"o": o, "u": u, "r": r.value} for (o, u), r in world.memberships.items()])
    insert("INSERT INTO groups (id, organisation_id, name) VALUES (:id, :o, 'g' || :id)",
           [{"id": g, "o": o} for g, o in world.groups.items()])
    insert("INSERT INTO group_members (group_id, user_id) VALUES (:g, :u)",
           [{"g": g, "u": u} for g, u in world.group_members])
    insert("INSERT INTO projects (id, organisation_id, key, name, visibility) VALUES (:id, :o, 'P' || :id, 'p', :v)",
           [{"id": p, "o": o, "v": v.value} for p, (o, v) in world.projects.items()])
    insert("INSERT INTO project_grants (project_id, user_id, group_id, role) VALUES (:p, :u, :g, :r)",
           [{"p": p, "u": h if k == "user" else None, "g": h if k == "group" else None, "r": r.value}
            for (p, k, h), r in world.grants.items()])
    insert("INSERT INTO probe_records (id, organisation_id, scope_kind, scope_ref) VALUES (:id, :o, :k, :ref)",
           [{"id": i, "o": s.organisation_id, "k": s.kind.value, "ref": s.ref_id} for i, s in world.records.items()])


PROBE_TABLE = ("CREATE TABLE IF NOT EXISTS probe_records (id bigint PRIMARY KEY, organisation_id bigint NOT NULL, "
               "scope_kind text NOT NULL, scope_ref bigint NOT NULL)")
READABLE = sa.text(f"SELECT r.id FROM probe_records r WHERE {visible_predicate('r')}")
WRITABLE = sa.text(f"SELECT r.id FROM probe_records r WHERE {visible_predicate('r', write=True)}")
# The same rules asked for every user at once ("who may read / write this record": notifications, mentions).
_USERS = "unnest(CAST(:users AS bigint[])) AS c(user_id)"
READERS = sa.text(f"SELECT r.id, c.user_id FROM probe_records r, {_USERS} "
                  f"WHERE {visible_predicate('r', principal='c.user_id')}")
WRITERS = sa.text(f"SELECT r.id, c.user_id FROM probe_records r, {_USERS} "
                  f"WHERE {visible_predicate('r', write=True, principal='c.user_id')}")


def compare(world: World, conn: sa.Connection) -> None:
    for user in world.active:
        principal = world.principal(user)
        for query, decide in ((READABLE, can_read_scope), (WRITABLE, can_write_scope)):
            from_sql = set(conn.execute(query, {"principal_id": user}).scalars())
            from_policy = {
                rid for rid, scope in world.records.items() if decide(principal, scope, world.project_access(scope))
            }
            STATS["pairs"] += len(world.records)
            STATS["disagreements"] += len(from_sql ^ from_policy)
            assert from_sql == from_policy, (
                f"user {user} ({'read' if decide is can_read_scope else 'write'}): "
                f"SQL only {sorted(from_sql - from_policy)}, policy only {sorted(from_policy - from_sql)}"
            )
    for query, decide in ((READERS, can_read_scope), (WRITERS, can_write_scope)):
        pairs = {(r, u) for r, u in conn.execute(query, {"users": list(world.active)}).all()}
        expected = {(rid, user) for user in world.active for rid, scope in world.records.items()
                    if decide(world.principal(user), scope, world.project_access(scope))}
        STATS["pairs"] += len(world.records) * len(world.active)
        STATS["disagreements"] += len(pairs ^ expected)
        assert pairs == expected, (f"all users at once ({decide.__name__}): SQL only {sorted(pairs - expected)}, "
                                   f"policy only {sorted(expected - pairs)}")


@pytest.fixture(scope="module")
def migrated_engine(embedded_postgres, tmp_path_factory):
    embedded_postgres.ensure_database("differential")
    config_dir = tmp_path_factory.mktemp("cfg")
    (config_dir / "tow.yaml").write_text("")
    config = load_config(config_dir / "tow.yaml", environ={"APP_SECRET": "d" * 40})
    container = Container(config=config, database_url=embedded_postgres.url("differential"))
    container.schema_migrator().upgrade()
    engine = container.engine()
    with engine.begin() as conn:
        conn.execute(sa.text(PROBE_TABLE))
        conn.execute(sa.text(
            "CREATE INDEX IF NOT EXISTS probe_records_scope_idx "
            "ON probe_records (organisation_id, scope_kind, scope_ref)"
        ))
    yield engine
    engine.dispose()


def world_engine(embedded_postgres, database: str) -> sa.Engine:
    """A migrated database of its own for a leak suite over these worlds, with the probe table ``load`` fills."""
    from tow_adapters.postgres.engine import PoolOptions, create_engine
    from tow_adapters.postgres.migrator import PgSchemaMigrator

    embedded_postgres.ensure_database(database)
    engine = create_engine(embedded_postgres.url(database), PoolOptions(pool_size=1, max_overflow=0))
    PgSchemaMigrator(engine).upgrade()
    with engine.begin() as conn:
        conn.execute(sa.text(PROBE_TABLE))
    return engine


def check_world(engine: sa.Engine, world: World, revocations) -> None:
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            load(world, conn)
            compare(world, conn)
            for kind, pick in revocations:
                revoke(world, conn, kind, pick)
                compare(world, conn)  # the very next query sees the revocation
            STATS["worlds"] += 1
        finally:
            transaction.rollback()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(world=worlds(), revocations=REVOCATIONS)
def test_sql_filter_equals_pure_policy_on_random_worlds(migrated_engine, world, revocations):
    check_world(migrated_engine, world, revocations)


@pytest.mark.nightly
def test_sql_filter_equals_pure_policy_on_many_worlds(migrated_engine, request):
    if not request.config.getoption("--nightly"):
        pytest.skip("nightly run: make nightly")

    @settings(max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(world=worlds(), revocations=REVOCATIONS)
    def run(world, revocations):
        check_world(migrated_engine, world, revocations)

    run()


# --- semantic and hybrid search: nothing unreadable, ever, and nothing readable missing ------------------

SEARCH_STATS = {"worlds": 0, "searches": 0, "leaks": 0, "missing": 0}
SEARCH_DIM = 16
WORDS = ["alpha", "beta", "gamma", "delta"]


@pytest.fixture(scope="module")
def search_space(migrated_engine):
    from tow_adapters.postgres.embeddings import PgEmbeddingSpaces

    return PgEmbeddingSpaces(migrated_engine).record_first("bag-of-words", SEARCH_DIM)


def load_searchable(world: World, conn: sa.Connection, space) -> None:
    """The world's records as real records with one vector each (titles from a four-word vocabulary)."""
    from tests.semantic_vectors import bag_of_words_vector
    from tow_adapters.postgres.embeddings import vector_literal

    for record_id, scope in world.records.items():
        title = f"{WORDS[record_id % 4]} {WORDS[(record_id // 4) % 4]}"
        conn.execute(sa.text(
            "INSERT INTO records (id, organisation_id, type, prefix, number, scope_kind, scope_ref, title, status) "
            "VALUES (:id, :org, 'decision', 'DEC', :id, :kind, :ref, :title, 'active')"),
            {"id": record_id, "org": scope.organisation_id, "kind": scope.kind.value, "ref": scope.ref_id,
             "title": title})
        conn.execute(sa.text(
            "INSERT INTO embedding_chunks (space_id, record_id, chunk, content_hash, embedding) "
            "VALUES (:space, :id, 0, 'h', CAST(:v AS vector))"),
            {"space": space.id, "id": record_id, "v": vector_literal(bag_of_words_vector(title, SEARCH_DIM))})


def compare_search(world: World, conn: sa.Connection, space) -> None:
    """For every user and organisation: semantic search with k ≥ every record (index path and exact
    path) answers exactly the readable records; hybrid search answers exactly them too."""
    from tests.fake_embeddings import FakeEmbeddingModel
    from tests.semantic_vectors import bag_of_words_vector
    from tow_adapters.postgres.directory import PgDirectory
    from tow_adapters.postgres.embeddings import PgSemanticIndex
    from tow_adapters.postgres.records import PgRecordStore
    from tow_core import semantic_search
    from tow_core.knowledge import Workspace
    from tow_core.records import RecordQuery

    embedder = FakeEmbeddingModel(SEARCH_DIM, "bag-of-words")
    k = len(world.records)
    for user in world.active:
        principal = world.principal(user)
        for org in world.orgs:
            readable = {rid for rid, scope in world.records.items() if scope.organisation_id == org
                        and can_read_scope(principal, scope, world.project_access(scope))}
            answers = []
            for threshold in (0, 10**6):  # the index path (with its fallback) and the exact path
                index = PgSemanticIndex(conn, exact_scan_below=threshold)
                hits = index.nearest_readable(user, org, space, bag_of_words_vector("alpha", SEARCH_DIM), "alpha",
                                              RecordQuery(), k)
                answers.append({h.summary.id for h in hits})
            if principal.is_active and org in principal.org_roles:
                ws = Workspace(PgRecordStore(conn), PgDirectory(conn), principal, org)
                result = semantic_search.search(ws, "alpha", RecordQuery(), mode=semantic_search.SearchMode.HYBRID,
                                                cursor=None, limit=200, embedder=embedder,
                                                index=PgSemanticIndex(conn))
                assert result.mode is semantic_search.SearchMode.HYBRID
                answers.append({h.summary.id for h in result.hits})
            for found in answers:
                SEARCH_STATS["searches"] += 1
                SEARCH_STATS["leaks"] += len(found - readable)
                SEARCH_STATS["missing"] += len(readable - found)
                assert found == readable, f"user {user}, org {org}: leaked {found - readable}, missing {readable - found}"


MOVES = st.lists(st.tuples(st.integers(0, 99), st.integers(0, 99)), max_size=3)


def move(world: World, conn: sa.Connection, record_pick: int, scope_pick: int) -> None:
    """Move one record to another scope of its organisation, in the world model and the database alike
    (the way ``PgRecordStore.save`` does: an UPDATE of the record's scope columns, nothing else)."""
    record_id = sorted(world.records)[record_pick % len(world.records)]
    org = world.records[record_id].organisation_id
    scopes = [Scope.organisation(org)]
    scopes += [Scope.group(org, g) for g, g_org in sorted(world.groups.items()) if g_org == org]
    scopes += [Scope.project(org, p) for p, (p_org, _) in sorted(world.projects.items()) if p_org == org]
    scopes += [Scope.private(org, u) for u in sorted(world.active)]
    world.records[record_id] = scope = scopes[scope_pick % len(scopes)]
    conn.execute(sa.text("UPDATE records SET scope_kind = :kind, scope_ref = :ref WHERE id = :id"),
                 {"kind": scope.kind.value, "ref": scope.ref_id, "id": record_id})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(world=worlds(), revocations=REVOCATIONS, moves=MOVES)
def test_semantic_and_hybrid_search_return_exactly_the_readable_records(migrated_engine, search_space, world,
                                                                       revocations, moves):
    """Revocations and record moves (the chunks carry a copy of their record's scope, kept by triggers):
    the very next search sees either."""
    with migrated_engine.connect() as conn:
        transaction = conn.begin()
        try:
            load(world, conn)
            load_searchable(world, conn, search_space)
            compare_search(world, conn, search_space)
            for kind, pick in revocations:
                revoke(world, conn, kind, pick)
                compare_search(world, conn, search_space)  # the very next search sees the revocation
            for record_pick, scope_pick in moves:
                move(world, conn, record_pick, scope_pick)
                compare_search(world, conn, search_space)  # ... and the move
            SEARCH_STATS["worlds"] += 1
        finally:
            transaction.rollback()
