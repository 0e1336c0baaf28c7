"""PgExportSource: an export's content straight out of PostgreSQL, one JSON item per row.

Each item is built by PostgreSQL (``json_build_object``, history aggregated per record through its
indexes) and fetched through a server-side cursor in batches of ``BATCH_ROWS``, so the process holds one
batch at a time whatever the organisation's size. Run it inside one REPEATABLE READ transaction (see
``export_snapshot``) so every section comes from the same snapshot.

Deployment ids never appear in a file: people are named by email, groups by name, projects by key,
records by display ID (docs/export-format.md). Which rows are exported is one SQL condition per kind:
- organisation export: every row of the organisation outside private scopes;
- member export: ``visible_predicate`` for the requester (which includes their private scope). Links,
  references and parents pointing at rows the requester cannot read are left out (a parent becomes
  ``null``), so a member export never names a record its requester cannot read.

``scopes`` lists the scopes of exactly those record and memory diff rows (the same conditions): every
other item of a file (attachments, references, links, parents, people) belongs to, or is filtered by,
one of them, so a requester who can still read each scope can still read everything the file holds.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, BinaryIO

import sqlalchemy as sa

from tow_adapters.export_format import USER_ID_FIELDS
from tow_adapters.postgres.visibility import PRINCIPAL_PARAM, visible_predicate
from tow_core.access import Scope
from tow_core.exports import ExportKind, ExportSubject, Section

BATCH_ROWS = 1000


@contextmanager
def export_snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read-only REPEATABLE READ transaction in UTC: one consistent snapshot, stable timestamps."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.execute(sa.text("SET TRANSACTION READ ONLY"))
            conn.execute(sa.text("SET LOCAL TIME ZONE 'UTC'"))
            yield conn


def _email(user_id_sql: str) -> str:
    return f"(SELECT email FROM users WHERE id = {user_id_sql})"


def _as_email(field: str) -> str:
    """``|| {field: the email of the user it names}`` when the record has the field."""
    user_id = f"CAST(r.fields ->> '{field}' AS bigint)"
    return (f" || CASE WHEN r.fields ? '{field}' THEN jsonb_build_object('{field}', {_email(user_id)}) "
            "ELSE '{}'::jsonb END")


def _scope(alias: str) -> str:
    return (
        f"CASE {alias}.scope_kind "
        "WHEN 'organisation' THEN json_build_object('kind', 'organisation') "
        f"WHEN 'group' THEN json_build_object('kind', 'group', 'group', "
        f"(SELECT name FROM groups WHERE id = {alias}.scope_ref)) "
        f"WHEN 'project' THEN json_build_object('kind', 'project', 'project', "
        f"(SELECT key FROM projects WHERE id = {alias}.scope_ref)) "
        f"ELSE json_build_object('kind', 'user', 'user', {_email(f'{alias}.scope_ref')}) END"
    )


class _Rows:
    """The row conditions of one export kind."""

    def __init__(self, kind: ExportKind) -> None:
        if kind is ExportKind.ORGANISATION:
            self.record = "r.organisation_id = :org AND r.scope_kind <> 'user'"
            self.target = "t.organisation_id = :org AND t.scope_kind <> 'user'"
            self.diff = "d.organisation_id = :org AND d.scope_kind <> 'user'"
        else:
            self.record = f"r.organisation_id = :org AND {visible_predicate('r')}"
            self.target = f"t.organisation_id = :org AND {visible_predicate('t')}"
            self.diff = f"d.organisation_id = :org AND {visible_predicate('d')}"

    def display_of(self, record_id_sql: str) -> str:
        return f"(SELECT t.prefix || '-' || t.number FROM records t WHERE t.id = {record_id_sql} AND {self.target})"

    def records_sql(self) -> str:
        parent = self.display_of("CAST(r.fields ->> 'parent_id' AS bigint)")
        nothing = "'{}'::jsonb"
        # A memory item's memory_diff_id names a diff by its id here, which the file does not carry: left out.
        fields = (
            f"(r.fields - 'memory_diff_id') || CASE WHEN r.fields ? 'parent_id' THEN "
            f"jsonb_build_object('parent_id', {parent}) ELSE {nothing} END"
            + "".join(_as_email(name) for name in USER_ID_FIELDS)
        )
        references = (
            "(SELECT COALESCE(json_agg(t.prefix || '-' || t.number ORDER BY t.prefix, t.number), '[]'::json) "
            f"FROM record_references x JOIN records t ON t.id = x.target_id WHERE x.source_id = r.id AND {self.target})"
        )
        revisions = (
            "(SELECT COALESCE(json_agg(json_build_object('version', v.version, 'title', v.title, 'body', v.body, "
            f"'saved_at', v.saved_at, 'replaced_by', {_email('v.replaced_by')}, 'replaced_at', v.replaced_at) "
            "ORDER BY v.version), '[]'::json) FROM doc_revisions v WHERE v.record_id = r.id)"
        )
        comments = (
            "(SELECT COALESCE(json_agg(json_build_object('author', " + _email("c.author_id") + ", 'body', c.body, "
            "'created_at', c.created_at, 'updated_at', c.updated_at) ORDER BY c.id), '[]'::json) "
            "FROM ticket_comments c WHERE c.record_id = r.id)"
        )
        activity = (
            "(SELECT COALESCE(json_agg(json_build_object('actor', " + _email("a.actor_id") + ", 'at', a.at, "
            "'field', a.field, 'old_value', a.old_value, 'new_value', a.new_value, 'ai_applied', a.ai_applied) "
            "ORDER BY a.id), '[]'::json) FROM ticket_activity a WHERE a.record_id = r.id)"
        )
        links = (
            "(SELECT COALESCE(json_agg(json_build_object('target', t.prefix || '-' || t.number, 'kind', l.kind, "
            f"'created_by', {_email('l.created_by')}, 'created_at', l.created_at) ORDER BY l.id), '[]'::json) "
            f"FROM ticket_links l JOIN records t ON t.id = l.target_id WHERE l.source_id = r.id AND {self.target})"
        )
        sources = (
            "(SELECT COALESCE(json_agg(json_build_object('record', t.prefix || '-' || t.number, 'version', "
            "p.source_version) ORDER BY t.prefix, t.number), '[]'::json) FROM snapshot_sources p JOIN records t "
            f"ON t.id = p.source_record_id AND t.organisation_id = p.organisation_id WHERE p.snapshot_record_id = r.id "
            f"AND {self.target})"
        )
        return (
            "SELECT json_build_object('display_id', r.prefix || '-' || r.number, 'type', r.type, "
            f"'scope', {_scope('r')}, 'title', r.title, 'body', r.body, 'status', r.status, "
            f"'author', {_email('r.author_id')}, 'created_at', r.created_at, 'updated_at', r.updated_at, "
            f"'version', r.version, 'fields', {fields}, 'references', {references}, 'revisions', {revisions}, "
            f"'comments', {comments}, 'activity', {activity}, 'links', {links}, 'sources', {sources}) "
            f"FROM records r WHERE {self.record} ORDER BY r.prefix, r.number"
        )

    def scopes_sql(self) -> str:
        return (
            f"SELECT r.scope_kind, r.scope_ref FROM records r WHERE {self.record} "
            f"UNION SELECT d.scope_kind, d.scope_ref FROM memory_diffs d WHERE {self.diff}"
        )

    def memory_diffs_sql(self) -> str:
        return (
            f"SELECT json_build_object('scope', {_scope('d')}, 'source', d.source, "
            "'source_display_id', d.source_display_id, 'rationale', d.rationale, "
            f"'author', {_email('d.author_id')}, 'operations', d.operations, 'status', d.status, "
            f"'reviewer', {_email('d.reviewer_id')}, 'decided_at', d.decided_at, 'review_note', d.review_note, "
            f"'outcomes', d.outcomes, 'created_at', d.created_at) FROM memory_diffs d WHERE {self.diff} "
            "ORDER BY d.created_at, d.id"
        )

    def attachments_sql(self) -> str:
        """Files attached to exported records (never avatars or logos); the storage name is for reading
        the content and is not written to the file."""
        return (
            "SELECT json_build_object('record', r.prefix || '-' || r.number, 'original_name', u.original_name, "
            "'size_bytes', u.size_bytes, 'sha256', u.sha256, 'image_format', u.image_format, "
            f"'uploader', {_email('u.uploader_id')}, 'created_at', u.created_at), u.storage_name "
            f"FROM uploads u JOIN records r ON r.id = u.record_id WHERE u.purpose = 'file' AND {self.record} "
            "ORDER BY r.prefix, r.number, u.created_at, u.id"
        )

    def people_sql(self) -> str:
        """Everyone an organisation export names: members, group members, leads, grantees, and the
        authors, assignees, owners, reviewers and actors of the exported rows."""
        return (self._named_people() + "SELECT json_build_object('email', u.email, 'display_name', u.display_name, "
                "'active', u.is_active) FROM users u WHERE u.id IN (SELECT id FROM named) ORDER BY u.email")

    def count_sql(self, kind: ExportKind) -> str:
        """How many items the sections of ``kind`` hold, counted on the rows (no item is built)."""
        counts = [f"(SELECT count(*) FROM records r WHERE {self.record})",
                  f"(SELECT count(*) FROM memory_diffs d WHERE {self.diff})",
                  "(SELECT count(*) FROM uploads u JOIN records r ON r.id = u.record_id "
                  f"WHERE u.purpose = 'file' AND {self.record})"]
        if kind is ExportKind.ORGANISATION:
            counts += [f"({self._named_people()}SELECT count(*) FROM users u WHERE u.id IN (SELECT id FROM named))",
                       *(f"(SELECT count(*) FROM {table} WHERE organisation_id = :org)"
                         for table in ("memberships", "groups", "projects", "record_sequences"))]
        return "SELECT " + " + ".join(counts)

    def _named_people(self) -> str:
        record_rows = f"FROM records r WHERE {self.record}"
        history = f"JOIN records r ON r.id = x.record_id WHERE {self.record}"
        return (
            "WITH named(id) AS ("
            "SELECT user_id FROM memberships WHERE organisation_id = :org "
            "UNION SELECT gm.user_id FROM group_members gm JOIN groups g ON g.id = gm.group_id "
            "WHERE g.organisation_id = :org "
            "UNION SELECT lead_user_id FROM projects WHERE organisation_id = :org "
            "UNION SELECT pg.user_id FROM project_grants pg JOIN projects p ON p.id = pg.project_id "
            "WHERE p.organisation_id = :org "
            f"UNION SELECT r.author_id {record_rows} "
            + "".join(f"UNION SELECT CAST(r.fields ->> '{name}' AS bigint) {record_rows} " for name in USER_ID_FIELDS)
            +
            f"UNION SELECT x.replaced_by FROM doc_revisions x {history} "
            f"UNION SELECT x.author_id FROM ticket_comments x {history} "
            f"UNION SELECT x.actor_id FROM ticket_activity x {history} "
            f"UNION SELECT x.created_by FROM ticket_links x JOIN records r ON r.id = x.source_id WHERE {self.record} "
            f"UNION SELECT d.author_id FROM memory_diffs d WHERE {self.diff} "
            f"UNION SELECT d.reviewer_id FROM memory_diffs d WHERE {self.diff} "
            f"UNION SELECT u.uploader_id FROM uploads u JOIN records r ON r.id = u.record_id "
            f"WHERE u.purpose = 'file' AND {self.record}) "
        )


_MEMBERS = (
    f"SELECT json_build_object('user', {_email('m.user_id')}, 'role', m.role, 'joined_at', m.created_at) "
    f"FROM memberships m WHERE m.organisation_id = :org ORDER BY {_email('m.user_id')}"
)
_GROUPS = (
    "SELECT json_build_object('name', g.name, 'created_at', g.created_at, 'members', "
    "(SELECT COALESCE(json_agg(u.email ORDER BY u.email), '[]'::json) FROM group_members gm "
    "JOIN users u ON u.id = gm.user_id WHERE gm.group_id = g.id)) FROM groups g WHERE g.organisation_id = :org "
    "ORDER BY g.name"
)
_PROJECTS = (
    "SELECT json_build_object('key', p.key, 'name', p.name, 'description', p.description, "
    f"'lead', {_email('p.lead_user_id')}, 'visibility', p.visibility, 'status', p.status, "
    "'created_at', p.created_at, 'grants', (SELECT COALESCE(json_agg(json_build_object("
    f"'user', {_email('pg.user_id')}, 'group', (SELECT name FROM groups WHERE id = pg.group_id), "
    "'role', pg.role, 'created_at', pg.created_at) ORDER BY pg.user_id IS NULL, "
    f"{_email('pg.user_id')}, (SELECT name FROM groups WHERE id = pg.group_id)), '[]'::json) "
    "FROM project_grants pg WHERE pg.project_id = p.id)) FROM projects p WHERE p.organisation_id = :org "
    "ORDER BY p.key"
)
_SEQUENCES = (
    "SELECT json_build_object('prefix', s.prefix, 'last_number', s.last_number) FROM record_sequences s "
    "WHERE s.organisation_id = :org ORDER BY s.prefix"
)
_ORGANISATION = ("SELECT name, workflow_mode, created_at, require_second_reviewer FROM organisations "
                 "WHERE id = :org")


# Larger attachments are exported as metadata only (``content_base64: null``): one file, base64-encoded,
# is the most an export holds in memory at a time, and an import reads items of at most 64 MiB.
EMBED_MAX_BYTES = 32 * 1024 * 1024


def _params(subject: ExportSubject) -> dict[str, Any]:
    return {"org": subject.organisation_id, PRINCIPAL_PARAM: subject.reader}


class PgExportSource:
    """Reads one export's content on ``connection`` (use ``export_snapshot``); ``open_upload`` reads an
    attachment's bytes by storage name (the upload store) when contents are requested."""

    def __init__(self, connection: sa.Connection, *, exported_at: datetime,
                 open_upload: Callable[[str], BinaryIO] | None = None) -> None:
        self._conn = connection
        self._exported_at = exported_at
        self._open_upload = open_upload

    def _streamed(self, sql: str, params: Mapping[str, Any]) -> sa.CursorResult:
        """A server-side cursor for this one statement (Connection.execution_options would change the
        caller's connection for every later statement, DML included)."""
        return self._conn.execute(sa.text(sql).execution_options(stream_results=True, yield_per=BATCH_ROWS), params)

    def _stream(self, sql: str, **params: Any) -> Iterator[Mapping[str, Any]]:
        result = self._streamed(sql, params)
        for (item,) in result:
            yield item

    def _attachments(self, sql: str, with_contents: bool, **params: Any) -> Iterator[Mapping[str, Any]]:
        result = self._streamed(sql, params)
        for item, storage_name in result:
            content = None
            if with_contents and self._open_upload is not None and item["size_bytes"] <= EMBED_MAX_BYTES:
                with self._open_upload(storage_name) as file:
                    content = base64.b64encode(file.read()).decode("ascii")
            yield {**item, "content_base64": content}

    def header(self, subject: ExportSubject) -> Mapping[str, Any]:
        name, workflow_mode, created_at, second_reviewer = self._conn.execute(
            sa.text(_ORGANISATION), {"org": subject.organisation_id}
        ).one()
        organisation: dict[str, Any] = {"name": name}
        if subject.kind is ExportKind.ORGANISATION:
            organisation |= {"workflow_mode": workflow_mode, "created_at": created_at.isoformat(),
                             "require_second_reviewer": second_reviewer}
        header: dict[str, Any] = {"kind": subject.kind.value, "exported_at": self._exported_at.isoformat(),
                                  "organisation": organisation}
        if subject.kind is ExportKind.MEMBER:
            email, display_name = self._conn.execute(
                sa.text("SELECT email, display_name FROM users WHERE id = :id"), {"id": subject.reader}
            ).one()
            header["requested_by"] = {"email": email, "display_name": display_name}
        return header

    def scopes(self, subject: ExportSubject) -> frozenset[Scope]:
        rows = self._conn.execute(sa.text(_Rows(subject.kind).scopes_sql()), _params(subject)).all()
        return frozenset(Scope(kind, subject.organisation_id, ref) for kind, ref in rows)

    def count(self, subject: ExportSubject) -> int:
        return int(self._conn.execute(sa.text(_Rows(subject.kind).count_sql(subject.kind)), _params(subject)
                                      ).scalar_one())

    def sections(self, subject: ExportSubject) -> Iterator[Section]:
        rows = _Rows(subject.kind)
        params = _params(subject)
        if subject.kind is ExportKind.ORGANISATION:
            yield "people", self._stream(rows.people_sql(), **params)
            yield "members", self._stream(_MEMBERS, **params)
            yield "groups", self._stream(_GROUPS, **params)
            yield "projects", self._stream(_PROJECTS, **params)
            yield "sequences", self._stream(_SEQUENCES, **params)
        yield "records", self._stream(rows.records_sql(), **params)
        yield "memory_diffs", self._stream(rows.memory_diffs_sql(), **params)
        yield "attachments", self._attachments(rows.attachments_sql(), subject.include_attachment_contents, **params)
