"""Differential leak test for uploads (SPEC §5 attachment permissions, §2 "One predicate").

The random worlds of test_visibility_differential get records in all four scopes, one attachment per
record, one unattached file per user, an avatar for some users, a logo per organisation and per
project, and possibly one server admin. For every user, every upload read path (``readable`` — the
metadata, download and HEAD path —, a record's attachment listing, and ``readable_images``, the avatars
and logos the pages show) must return exactly what the oracle says: attached → the pure policy
``can_read_scope`` on the record; unattached → its uploader; avatar → an organisation both users
share; logos → the pure policy on the organisation / project scope; server admins → all; inactive
users → nothing. Random revocations follow, and everything is checked again on the very next
statements.
"""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.test_visibility_differential import REVOCATIONS, World, load, revoke, worlds
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.uploads import PgUploadRecords
from tow_core.access import Scope, can_read_scope
from tow_core.uploads import UploadPurpose

UPLOAD_LEAK_STATS: dict = {"worlds": 0, "checks": 0, "leaks": 0, "by_path": Counter()}


@pytest.fixture(scope="module")
def uploads_leak_engine(embedded_postgres):
    embedded_postgres.ensure_database("uploads_leak")
    engine = create_engine(embedded_postgres.url("uploads_leak"), PoolOptions(pool_size=1, max_overflow=0))
    PgSchemaMigrator(engine).upgrade()
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE IF NOT EXISTS probe_records (id bigint PRIMARY KEY, organisation_id bigint NOT NULL, "
            "scope_kind text NOT NULL, scope_ref bigint NOT NULL)"
        ))
    yield engine
    engine.dispose()


class Uploads:
    """The world's uploads and the oracle for each: ``who(user) -> bool``."""

    def __init__(self, world: World, data) -> None:
        self.world = world
        users = sorted(world.active)
        self.admin = data.draw(st.sampled_from([None, *users]), label="server admin")
        self.rows: list[dict] = []
        for record in world.records:
            self._add(uploader=data.draw(st.sampled_from(users), label=f"uploader{record}"), record=record,
                      org=world.records[record].organisation_id)
        for user in users:
            self._add(uploader=user, org=world.orgs[0])
            if data.draw(st.booleans(), label=f"avatar{user}"):
                self._add(uploader=user, org=world.orgs[0], purpose="avatar", subject=user)
        for org in world.orgs:
            self._add(uploader=users[0], org=org, purpose="organisation_logo", subject=org)
        for project, (org, _) in world.projects.items():
            self._add(uploader=users[0], org=org, purpose="project_logo", subject=project)

    def _add(self, *, uploader: int, org: int, record: int | None = None, purpose: str = "file",
             subject: int | None = None) -> None:
        n = len(self.rows) + 1
        self.rows.append({"id": n, "o": org, "u": uploader, "s": f"{n:032x}", "p": purpose, "subj": subject,
                          "r": record, "img": None if purpose == "file" else "png"})

    def insert(self, conn: sa.Connection) -> None:
        conn.execute(sa.text(
            "INSERT INTO records (id, organisation_id, type, prefix, number, scope_kind, scope_ref, title, status) "
            "VALUES (:id, :o, 'doc', 'DOC', :id, :k, :ref, 'r', 'active')"
        ), [{"id": r, "o": s.organisation_id, "k": s.kind.value, "ref": s.ref_id} for r, s in self.world.records.items()])
        conn.execute(sa.text(
            "INSERT INTO uploads (id, organisation_id, uploader_id, storage_name, original_name, size_bytes, sha256, "
            "image_format, purpose, subject_id, record_id) VALUES (:id, :o, :u, :s, 'f', 1, repeat('0', 64), :img, "
            ":p, :subj, :r)"
        ), self.rows)
        if self.admin is not None:
            conn.execute(sa.text("UPDATE users SET is_server_admin = true WHERE id = :u"), {"u": self.admin})

    def readable_by(self, user: int, row: dict) -> bool:
        world = self.world
        if not world.active[user]:
            return False
        if user == self.admin:
            return True
        principal = world.principal(user)
        if row["r"] is not None:
            scope = world.records[row["r"]]
            return can_read_scope(principal, scope, world.project_access(scope))
        if row["p"] == "file":
            return row["u"] == user
        if row["p"] == "avatar":
            mine = {o for (o, u) in world.memberships if u == user}
            theirs = {o for (o, u) in world.memberships if u == row["subj"]}
            return row["subj"] == user or bool(mine & theirs)
        if row["p"] == "organisation_logo":
            return can_read_scope(principal, Scope.organisation(row["subj"]))
        scope = Scope.project(world.projects[row["subj"]][0], row["subj"])
        return can_read_scope(principal, scope, world.project_access(scope))


def expect(path: str, got, want, context: str) -> None:
    UPLOAD_LEAK_STATS["checks"] += 1
    UPLOAD_LEAK_STATS["by_path"][path] += 1
    if got != want:
        UPLOAD_LEAK_STATS["leaks"] += 1
    assert got == want, f"{path} for {context}: got {got}, oracle says {want}"


def check(store: PgUploadRecords, uploads: Uploads) -> None:
    for user in uploads.world.active:
        for row in uploads.rows:
            want = uploads.readable_by(user, row)
            expect("readable", store.readable(user, row["id"]) is not None, want, f"user {user}, upload {row}")
        for record in uploads.world.records:
            listed = {u.id for u in store.attachments_readable(user, record)}
            want = {row["id"] for row in uploads.rows if row["r"] == record and uploads.readable_by(user, row)}
            expect("attachments_readable", listed, want, f"user {user}, record {record}")
        for purpose in (UploadPurpose.AVATAR, UploadPurpose.ORGANISATION_LOGO, UploadPurpose.PROJECT_LOGO):
            images = [row for row in uploads.rows if row["p"] == purpose.value]
            shown = store.readable_images(user, {purpose: [row["subj"] for row in images] + [999_999]})[purpose]
            want = {row["subj"]: row["id"] for row in images if uploads.readable_by(user, row)}
            expect("readable_images", shown, want, f"user {user}, {purpose.value}s")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(world=worlds(), revocations=REVOCATIONS, data=st.data())
def test_every_upload_read_path_returns_exactly_what_the_oracle_allows(uploads_leak_engine, world, revocations, data):
    uploads = Uploads(world, data)
    with uploads_leak_engine.connect() as conn:
        transaction = conn.begin()
        try:
            store = PgUploadRecords(conn)
            load(world, conn)
            uploads.insert(conn)
            check(store, uploads)
            for kind, pick in revocations:
                revoke(world, conn, kind, pick)
            check(store, uploads)  # the very next statements see every revocation
            UPLOAD_LEAK_STATS["worlds"] += 1
        finally:
            transaction.rollback()
