"""A member's export never names a record the pure policy says they cannot read.

Over the random worlds of the visibility differential test (organisations, memberships, groups,
open/restricted projects, direct and group grants, deactivated users, records in all four scopes —
here with references and parent links between them), each member's export is produced by the real
export source in PostgreSQL and compared with ``can_read_scope``: its records are exactly the readable
ones, and no display ID of an unreadable record appears anywhere in it (references, parents).

Then random revocations (those of the visibility differential test) are applied to the model and the
database alike, and each export's recorded scopes decide its download against the requester as they
are now: it is refused exactly when a record it holds is no longer readable (SPEC §2 immediate
revocation, exports included) — a download that goes through never hands over an unreadable record.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings

from tests.contract.test_visibility_differential import REVOCATIONS, World, load, revoke, worlds
from tow_adapters.postgres.export_source import PgExportSource
from tow_core.access import ProjectAccess, Scope, can_read_scope
from tow_core.exports import ExportKind, ExportRequest, Refusal, write_document
from tow_core.jobs import JobStatus
from tow_http.composition import Container
from tow_http.config import load_config

NOW = datetime(2026, 3, 1, tzinfo=UTC)
STATS = {"worlds": 0, "exports": 0, "leaks": 0, "revoked_worlds": 0, "refused": 0, "downloads_leaking": 0}


@pytest.fixture(scope="module")
def migrated_engine(embedded_postgres, tmp_path_factory):
    embedded_postgres.ensure_database("export_differential")
    config_dir = tmp_path_factory.mktemp("cfg")
    (config_dir / "tow.yaml").write_text("")
    config = load_config(config_dir / "tow.yaml", environ={"APP_SECRET": "d" * 40})
    container = Container(config=config, database_url=embedded_postgres.url("export_differential"))
    container.schema_migrator().upgrade()
    yield container.engine()
    container.engine().dispose()


def load_records(world: World, conn: sa.Connection) -> None:
    ids = sorted(world.records)
    conn.execute(sa.text(
        "INSERT INTO records (id, organisation_id, type, prefix, number, scope_kind, scope_ref, title, status, fields) "
        "VALUES (:id, :o, 'doc', 'DOC', :id, :k, :ref, :title, 'active', CAST(:fields AS jsonb))"),
        [{"id": i, "o": s.organisation_id, "k": s.kind.value, "ref": s.ref_id, "title": f"R{i}",
          "fields": json.dumps({"parent_id": ids[(n + 1) % len(ids)]})} for n, (i, s) in
         enumerate(sorted(world.records.items()))])
    # Every record cites the next one of its organisation: citations across visibility boundaries.
    pairs = [(a, b) for a in ids for b in ids
             if a != b and world.records[a].organisation_id == world.records[b].organisation_id and b == a + 1]
    if pairs:
        conn.execute(sa.text("INSERT INTO record_references (source_id, target_id) VALUES (:s, :t)"),
                     [{"s": a, "t": b} for a, b in pairs])


def member_request(org: int, user: int) -> ExportRequest:
    return ExportRequest(1, org, user, ExportKind.MEMBER, 1, JobStatus.RUNNING, None, None, None, NOW, None, NOW)


def member_export(conn: sa.Connection, org: int, user: int) -> dict:
    subject = member_request(org, user).subject
    source = PgExportSource(conn, exported_at=NOW)
    out = io.StringIO()
    write_document(source.header(subject), source.sections(subject), out)
    return json.loads(out.getvalue())


def recorded_scopes(conn: sa.Connection, org: int, user: int) -> frozenset[Scope]:
    return PgExportSource(conn, exported_at=NOW).scopes(member_request(org, user).subject)


def exported_scopes(world: World, document: dict) -> frozenset[Scope]:
    return frozenset(world.records[int(r["display_id"].removeprefix("DOC-"))] for r in document["records"])


def named_display_ids(document: dict) -> set[str]:
    named = set()
    for record in document["records"]:
        named.add(record["display_id"])
        named.update(record["references"])
        named.update(link["target"] for link in record["links"])
        if record["fields"].get("parent_id"):
            named.add(record["fields"]["parent_id"])
    return named


def check_world(engine: sa.Engine, world: World) -> None:
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            load(replace(world, records={}), conn)
            load_records(world, conn)
            for (org, user), _role in sorted(world.memberships.items()):
                principal = world.principal(user)
                readable = {f"DOC-{rid}" for rid, scope in world.records.items()
                            if scope.organisation_id == org and can_read_scope(principal, scope,
                                                                               world.project_access(scope))}
                document = member_export(conn, org, user)
                exported = {r["display_id"] for r in document["records"]}
                leaked = named_display_ids(document) - readable
                STATS["exports"] += 1
                STATS["leaks"] += len(leaked)
                assert not leaked, f"user {user} in org {org}: export names unreadable {sorted(leaked)}"
                assert exported == readable, f"user {user} in org {org}: missing {sorted(readable - exported)}"
                assert recorded_scopes(conn, org, user) == exported_scopes(world, document)
            STATS["worlds"] += 1
        finally:
            transaction.rollback()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(world=worlds())
def test_a_member_export_never_names_a_record_the_policy_hides(migrated_engine, world):
    check_world(migrated_engine, world)


def projects_now(world: World) -> dict[int, ProjectAccess]:
    return {p: ProjectAccess(p, org, visibility) for p, (org, visibility) in world.projects.items()}


def check_revoked_world(engine: sa.Engine, world: World, revocations: list[tuple[str, int]]) -> None:
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            load(replace(world, records={}), conn)
            load_records(world, conn)
            made = {}
            for (org, user), _role in sorted(world.memberships.items()):
                document = member_export(conn, org, user)
                request = replace(member_request(org, user), status=JobStatus.COMPLETED, file_name="f.json",
                                  scopes=recorded_scopes(conn, org, user))
                made[(org, user)] = (request, exported_scopes(world, document))
            for kind, pick in revocations:
                revoke(world, conn, kind, pick)
            for (_org, user), (request, held) in made.items():
                principal = world.principal(user)
                refusal = request.refusal(principal, projects_now(world))
                unreadable = {s for s in held if not can_read_scope(principal, s, world.project_access(s))}
                STATS["refused"] += refusal is not None
                STATS["downloads_leaking"] += refusal is None and bool(unreadable)
                assert refusal is not None or not unreadable, f"user {user} downloads unreadable {unreadable}"
                if refusal is Refusal.ACCESS_SHRANK:  # never refused for scopes the file does not hold
                    assert unreadable, f"user {user} refused though every scope the file holds is readable"
            STATS["revoked_worlds"] += 1
        finally:
            transaction.rollback()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(world=worlds(), revocations=REVOCATIONS)
def test_a_download_is_refused_exactly_when_a_record_the_export_holds_became_unreadable(migrated_engine, world,
                                                                                      revocations):
    check_revoked_world(migrated_engine, world, revocations)
