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

The MCP server's reading tools (search, get_record, list_records, backlinks) join in
(``test_the_mcp_tools_return_exactly_what_the_policy_lets_the_tokens_user_read``): the real ``McpDoor`` and SDK
server over the same use cases, called through the official SDK's streamable-HTTP client (in process, over
httpx's ASGI transport) with each user's unrestricted and organisation-restricted tokens, are compared with the
pure policy (``tow_core.access.can_read_scope`` over the world model): never a record it denies, every record it
allows, and the refusal a non-member or a deactivated user gets — before and after random revocations.

``STATS`` counts worlds, (credential, path) comparisons and disagreements; ``MCP_STATS`` the same for MCP.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx2
import msgspec
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.contract.test_records_leak import EPOCH, Facts
from tests.contract.test_snapshot_leak import stores_on
from tests.contract.test_visibility_differential import REVOCATIONS, World, load, revoke, world_engine, worlds
from tests.suite_figures import say
from tow_adapters.postgres.records import PgRecordStore
from tow_core.access import can_read_scope
from tow_core.access_tokens import NewToken, TokenAccess, TokenPolicy
from tow_core.errors import NotAuthenticated, TowError
from tow_core.identity import Session
from tow_core.records import DisplayId, RecordType
from tow_core.unit_of_work import SessionCredential, Stores, TokenCredential, Transactions
from tow_core.use_cases.memory import MemoryReviewUseCases
from tow_core.use_cases.records import RecordUseCases
from tow_core.use_cases.tokens import TokenUseCases
from tow_http.config import McpSettings
from tow_http.context import PersonalAccessTokenSecrets
from tow_http.mcp.door import McpDoor
from tow_http.mcp.tools import build_mcp_server

STATS: dict = {"worlds": 0, "comparisons": 0, "disagreements": 0}
MCP_STATS: dict = {"worlds": 0, "comparisons": 0, "disagreements": 0}
PAGE = 3  # small, so that lists span several pages


@pytest.fixture(scope="module")
def token_leak_engine(embedded_postgres, request):
    engine = world_engine(embedded_postgres, "token_leak")
    yield engine
    engine.dispose()
    if STATS["worlds"]:
        say(request.config, f"token leak differential: {STATS['worlds']} worlds, {STATS['comparisons']} "
        f"(credential, path) comparisons, {STATS['disagreements']} disagreements")
    if MCP_STATS["worlds"]:
        say(request.config, f"token leak differential over MCP: {MCP_STATS['worlds']} worlds, "
            f"{MCP_STATS['comparisons']} (token, tool call) comparisons with the policy, "
            f"{MCP_STATS['disagreements']} disagreements")


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
        self.secrets: dict[str, str] = {}  # token hash -> secret
        for user in world.active:
            stores.directory.add_session(Session(_hash(f"session {user}"), user, None, EPOCH + timedelta(days=1)))
            self.session[user] = SessionCredential(_hash(f"session {user}"))
            self.tokens[user] = []
            for org, access in [(None, TokenAccess.READ), (None, TokenAccess.READ_WRITE),
                                *((o, TokenAccess.READ) for o in world.orgs)]:
                label = f"token {user} {org} {access.value}"
                self.secrets[_hash(self.secret(label))] = self.secret(label)
                stores.tokens.add_token(user, _hash(self.secret(label)), NewToken(label, 30, access, org),
                                        prefix="tow_pat_x", now=EPOCH - timedelta(days=1),
                                        expires_at=EPOCH + timedelta(days=29))
                self.tokens[user].append((_hash(self.secret(label)), org, access))

    @staticmethod
    def secret(label: str) -> str:
        """The token's secret as a client sends it (its SHA-256 is what is stored, as for a real one)."""
        return "tow_pat_" + label.replace(" ", "_")


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


# --- the MCP server's tools against the policy ----------------------------------------------------------------

MCP_URL = "http://127.0.0.1:8000/api/mcp"
FORBIDDEN = ("refused", "not_found")


def mcp_expect(got, want, context: str) -> None:
    MCP_STATS["comparisons"] += 1
    if got != want:
        MCP_STATS["disagreements"] += 1
    assert got == want, f"MCP {context}: the tool answered {got}, the policy says {want}"


def tool_outcome(result) -> object:
    """A tool's answer as display-ID numbers, or its refusal's code (``code: message``)."""
    if result.is_error:
        text = result.content[0].text
        text = text.split(": ", 1)[1] if text.startswith("Error executing tool") else text
        return ("refused", text.split(":", 1)[0])
    answer = json.loads(result.content[0].text)
    if "items" not in answer:
        return ("ok", int(answer["display_id"].removeprefix("DOC-")))
    return ("ok", {int(item["display_id"].removeprefix("DOC-")) for item in answer["items"]})


class Policy:
    """What the pure policy lets ``user`` read through a token restricted to ``restricted_to`` (None: not)."""

    def __init__(self, facts: Facts, user: int, restricted_to: int | None) -> None:
        world = self.world = facts.world
        self.facts, self.user, self.restricted_to = facts, user, restricted_to
        principal = world.principal(user)
        self.readable = {r for r, s in world.records.items()
                         if can_read_scope(principal, s, world.project_access(s)) and self.reaches(facts.org(r))}

    def reaches(self, org: int) -> bool:
        return self.restricted_to in (None, org) and (org, self.user) in self.world.memberships

    def in_org(self, org: int) -> set[int]:
        return {r for r in self.readable if self.facts.org(r) == org}

    def listing(self, org: int) -> object:
        return ("ok", self.in_org(org)) if self.reaches(org) else FORBIDDEN

    def record(self, org: int, r: int) -> object:
        return ("ok", r) if r in self.in_org(org) else FORBIDDEN

    def backlinks(self, org: int, r: int) -> object:
        if r not in self.in_org(org):
            return FORBIDDEN
        return ("ok", {s for s in self.in_org(org) if r in self.facts.links(s)})


async def mcp_compare(door: McpDoor, facts: Facts, credentials: Credentials) -> None:
    """Each user's unrestricted read token and a token restricted to each organisation, through the SDK client,
    against the policy: every organisation's listing and search, every record by display ID in every
    organisation (one that lives elsewhere is not_found too), and the backlinks of every record of it."""
    world = facts.world
    transport = httpx2.ASGITransport(app=door)
    for user in world.active:
        for token_hash, restricted_to, access in credentials.tokens[user]:
            if access is TokenAccess.READ_WRITE:
                continue
            secret = credentials.secrets[token_hash]
            async with httpx2.AsyncClient(transport=transport, headers={"Authorization": f"Bearer {secret}"},
                                          timeout=30) as http:
                probe = await http.post(MCP_URL, headers={"Accept": "application/json, text/event-stream"}, json={
                    "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "p", "version": "1"}}})
                context = f"user {user} token({restricted_to})"
                mcp_expect(probe.status_code, 200 if world.active[user] else 401, f"{context} initialize")
                if probe.status_code != 200:
                    continue
                async with streamable_http_client(MCP_URL, http_client=http) as (read, write), \
                        ClientSession(read, write) as session:
                    await session.initialize()
                    await mcp_compare_session(session, Policy(facts, user, restricted_to), context)


async def mcp_compare_session(session: ClientSession, policy: Policy, context: str) -> None:
    facts = policy.facts
    for org in facts.world.orgs:
        where = f"{context} org {org}"
        listed = await session.call_tool("list_records", {"organisation_id": org, "limit": 200})
        mcp_expect(tool_outcome(listed), policy.listing(org), f"{where} list_records")
        found = await session.call_tool("search", {"organisation_id": org, "query": "zebra", "limit": 200})
        mcp_expect(tool_outcome(found), policy.listing(org), f"{where} search")
        for r in facts.world.records:
            got = await session.call_tool("get_record", {"organisation_id": org, "display_id": f"DOC-{r}"})
            mcp_expect(tool_outcome(got), policy.record(org, r), f"{where} get_record DOC-{r}")
            if facts.org(r) == org:
                cited = await session.call_tool("backlinks", {"organisation_id": org, "display_id": f"DOC-{r}"})
                mcp_expect(tool_outcome(cited), policy.backlinks(org, r), f"{where} backlinks DOC-{r}")


async def mcp_round(conn: sa.Connection, facts: Facts, credentials: Credentials) -> None:
    transactions = transactions_on(conn)
    tokens = TokenUseCases(transactions, PersonalAccessTokenSecrets(), TokenPolicy())
    door = McpDoor(build_mcp_server(RecordUseCases(transactions), MemoryReviewUseCases(transactions)), tokens,
                   msgspec.convert({}, McpSettings), "http://127.0.0.1:8000")
    async with door.lifespan(None):
        await mcp_compare(door, facts, credentials)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(world=worlds(), revocations=REVOCATIONS, data=st.data())
def test_the_mcp_tools_return_exactly_what_the_policy_lets_the_tokens_user_read(
        token_leak_engine, world: World, revocations, data):
    """The tools run the use cases on a worker thread, one call at a time, each a savepoint of this example's
    transaction (the test thread waits in the event loop meanwhile)."""
    facts = Facts(world, data)
    with token_leak_engine.connect() as conn:
        transaction = conn.begin()
        try:
            load(world, conn)
            facts.insert(conn, PgRecordStore(conn))
            credentials = Credentials(conn, world)
            asyncio.run(mcp_round(conn, facts, credentials))
            for kind, pick in revocations:
                revoke(world, conn, kind, pick)
            asyncio.run(mcp_round(conn, facts, credentials))  # the very next calls see every revocation
            MCP_STATS["worlds"] += 1
        finally:
            transaction.rollback()
