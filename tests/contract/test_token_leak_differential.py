"""Differential leak test of personal access tokens (issue 15) on a real PostgreSQL: a token never reads more
than its user, and an organisation-restricted token nothing outside its organisation.

The random worlds of test_visibility_differential (organisations, memberships, deactivated users, groups,
open/restricted projects, direct and group grants) with the citing records of test_records_leak. Every user
gets a session and personal access tokens: unrestricted read-only and read-write ones, and one restricted to
each organisation of the world (to one they are no member of too: a membership removed after the token was
made). Then every read path of ``RecordUseCases`` — the same use cases the JSON API and the MCP server call —
runs through ``Transactions.acting_as`` once with the session and once with each token, and must answer the
same: the same records, pages, counts and summaries, or the same refusal. A token restricted to another
organisation answers 404 there, as for a non-member. Creating a record through a read-write token is allowed
exactly where the session may (same answer), through a read-only token never. Random revocations follow and
everything is compared again on the very next statements.

``STATS`` counts worlds, (credential, path) comparisons and disagreements.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.test_records_leak import EPOCH, Facts
from tests.contract.test_snapshot_leak import stores_on
from tests.contract.test_visibility_differential import REVOCATIONS, World, load, revoke, worlds
from tests.suite_figures import say
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.records import PgRecordStore
from tow_core.access_tokens import NewToken, TokenAccess
from tow_core.errors import NotAuthenticated, TowError
from tow_core.identity import Session
from tow_core.records import DisplayId, RecordType
from tow_core.unit_of_work import SessionCredential, Stores, TokenCredential, Transactions
from tow_core.use_cases.records import RecordUseCases

STATS: dict = {"worlds": 0, "comparisons": 0, "disagreements": 0}
PAGE = 3  # small, so that lists span several pages


@pytest.fixture(scope="module")
def token_leak_engine(embedded_postgres, request):
    embedded_postgres.ensure_database("token_leak")
    engine = create_engine(embedded_postgres.url("token_leak"), PoolOptions(pool_size=1, max_overflow=0))
    PgSchemaMigrator(engine).upgrade()
    with engine.begin() as conn:  # ``load`` also fills this probe table; unused here
        conn.execute(sa.text(
            "CREATE TABLE IF NOT EXISTS probe_records (id bigint PRIMARY KEY, organisation_id bigint NOT NULL, "
            "scope_kind text NOT NULL, scope_ref bigint NOT NULL)"
        ))
    yield engine
    engine.dispose()
    if STATS["worlds"]:
        say(request.config, f"token leak differential: {STATS['worlds']} worlds, {STATS['comparisons']} "
        f"(credential, path) comparisons, {STATS['disagreements']} disagreements")


def transactions_on(conn: sa.Connection) -> Transactions:
    """The real stores; each unit of work a savepoint of the world's transaction."""

    @contextmanager
    def unit_of_work() -> Iterator[Stores]:
        with conn.begin_nested():
            yield stores_on(conn)

    return Transactions(unit_of_work, lambda: EPOCH)


def _hash(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


class Credentials:
    """Per user: the session and the tokens, as their front doors would hand them to a use case."""

    def __init__(self, conn: sa.Connection, world: World) -> None:
        stores = stores_on(conn)
        self.session: dict[int, SessionCredential] = {}
        self.tokens: dict[int, list[tuple[str, int | None, TokenAccess]]] = {}
        for user in world.active:
            stores.directory.add_session(Session(_hash(f"session {user}"), user, None, EPOCH + timedelta(days=1)))
            self.session[user] = SessionCredential(_hash(f"session {user}"))
            self.tokens[user] = []
            for org, access in [(None, TokenAccess.READ), (None, TokenAccess.READ_WRITE),
                                *((o, TokenAccess.READ) for o in world.orgs)]:
                label = f"token {user} {org} {access.value}"
                stores.tokens.add_token(user, _hash(label), NewToken(label, 30, access, org), prefix="tow_pat_x",
                                        now=EPOCH - timedelta(days=1), expires_at=EPOCH + timedelta(days=29))
                self.tokens[user].append((_hash(label), org, access))


def outcome(call) -> object:
    """What a read answered: its value, or the refusal a client would see (401 is one answer for a session and
    a token alike, ``not_authenticated`` / ``invalid_token``)."""
    try:
        return ("ok", call())
    except NotAuthenticated:
        return ("refused", "not_authenticated")
    except TowError as exc:
        return ("refused", exc.code)


def walk(fetch) -> list:
    """Every page's items (a search's hits) in order."""
    found, cursor = [], None
    while True:
        page = fetch(cursor)
        found += list(getattr(page, "items", None) or getattr(page, "hits", ()))
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def reads(records: RecordUseCases, facts: Facts, org: int, credential) -> Iterator[tuple[str, object]]:
    world = facts.world
    yield "list", outcome(lambda: walk(lambda c: records.list_records(credential, org, cursor=c, limit=PAGE)))
    yield "count", outcome(lambda: records.count(credential, org))
    yield "search", outcome(lambda: walk(lambda c: records.search(credential, org, "zebra", cursor=c,
                                                                  limit=PAGE)))
    yield "lookup", outcome(lambda: records.lookup(credential, org, "alpha", limit=1000))
    for project, (p_org, _) in world.projects.items():
        if p_org == org:
            yield f"list P{project}", outcome(lambda p=project: records.list_records(credential, org,
                                                                                      project=f"P{p}", limit=1000))
    for r in world.records:
        display = DisplayId("DOC", r)
        yield f"get DOC-{r}", outcome(lambda d=display: records.get(credential, org, d))
        yield f"backlinks DOC-{r}", outcome(lambda d=display: records.backlinks(credential, org, d))
        yield f"references DOC-{r}", outcome(lambda d=display: records.references(credential, org, d))


def expect(got, want, context: str) -> None:
    STATS["comparisons"] += 1
    if got != want:
        STATS["disagreements"] += 1
    assert got == want, f"{context}: token answered {got}, the session {want}"


def compare(records: RecordUseCases, facts: Facts, credentials: Credentials) -> None:
    world = facts.world
    for user in world.active:
        session = credentials.session[user]
        for org in world.orgs:
            by_session = dict(reads(records, facts, org, session))
            not_member = ("refused", "not_authenticated" if not world.active[user] else "not_found")
            for token_hash, restricted_to, access in credentials.tokens[user]:
                token = TokenCredential(token_hash, writes=False)
                for path, got in reads(records, facts, org, token):
                    want = by_session[path] if restricted_to in (None, org) else not_member
                    expect(got, want, f"user {user} org {org} token({restricted_to}, {access.value}) {path}")


def make_room_for_new_records(conn: sa.Connection, world: World) -> None:
    """The world's records took ids and DOC numbers by hand: new ones are numbered after them."""
    conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('records', 'id'), 100000)"))
    conn.execute(sa.text("INSERT INTO record_sequences (organisation_id, prefix, last_number) VALUES (:o, 'DOC', 1000)"),
                 [{"o": o} for o in world.orgs])


def compare_writes(conn: sa.Connection, records: RecordUseCases, world: World, credentials: Credentials) -> None:
    """Creating through a read-write token answers as the session does; a read-only token is always refused
    (before anything else for an active user). Each attempt is rolled back."""
    for user in world.active:
        for org in world.orgs:
            choices = [("organisation", None), *(("project", p) for p, (o, _) in world.projects.items() if o == org)]
            for scope in choices:
                attempts = {}
                for name, credential in [("session", credentials.session[user]),
                                         *((f"{access.value} token", TokenCredential(h, writes=True))
                                           for h, restricted_to, access in credentials.tokens[user]
                                           if restricted_to is None)]:
                    savepoint = conn.begin_nested()
                    try:
                        attempts[name] = outcome(lambda c=credential, s=scope, o=org: records.create(
                            c, o, record_type=RecordType.DOC, scope=s, title="written through").scope)
                    finally:
                        savepoint.rollback()
                context = f"user {user} creates in org {org} scope {scope}"
                expect(attempts["read_write token"], attempts["session"], context)
                refused = "not_authenticated" if not world.active[user] else "token_read_only"
                expect(attempts["read token"], ("refused", refused), context)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(world=worlds(), revocations=REVOCATIONS, data=st.data())
def test_a_token_reads_and_writes_exactly_as_its_users_session_within_its_organisation(
        token_leak_engine, world: World, revocations, data):
    facts = Facts(world, data)
    with token_leak_engine.connect() as conn:
        transaction = conn.begin()
        try:
            load(world, conn)
            facts.insert(conn, PgRecordStore(conn))
            make_room_for_new_records(conn, world)
            credentials = Credentials(conn, world)
            records = RecordUseCases(transactions_on(conn))
            compare(records, facts, credentials)
            compare_writes(conn, records, world, credentials)
            for kind, pick in revocations:
                revoke(world, conn, kind, pick)
            compare(records, facts, credentials)  # the very next statements see every revocation
            compare_writes(conn, records, world, credentials)
            STATS["worlds"] += 1
        finally:
            transaction.rollback()
