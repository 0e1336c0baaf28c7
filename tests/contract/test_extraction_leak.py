"""Leak suite, memory extraction (issue 14): on random worlds in PostgreSQL, through the real stores and the real
extraction handler, an extraction request and the diff it proposes carry only records readable by the source's
author — whatever scopes the memory items sit in and whether the author lost a grant after saving.

Hypothesis builds an organisation with members, open/restricted projects, grants, memory items and docs in
every scope (each with a unique marker in its body) and a source: a doc saved by a random member who can write
its scope, or a chat answer in a random member's conversation (organisation-wide or in a project) that drew on
random records — readable by its owner or not, as when a grant is revoked between the answer and its
extraction — and quotes their markers. It may then revoke the author's grant. The handler runs with a model that
proposes an update of every memory item it was sent and a create. Checked against the pure policy
(``can_read_scope``): every record named in the request (``record_display_ids``) and every marker in its text is
readable by the source's author; a chat answer that drew on a record its owner no longer reads sends nothing;
and the diff is never wider than what it carries — everyone who can read the diff's scope (every member is
tried) can read the source and every item the diff names. ``STATS`` counts worlds, requests, records sent and
checks, for the lead's leak-suite report.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fake_reasoning import ScriptedReasoningModel, call, step
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_core import knowledge
from tow_core.access import OrgRole, ProjectRole, Scope, Visibility, can_read_scope, can_write_scope
from tow_core.conversations import NewConversation, NewTurn, TurnRole
from tow_core.extraction import TOOL_NAME
from tow_core.identity import Project, ProjectStatus, WorkflowMode
from tow_core.knowledge import Workspace
from tow_core.records import RecordType
from tow_core.unit_of_work import Transactions
from tow_core.use_cases.extraction import ExtractionPolicy, ExtractionRuns, queue_for_chat, queue_for_doc
from tow_http.composition import _transaction_factory

STATS = {"worlds": 0, "doc_sources": 0, "chat_sources": 0, "requests": 0, "records_sent": 0, "diffs": 0,
         "refused_sources": 0, "checks": 0, "leaks": 0}
_names = itertools.count()


@pytest.fixture(scope="module")
def engine(embedded_postgres):
    embedded_postgres.ensure_database("extraction_leak")
    engine = create_engine(embedded_postgres.url("extraction_leak"), PoolOptions(pool_size=4, max_overflow=2))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()
    print(f"\nextraction leak suite: {STATS}")  # noqa: T201 - counts for the lead


def clock() -> datetime:
    return datetime.now(UTC)


SCOPES = st.sampled_from(["organisation", "private", "p0", "p1", "p2"])
WORLDS = st.fixed_dictionaries({
    "roles": st.lists(st.sampled_from([OrgRole.MEMBER, OrgRole.MEMBER, OrgRole.ADMIN]), min_size=2, max_size=4),
    "visibility": st.lists(st.sampled_from([Visibility.OPEN, Visibility.RESTRICTED]), min_size=3, max_size=3),
    "grants": st.lists(st.tuples(st.integers(0, 4), st.integers(0, 2),
                                 st.sampled_from([ProjectRole.VIEWER, ProjectRole.MEMBER])), max_size=8),
    "items": st.lists(st.tuples(SCOPES, st.integers(0, 4)), min_size=1, max_size=8),
    "docs": st.lists(st.tuples(SCOPES, st.integers(0, 4)), max_size=4),
    "source": st.sampled_from(["doc", "chat"]),
    "doc": st.tuples(SCOPES, st.integers(0, 4)),
    "conversation": st.tuples(st.sampled_from(["organisation", "p0", "p1", "p2"]), st.integers(0, 4)),
    "drawn": st.lists(st.integers(0, 11), max_size=4),
    "drew_unreadable": st.booleans(),  # else the answer drew only on what its owner read (as the tools return)
    "revoke": st.booleans(),
})


def build(stores, spec):
    d = stores.directory
    n = next(_names)
    org = d.add_organisation(f"leak-{n}", WorkflowMode.ORGANIZATION).id
    owner = d.add_user(f"owner-{n}@example.com", "Owner", None, server_admin=False).id
    d.set_membership(org, owner, OrgRole.OWNER)
    users = [owner]
    for i, role in enumerate(spec["roles"]):
        user = d.add_user(f"u{i}-{n}@example.com", f"U{i}", None, server_admin=False).id
        d.set_membership(org, user, role)
        users.append(user)
    projects = [d.add_project(Project(0, org, f"P{i}X{n % 1000}", f"P{i}", "", None, v, ProjectStatus.ACTIVE)).id
                for i, v in enumerate(spec["visibility"])]
    for user, project, role in spec["grants"]:
        d.put_grant(projects[project], user_id=users[user % len(users)], group_id=None, role=role)
    return org, users, projects


def scope_of(name: str, org: int, user: int, projects: list[int]) -> Scope:
    if name == "organisation":
        return Scope.organisation(org)
    if name == "private":
        return Scope.private(org, user)
    return Scope.project(org, projects[int(name[1])])


def workspace(stores, org: int, user: int) -> Workspace:
    return Workspace.for_member(stores.records, stores.directory, stores.directory.principal(user), org,
                                history=stores.history)


def create(stores, org, user, scope, record_type, title, body, fields=None):
    ws = workspace(stores, org, user)
    project = knowledge.project_access_of(ws, scope)
    if not can_write_scope(ws.principal, scope, project):
        return None
    return knowledge.create_record(ws, record_type=record_type, scope=scope, project=project, title=title,
                                   body=body, fields=fields)


def propose_all(request):
    """Update every memory item the request carries and create one: a diff naming all of them."""
    sent = json.loads(request.input_items[0].text.split("\n", 1)[1].rsplit("\n", 1)[0])
    operations = [{"op": "update", "display_id": m["display_id"], "body": "changed", "rationale": "r"}
                  for m in sent["memory"]]
    operations.append({"op": "create", "title": f"new fact {next(_names)}", "memory_type": "fact", "rationale": "r"})
    return step("", call(TOOL_NAME, operations=operations))


def chat_answer(stores, spec, org, users, projects, created, now):
    """A conversation of a random member with an answer that drew on (and quotes) random records; its run."""
    scope_name, who = spec["conversation"]
    owner = users[who % len(users)]
    project_id = None if scope_name == "organisation" else projects[int(scope_name[1])]
    conversation = stores.conversations.create(NewConversation(owner, org, project_id, "Chat"), at=now)
    ws = workspace(stores, org, owner)
    pool = [d for d, (_, scope) in created.items()
            if spec["drew_unreadable"] or can_read_scope(ws.principal, scope, knowledge.project_access_of(ws, scope))]
    drawn = list(dict.fromkeys(pool[i % len(pool)] for i in spec["drawn"])) if pool else []
    stores.conversations.add_turn(conversation.id, NewTurn(TurnRole.USER, "What do we know?"), at=now)
    answer = stores.conversations.add_turn(conversation.id, NewTurn(
        TurnRole.ASSISTANT, "We know: " + " ".join(created[d][0] for d in drawn),
        tool_activity=[{"round": 1, "tool": "get_record", "records": drawn}]), at=now)
    run = queue_for_chat(stores, ExtractionPolicy(True), owner_id=owner, org_id=org, project_id=project_id,
                         conversation_id=conversation.id, turn_id=answer.id, now=now)
    return owner, run, drawn, (Scope.organisation(org) if project_id is None else Scope.project(org, project_id))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(spec=WORLDS)
def test_extraction_sends_and_proposes_only_what_the_sources_author_reads(engine, spec):
    transactions = Transactions(_transaction_factory(engine), clock)
    with transactions.unattended() as work:
        stores = work.stores
        org, users, projects = build(stores, spec)
        markers = {}  # display ID -> (marker, scope) of every record with content a source may carry
        for i, (scope_name, who) in enumerate(spec["items"] + spec["docs"]):
            user = users[who % len(users)]
            marker = f"MARKER{next(_names)}Z"
            is_item = i < len(spec["items"])
            record = create(stores, org, user, scope_of(scope_name, org, user, projects),
                            RecordType.MEMORY if is_item else RecordType.DOC, f"record {i}", marker,
                            {"memory_type": "fact"} if is_item else None)
            if record is not None:
                markers[str(record.display_id)] = (marker, record.scope)
        if spec["source"] == "doc":
            scope_name, who = spec["doc"]
            author = users[who % len(users)]
            doc = create(stores, org, author, scope_of(scope_name, org, author, projects), RecordType.DOC, "Doc",
                         "The doc's own text.")
            if doc is None:
                return
            run = queue_for_doc(stores, ExtractionPolicy(True), doc, author_id=author, now=work.now)
            carried, source_scope = [str(doc.display_id)], doc.scope
        else:
            author, run, carried, source_scope = chat_answer(stores, spec, org, users, projects, markers, work.now)
        if spec["revoke"] and source_scope.kind.value == "project":
            for grant in stores.directory.grants(source_scope.ref_id):
                if grant.user_id == author:
                    stores.directory.delete_grant(grant.id)
    model = ScriptedReasoningModel(propose_all)
    output = ExtractionRuns(transactions, model).__call__(run, lambda: None).output
    STATS["worlds"] += 1
    STATS[f"{spec['source']}_sources"] += 1

    with transactions.unattended() as work:
        stores = work.stores
        manager = workspace(stores, org, users[0])  # the organisation's owner: every project's access

        def readable(scope: Scope, user: int = author) -> bool:
            STATS["checks"] += 1
            return can_read_scope(stores.directory.principal(user), scope, knowledge.project_access_of(manager, scope))

        def scope_of_record(display_id: str) -> Scope:
            return markers[display_id][1] if display_id in markers else source_scope

        if spec["source"] == "chat" and not all(readable(markers[d][1]) for d in carried):
            STATS["refused_sources"] += 1
            assert model.requests == [] and output["diff_id"] is None  # drew on what its owner no longer reads
        for request in model.requests:
            STATS["requests"] += 1
            STATS["records_sent"] += len(request.record_display_ids)
            sent_text = model.sent_text()
            for display_id, (marker, scope) in markers.items():
                if not readable(scope):
                    STATS["leaks"] += marker in sent_text or display_id in request.record_display_ids
                    assert marker not in sent_text and display_id not in request.record_display_ids
            for display_id in request.record_display_ids:
                assert readable(scope_of_record(display_id))
            assert set(carried) <= set(request.record_display_ids)  # the ledger names what the source carries
        if output["diff_id"] is not None:
            STATS["diffs"] += 1
            diff = stores.memory_diffs.for_update(org, output["diff_id"])
            assert diff.author_id == author and diff.agent_run_id == run.id
            if spec["source"] == "doc":
                assert diff.scope == source_scope
            named = [*carried, *(str(d) for d in diff.referenced_ids)]
            for user in users:  # never wider: whoever reads the diff reads all it carries
                if readable(diff.scope, user):
                    for display_id in named:
                        wider = not readable(scope_of_record(display_id), user)
                        STATS["leaks"] += wider
                        assert not wider, (display_id, diff.scope, user)
        if spec["source"] == "doc" and not readable(source_scope):
            assert model.requests == [] and output["diff_id"] is None
