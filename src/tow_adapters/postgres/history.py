"""What docs and tickets add to records, in PostgreSQL: doc revisions, the parent tree, ticket
activity, comments and links (ports in ``tow_core.docs`` and ``tow_core.tickets``).

Runs on the caller's connection (one transaction per use case). Every method that returns other
records' titles filters them with ``visible_predicate`` inside its one statement (SPEC §2 "One
predicate"); the tree walks themselves ignore visibility because the core needs whole subtrees and
ancestor chains to keep its rules (no cycles, recursive moves), and show nothing of hidden rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa

from tow_adapters.postgres.engine import SqlStore
from tow_adapters.postgres.records import _COLUMNS, _SUMMARY_COLUMNS, _record, _summary
from tow_adapters.postgres.visibility import PRINCIPAL_PARAM, visible_predicate
from tow_core.docs import Ancestor, Branch, Revision, TreeNode
from tow_core.errors import Conflict, NotFound
from tow_core.records import Record
from tow_core.tickets import ActivityEntry, Comment, FieldChange, Link, LinkKind

_VISIBLE = visible_predicate("r")
_PARENT = "CAST(r.fields ->> 'parent_id' AS bigint)"
# Parent links form no cycles (the core refuses them); the depth cap keeps a walk finite even on bad data.
_MAX_DEPTH = 1000
_UNIQUE_VIOLATION = "23505"


def _after(after_id: int | None) -> tuple[str, dict]:
    return ("", {}) if after_id is None else (" AND x.id > :after_id", {"after_id": after_id})


class PgDocRevisions(SqlStore):
    def add(self, before: Record, *, replaced_by: int) -> None:
        self._conn.execute(
            sa.text("INSERT INTO doc_revisions (record_id, version, title, body, saved_at, replaced_by) "
                    "VALUES (:id, :version, :title, :body, :saved_at, :by)"),
            {"id": before.id, "version": before.version, "title": before.title, "body": before.body,
             "saved_at": before.updated_at, "by": replaced_by},
        )

    def list(self, record_id: int, *, before_version: int | None, limit: int) -> list[Revision]:
        older = "" if before_version is None else " AND version < :before"
        rows = self._rows(
            "SELECT version, title, body, saved_at, replaced_by, replaced_at FROM doc_revisions "
            f"WHERE record_id = :id{older} ORDER BY version DESC LIMIT :limit",
            id=record_id, before=before_version, limit=limit,
        )
        return [Revision(*row) for row in rows]


class PgRecordTree(SqlStore):
    def ancestors(self, principal_id: int, org_id: int, record_id: int) -> list[Ancestor]:
        rows = self._rows(
            "WITH RECURSIVE up(id, depth) AS ("
            f" SELECT {_PARENT}, 1 FROM records r WHERE r.id = :id AND r.organisation_id = :org"
            f" UNION ALL SELECT {_PARENT}, up.depth + 1 FROM up JOIN records r ON r.id = up.id"
            f" AND r.organisation_id = :org WHERE up.depth < {_MAX_DEPTH}) "
            f"SELECT r.id, {_VISIBLE} AS visible, {_SUMMARY_COLUMNS} FROM up "
            "JOIN records r ON r.id = up.id AND r.organisation_id = :org ORDER BY up.depth",
            id=record_id, org=org_id, **{PRINCIPAL_PARAM: principal_id},
        )
        return [Ancestor(row[0], _summary(row[2:]) if row[1] else None) for row in rows]

    def descendants_for_update(self, org_id: int, record_id: int) -> list[Record]:
        rows = self._rows(
            "WITH RECURSIVE down(id, depth) AS ("
            f" SELECT r.id, 1 FROM records r WHERE r.organisation_id = :org AND {_PARENT} = :id"
            f" UNION ALL SELECT r.id, down.depth + 1 FROM down JOIN records r ON r.organisation_id = :org"
            f" AND {_PARENT} = down.id WHERE down.depth < {_MAX_DEPTH}) "
            f"SELECT {_COLUMNS} FROM records r WHERE r.id IN (SELECT id FROM down) ORDER BY r.id FOR UPDATE",
            id=record_id, org=org_id,
        )
        return [_record(row) for row in rows]

    def has_children(self, org_id: int, record_id: int) -> bool:
        return self._row(f"SELECT EXISTS (SELECT 1 FROM records r WHERE r.organisation_id = :org AND {_PARENT} = :id)",
                         org=org_id, id=record_id)[0]

    def readable_docs(self, principal_id: int, org_id: int, project_id: int | None) -> list[TreeNode]:
        project = "" if project_id is None else " AND r.scope_kind = 'project' AND r.scope_ref = :project"
        rows = self._rows(
            f"SELECT {_SUMMARY_COLUMNS}, {_PARENT} FROM records r WHERE r.organisation_id = :org "
            f"AND r.type = 'doc'{project} AND {_VISIBLE} ORDER BY lower(r.title), r.id",
            org=org_id, project=project_id, **{PRINCIPAL_PARAM: principal_id},
        )
        return [TreeNode(_summary(row), row[9]) for row in rows]

    def readable_doc_level(self, principal_id: int, org_id: int, project_id: int | None, parent_id: int | None,
                           limit: int | None) -> list[Branch]:
        def readable(alias: str) -> str:  # a doc of the tree: readable, in the organisation (and the project)
            project = "" if project_id is None else (f" AND {alias}.scope_kind = 'project' "
                                                     f"AND {alias}.scope_ref = :project")
            return (f"{alias}.organisation_id = :org AND {alias}.type = 'doc'{project} "
                    f"AND {visible_predicate(alias)}")

        def parent_of(alias: str) -> str:
            return f"CAST({alias}.fields ->> 'parent_id' AS bigint)"

        # The top: readable docs whose parent is not a readable doc here; else the readable docs below parent_id.
        level = (f"NOT EXISTS (SELECT 1 FROM records p WHERE p.id = {parent_of('r')} AND {readable('p')})"
                 if parent_id is None else f"{parent_of('r')} = :parent")
        rows = self._rows(
            f"SELECT {_SUMMARY_COLUMNS}, EXISTS (SELECT 1 FROM records c WHERE {parent_of('c')} = r.id "
            f"AND {readable('c')}) FROM records r WHERE {readable('r')} AND {level} "
            f"ORDER BY lower(r.title), r.id LIMIT {'ALL' if limit is None else int(limit)}",
            org=org_id, project=project_id, parent=parent_id, **{PRINCIPAL_PARAM: principal_id},
        )
        return [Branch(_summary(row), row[9]) for row in rows]

    def delete(self, org_id: int, record_id: int) -> None:
        deleted = self._row("DELETE FROM records WHERE id = :id AND organisation_id = :org RETURNING id",
                            id=record_id, org=org_id)
        if deleted is None:
            raise NotFound("record not found")


class PgTicketActivity(SqlStore):
    def add(self, record_id: int, actor_id: int, changes: Sequence[FieldChange], *, ai_applied: bool) -> None:
        if not changes:
            return
        self._conn.execute(
            sa.text("INSERT INTO ticket_activity (record_id, actor_id, field, old_value, new_value, ai_applied) "
                    "VALUES (:id, :actor, :field, CAST(:old AS jsonb), CAST(:new AS jsonb), :ai)"),
            [{"id": record_id, "actor": actor_id, "field": c.field, "old": json.dumps(c.old),
              "new": json.dumps(c.new), "ai": ai_applied} for c in changes],
        )

    def list(self, record_id: int, *, after_id: int | None, limit: int) -> list[ActivityEntry]:
        after, params = _after(after_id)
        rows = self._rows(
            "SELECT x.id, x.actor_id, x.at, x.field, x.old_value, x.new_value, x.ai_applied FROM ticket_activity x "
            f"WHERE x.record_id = :id{after} ORDER BY x.id LIMIT :limit",
            id=record_id, limit=limit, **params,
        )
        return [ActivityEntry(id_, actor, at, FieldChange(field, old, new), ai)
                for id_, actor, at, field, old, new, ai in rows]


_COMMENT_COLUMNS = "x.id, x.record_id, x.author_id, x.body, x.created_at, x.updated_at"


class PgTicketComments(SqlStore):
    def add(self, record_id: int, author_id: int, body: str) -> Comment:
        return Comment(*self._row(
            f"INSERT INTO ticket_comments AS x (record_id, author_id, body) VALUES (:id, :author, :body) "
            f"RETURNING {_COMMENT_COLUMNS}", id=record_id, author=author_id, body=body,
        ))

    def get(self, record_id: int, comment_id: int) -> Comment | None:
        row = self._row(f"SELECT {_COMMENT_COLUMNS} FROM ticket_comments x WHERE x.id = :cid AND x.record_id = :id "
                        "FOR UPDATE", cid=comment_id, id=record_id)
        return Comment(*row) if row else None

    def update(self, comment_id: int, body: str) -> Comment:
        return Comment(*self._row(
            f"UPDATE ticket_comments AS x SET body = :body, updated_at = now() WHERE x.id = :cid "
            f"RETURNING {_COMMENT_COLUMNS}", cid=comment_id, body=body,
        ))

    def delete(self, comment_id: int) -> None:
        self._conn.execute(sa.text("DELETE FROM ticket_comments WHERE id = :cid"), {"cid": comment_id})

    def list(self, record_id: int, *, after_id: int | None, limit: int) -> list[Comment]:
        after, params = _after(after_id)
        rows = self._rows(f"SELECT {_COMMENT_COLUMNS} FROM ticket_comments x WHERE x.record_id = :id{after} "
                          "ORDER BY x.id LIMIT :limit", id=record_id, limit=limit, **params)
        return [Comment(*row) for row in rows]


class PgTicketLinks(SqlStore):
    def add(self, org_id: int, source_id: int, target_id: int, kind: LinkKind, created_by: int) -> int:
        try:
            with self._conn.begin_nested():
                row = self._row(
                    "INSERT INTO ticket_links (organisation_id, source_id, target_id, kind, created_by) "
                    "VALUES (:org, :source, :target, :kind, :by) RETURNING id",
                    org=org_id, source=source_id, target=target_id, kind=kind.value, by=created_by,
                )
        except sa.exc.IntegrityError as exc:
            if getattr(exc.orig, "sqlstate", None) == _UNIQUE_VIOLATION:
                raise Conflict("these tickets are already linked that way", field="target") from exc
            raise
        return row[0]

    def readable(self, principal_id: int, org_id: int, record_id: int, *, link_id: int | None = None
                 ) -> list[Link]:
        only = "" if link_id is None else " AND l.id = :link_id"
        rows = self._rows(
            f"SELECT {_SUMMARY_COLUMNS}, l.id, l.kind, l.source_id = :id, l.created_by, l.created_at "
            "FROM ticket_links l JOIN records r ON r.id = CASE WHEN l.source_id = :id THEN l.target_id "
            "ELSE l.source_id END "
            f"WHERE l.organisation_id = :org AND (l.source_id = :id OR l.target_id = :id){only} "
            f"AND r.organisation_id = :org AND {_VISIBLE} ORDER BY l.id",
            id=record_id, org=org_id, link_id=link_id, **{PRINCIPAL_PARAM: principal_id},
        )
        return [Link(row[9], LinkKind(row[10]), row[11], _summary(row), row[12], row[13]) for row in rows]

    def delete(self, link_id: int) -> None:
        self._conn.execute(sa.text("DELETE FROM ticket_links WHERE id = :id"), {"id": link_id})

