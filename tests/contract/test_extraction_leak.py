"""Leak suite, memory extraction (issue 14): on random worlds in PostgreSQL, through the real stores and the real
extraction handler, an extraction request and the diff it proposes carry only records readable by the source's
author — whatever scopes the memory items sit in and whether the author lost a grant after saving.

Hypothesis builds an organisation with members, open/restricted projects, grants, memory items in every scope
(each with a unique marker in its body), and a doc saved by a random member who can write its scope; it may then
revoke that author's grant. The handler runs with a model that proposes an update of every memory item it was
sent and a create; the test checks every record named in the request (``record_display_ids``), every marker in
the request's text and every item the diff names against the pure policy (``can_read_scope``) for the author.
``STATS`` counts worlds, requests, records sent and checks, for the lead's leak-suite report.
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
from tow_core.extraction import TOOL_NAME
from tow_core.identity import Project, ProjectStatus, WorkflowMode
from tow_core.knowledge import Workspace
from tow_core.records import RecordType
from tow_core.unit_of_work import Transactions
from tow_core.use_cases.extraction import ExtractionPolicy, ExtractionRuns, queue_for_doc
from tow_http.composition import _transaction_factory

STATS = {"worlds": 0, "requests": 0, "records_sent": 0, "diffs": 0, "checks": 0, "leaks": 0}
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
    "doc": st.tuples(SCOPES, st.integers(0, 4)),
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


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(spec=WORLDS)
def test_extraction_sends_and_proposes_only_what_the_sources_author_reads(engine, spec):
    transactions = Transactions(_transaction_factory(engine), clock)
    with transactions.unattended() as work:
        stores = work.stores
        org, users, projects = build(stores, spec)
        markers = {}
        for i, (scope_name, who) in enumerate(spec["items"]):
            user = users[who % len(users)]
            marker = f"MARKER{next(_names)}Z"
            item = create(stores, org, user, scope_of(scope_name, org, user, projects), RecordType.MEMORY,
                          f"item {i}", marker, {"memory_type": "fact"})
            if item is not None:
                markers[str(item.display_id)] = (marker, item.scope)
        scope_name, who = spec["doc"]
        author = users[who % len(users)]
        doc = create(stores, org, author, scope_of(scope_name, org, author, projects), RecordType.DOC, "Doc",
                     "The doc's own text.")
        if doc is None:
            return
        run = queue_for_doc(stores, ExtractionPolicy(True), doc, author_id=author, now=work.now)
        if spec["revoke"] and doc.scope.kind.value == "project":
            for grant in stores.directory.grants(doc.scope.ref_id):
                if grant.user_id == author:
                    stores.directory.delete_grant(grant.id)
    model = ScriptedReasoningModel(propose_all)
    output = ExtractionRuns(transactions, model).__call__(run, lambda: None).output
    STATS["worlds"] += 1

    with transactions.unattended() as work:
        stores = work.stores
        principal = stores.directory.principal(author)

        def readable(scope: Scope) -> bool:
            STATS["checks"] += 1
            return can_read_scope(principal, scope, knowledge.project_access_of(workspace(stores, org, users[0]),
                                                                                scope))

        for request in model.requests:
            STATS["requests"] += 1
            STATS["records_sent"] += len(request.record_display_ids)
            sent_text = model.sent_text()
            for display_id, (marker, scope) in markers.items():
                if not readable(scope):
                    STATS["leaks"] += marker in sent_text or display_id in request.record_display_ids
                    assert marker not in sent_text and display_id not in request.record_display_ids
            assert readable(doc.scope) and str(doc.display_id) in request.record_display_ids
        if output["diff_id"] is not None:
            STATS["diffs"] += 1
            diff = stores.memory_diffs.for_update(org, output["diff_id"])
            assert diff.scope == doc.scope and diff.author_id == author and diff.agent_run_id == run.id
            for display_id in diff.referenced_ids:
                assert readable(markers[str(display_id)][1]) and markers[str(display_id)][1] == doc.scope
        if not readable(doc.scope):
            assert model.requests == [] and output["diff_id"] is None
