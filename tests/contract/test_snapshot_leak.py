"""Leak suite, snapshot generation (issue 14): on random worlds in PostgreSQL, a generated snapshot sends, cites
and pins only records its requester may read, and its scope is never wider than the narrowest source it cites.

Hypothesis builds a world through the real ``PgDirectory`` (members with random roles, groups, open and
restricted projects, user and group grants) and ``PgRecordStore`` (docs and memory in every scope, including
other people's private scopes and another organisation), then a random member asks for a snapshot of all
projects or of a random project, through ``SnapshotUseCases`` and the ``SnapshotRuns`` handler on the real
stores. The scripted model cites a random selection of *every* record in the world, with right, wrong or no
quotes. Checked against the pure policy (``can_read_scope``) for every user of the world:
- the request's ``record_display_ids`` are exactly the records its text carries, all readable by the requester,
  and no unreadable record's words are in it;
- the pinned sources are exactly the cited records that were sent, readable and quoted right;
- everyone who can read the snapshot can read every source it pins (scope ≤ narrowest source), and the
  requester can read it;
- a project the requester cannot read is refused (not found) and nothing is sent.
Each example runs in one transaction that is rolled back. Counts are printed at the end of the module.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fake_reasoning import ScriptedReasoningModel, step
from tow_adapters.postgres.agent_runs import PgAgentRuns
from tow_adapters.postgres.conversations import PgConversations
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.email_outbox import PgEmailOutbox
from tow_adapters.postgres.embeddings import PgSemanticIndex
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.exports import PgExportStore
from tow_adapters.postgres.history import (
    PgDocRevisions,
    PgRecordTree,
    PgTicketActivity,
    PgTicketComments,
    PgTicketLinks,
)
from tow_adapters.postgres.jobs import PgJobQueue
from tow_adapters.postgres.live import PgLiveEvents
from tow_adapters.postgres.memory_diffs import PgMemoryDiffStore
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.notifications import PgNotifications
from tow_adapters.postgres.oidc_identities import PgOidcIdentities
from tow_adapters.postgres.organisation_import import PgOrganisationImport
from tow_adapters.postgres.password_resets import PgPasswordResets
from tow_adapters.postgres.records import PgRecordStore
from tow_adapters.postgres.snapshot_sources import PgSnapshotSources
from tow_adapters.postgres.tokens import PgAccessTokens
from tow_adapters.postgres.uploads import PgUploadRecords
from tow_core.access import OrgRole, ProjectRole, Scope, Visibility, can_read_scope
from tow_core.errors import NotFound
from tow_core.identity import Project, ProjectStatus, Session, WorkflowMode
from tow_core.record_history import RecordKeeping
from tow_core.records import NewRecord, Record, RecordType
from tow_core.unit_of_work import SessionCredential, Stores, Transactions
from tow_core.use_cases.snapshots import SnapshotRuns, SnapshotUseCases

STATS = {"worlds": 0, "generations": 0, "records": 0, "sent": 0, "cited": 0, "pinned": 0, "refused_projects": 0,
         "private_results": 0, "leaks": 0}
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def leak_engine(embedded_postgres):
    embedded_postgres.ensure_database("snapshot_leak")
    engine = create_engine(embedded_postgres.url("snapshot_leak"), PoolOptions(pool_size=2, max_overflow=1))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()
    print(f"\nsnapshot leak suite: {STATS}")


@dataclass
class Plan:
    """A random world, as drawn (ids are indexes until loaded)."""

    roles: list[OrgRole | None]  # per user: role in the organisation (None: not a member)
    groups: list[set[int]]  # per group: member user indexes
    projects: list[Visibility]
    grants: dict[tuple[int, str, int], ProjectRole]  # (project, "user"|"group", index) -> role
    records: list[tuple[str, str, int]]  # (type, scope kind, ref index)
    requester: int
    project: int | None  # index of the project asked for, or None for all projects
    cites: list[tuple[bool, str]] = field(default_factory=list)  # per record: cited?, quote kind


@st.composite
def plans(draw) -> Plan:
    users = draw(st.integers(2, 4))
    roles = [draw(st.sampled_from([None, *OrgRole, OrgRole.MEMBER])) for _ in range(users)]
    requester = draw(st.integers(0, users - 1))
    roles[requester] = roles[requester] or OrgRole.MEMBER
    groups = [{u for u in range(users) if draw(st.booleans())} for _ in range(draw(st.integers(0, 2)))]
    projects = [draw(st.sampled_from(list(Visibility))) for _ in range(draw(st.integers(0, 3)))]
    grants = {}
    for p in range(len(projects)):
        for kind, count in (("user", users), ("group", len(groups))):
            for holder in range(count):
                role = draw(st.sampled_from([None, None, *ProjectRole]))
                if role is not None:
                    grants[(p, kind, holder)] = role
    kinds = ["organisation", "user", "other"] + (["group"] if groups else []) + (["project"] if projects else [])
    records = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(kinds))
        count = {"organisation": 1, "other": 1, "user": users, "group": len(groups), "project": len(projects)}[kind]
        records.append((draw(st.sampled_from(["doc", "memory"])), kind, draw(st.integers(0, count - 1))))
    project = draw(st.one_of(st.none(), st.integers(0, len(projects) - 1))) if projects else None
    cites = [(draw(st.booleans()), draw(st.sampled_from(["none", "right", "wrong"]))) for _ in records]
    return Plan(roles, groups, projects, grants, records, requester, project, cites)


@dataclass
class Loaded:
    org: int
    users: list[int]
    scopes: dict[int, Scope]  # record id -> scope
    records: list[Record]
    project_ids: list[int]


def scope_of(kind: str, ref: int, *, org: int, other: int, users: list[int], groups: list[int],
             projects: list[int]) -> Scope:
    if kind == "organisation":
        return Scope.organisation(org)
    if kind == "other":
        return Scope.organisation(other)
    if kind == "user":
        return Scope.private(org, users[ref])
    return Scope.group(org, groups[ref]) if kind == "group" else Scope.project(org, projects[ref])


def load(plan: Plan, directory: PgDirectory, store: PgRecordStore) -> Loaded:
    org = directory.add_organisation("acme", WorkflowMode.ORGANIZATION).id
    other = directory.add_organisation("other", WorkflowMode.ORGANIZATION).id
    tag = secrets.token_hex(4)
    users = [directory.add_user(f"u{i}-{tag}@example.com", f"U{i}", None, server_admin=False).id
             for i in range(len(plan.roles))]
    for user, role in zip(users, plan.roles, strict=True):
        if role is not None:
            directory.set_membership(org, user, role)
    directory.set_membership(other, users[0], OrgRole.OWNER)
    groups = []
    for i, members in enumerate(plan.groups):
        groups.append(directory.add_group(org, f"g{i}").id)
        for member in members:
            directory.add_group_member(groups[-1], users[member])
    projects = [directory.add_project(Project(0, org, f"P{i}", f"p{i}", "", None, v, ProjectStatus.ACTIVE)).id
                for i, v in enumerate(plan.projects)]
    for (p, kind, holder), role in plan.grants.items():
        directory.put_grant(projects[p], user_id=users[holder] if kind == "user" else None,
                            group_id=groups[holder] if kind == "group" else None, role=role)
    records, scopes = [], {}
    for n, (record_type, kind, ref) in enumerate(plan.records):
        scope = scope_of(kind, ref, org=org, other=other, users=users, groups=groups, projects=projects)
        prefix = "DOC" if record_type == "doc" else "MEM"
        fields = {"parent_id": None, "tags": []} if record_type == "doc" else {
            "memory_type": "fact", "confidence": 1.0, "importance": 3, "tags": [], "source_references": [],
            "valid_from": None, "valid_until": None, "superseded_by": None}
        new = NewRecord(scope.organisation_id, RecordType(record_type), prefix, scope, f"Record {n}",
                        f"The words zq{n}x{tag} belong to record {n}.", "active", users[0], fields)
        record = store.add(new, store.allocate_number(scope.organisation_id, prefix))
        records.append(record)
        scopes[record.id] = scope
    return Loaded(org, users, scopes, records, projects)


def stores_on(conn: sa.Connection) -> Stores:
    history = RecordKeeping(revisions=PgDocRevisions(conn), tree=PgRecordTree(conn), activity=PgTicketActivity(conn),
                            comments=PgTicketComments(conn), links=PgTicketLinks(conn), live=PgLiveEvents(conn))
    return Stores(directory=PgDirectory(conn), records=PgRecordStore(conn), history=history,
                  memory_diffs=PgMemoryDiffStore(conn), uploads=PgUploadRecords(conn), jobs=PgJobQueue(conn),
                  exports=PgExportStore(conn), organisation_import=PgOrganisationImport(conn),
                  semantic=PgSemanticIndex(conn), agent_runs=PgAgentRuns(conn), conversations=PgConversations(conn),
                  snapshot_sources=PgSnapshotSources(conn), oidc_identities=PgOidcIdentities(conn),
                  tokens=PgAccessTokens(conn), email_outbox=PgEmailOutbox(conn),
                  password_resets=PgPasswordResets(conn), live=history.live,
                  notifications=PgNotifications(conn))


def transactions_on(conn: sa.Connection) -> Transactions:
    """Units of work as savepoints of the example's one transaction (rolled back when a block raises)."""
    ticks = itertools.count()

    @contextmanager
    def unit_of_work() -> Iterator[Stores]:
        with conn.begin_nested():
            yield stores_on(conn)

    return Transactions(unit_of_work, lambda: NOW + timedelta(seconds=next(ticks)))


def readers(directory: PgDirectory, users: list[int], scope: Scope) -> frozenset[int]:
    project = directory.project(scope.ref_id).access if scope.kind.value == "project" else None
    return frozenset(u for u in users
                     if (p := directory.principal(u)) is not None and can_read_scope(p, scope, project))


def citing(plan: Plan, loaded: Loaded):
    def answer(request):
        lines = []
        for (cited, quote), record in zip(plan.cites, loaded.records, strict=True):
            if not cited:
                continue
            words = {"none": "", "right": f' "{record.body.split()[2]}"', "wrong": ' "words it never said"'}[quote]
            lines.append(f"- Claim [{record.display_id}{words}]")
        return step("\n".join(lines) or "Nothing to report.")
    return answer


def check(engine: sa.Engine, plan: Plan) -> None:
    with engine.connect() as conn, conn.begin() as transaction:
        try:
            directory = PgDirectory(conn)
            loaded = load(plan, directory, PgRecordStore(conn))
            requester = loaded.users[plan.requester]
            token = secrets.token_hex(16)
            directory.add_session(Session(token, requester, None, NOW + timedelta(days=1)))
            transactions = transactions_on(conn)
            model = ScriptedReasoningModel(citing(plan, loaded))
            use_cases, handler = SnapshotUseCases(transactions, True), SnapshotRuns(transactions, model)
            who_reads = {r.id: readers(directory, loaded.users, loaded.scopes[r.id]) for r in loaded.records}
            readable = {str(r.display_id) for r in loaded.records
                        if requester in who_reads[r.id] and r.organisation_id == loaded.org}
            project_key = f"P{plan.project}" if plan.project is not None else None
            STATS["worlds"] += 1
            STATS["records"] += len(loaded.records)
            try:
                started = use_cases.generate(SessionCredential(token), loaded.org, snapshot_type="weekly_review",
                                             title=None, project_key=project_key)
            except NotFound:
                scope = Scope.project(loaded.org, loaded.project_ids[plan.project])
                assert requester not in readers(directory, loaded.users, scope)
                STATS["refused_projects"] += 1
                return
            handler(PgAgentRuns(conn).get(started.run.id), lambda: None)
            verify(plan, loaded, directory, conn, model, started.snapshot.id, readable, who_reads, requester)
        finally:
            transaction.rollback()


def verify(plan, loaded, directory, conn, model, snapshot_id, readable, who_reads, requester) -> None:
    STATS["generations"] += 1
    [request] = model.requests
    sent = set(request.record_display_ids)
    text = model.sent_text()
    # Display IDs are per organisation: the other organisation's DOC-1 is not this one's, so it is told apart by
    # its words alone.
    here = [r for r in loaded.records if r.organisation_id == loaded.org]
    unreadable = [r for r in here if str(r.display_id) not in readable]
    elsewhere = [r for r in loaded.records if r.organisation_id != loaded.org]
    leaked = (sent - readable) | {str(r.display_id) for r in (*unreadable, *elsewhere) if r.body.split()[2] in text}
    STATS["leaks"] += len(leaked)
    assert not leaked, f"sent what the requester may not read: {sorted(leaked)}"
    assert all(r.body.split()[2] in text for r in here if str(r.display_id) in sent)
    STATS["sent"] += len(sent)

    snapshot = PgRecordStore(conn).for_update(loaded.org, snapshot_id)
    assert snapshot.status == "pending_review"
    pinned = {p.record_id for p in PgSnapshotSources(conn).pinned(loaded.org, snapshot_id)}
    # A marker names a display ID of this organisation: the other organisation's "DOC-1" cites this one's DOC-1.
    by_display_id = {str(r.display_id): r for r in here}
    expected = set()
    for (cited, quote), written in zip(plan.cites, loaded.records, strict=True):
        target = by_display_id.get(str(written.display_id))
        if cited and target is not None and str(target.display_id) in sent and (
                quote == "none" or (quote == "right" and target.id == written.id)):
            expected.add(target.id)
    STATS["cited"] += sum(cited for cited, _ in plan.cites)
    STATS["pinned"] += len(pinned)
    assert pinned == expected
    assert not any(str(r.display_id) in snapshot.body for r in unreadable)
    assert not any(r.body.split()[2] in snapshot.body for r in (*unreadable, *elsewhere))

    snapshot_readers = readers(directory, loaded.users, snapshot.scope)
    assert requester in snapshot_readers
    for source in pinned:
        assert snapshot_readers <= who_reads[source], (
            f"{snapshot.scope} is wider than source {loaded.scopes[source]}")
    STATS["private_results"] += snapshot.scope == Scope.private(loaded.org, requester)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(plan=plans())
def test_a_generated_snapshot_sends_cites_and_pins_only_what_its_requester_reads_and_is_no_wider(leak_engine, plan):
    check(leak_engine, plan)
