"""PgNotifications: notifications, watchers, notification preferences and digest settings in PostgreSQL
(migrations 0025–0028).

Runs on the caller's connection, so a notification commits with the change that causes it. What a
notification shows is read in the listing's one statement: its record (or memory diff) is LEFT JOINed under
``visible_predicate`` bound to the *reader*, so a record they no longer read comes back as NULL (shown as "a
record you can no longer see"), never its title. Counting unread is one count on a partial index. One event told
to many people is one lookup of everyone's settings (``deliveries_for``) and one INSERT ... SELECT over arrays
(``add_many``). Due digests are claimed by one UPDATE ... RETURNING: a second worker waiting on the same row sees
it already claimed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from tow_adapters.postgres.engine import SqlStore
from tow_adapters.postgres.visibility import PRINCIPAL_PARAM, visible_predicate
from tow_core.access import Scope, ScopeKind
from tow_core.notifications import (
    DEFAULT_DELIVERY,
    DEFAULT_DIGEST,
    Delivery,
    DeliverySettings,
    Digest,
    NewNotification,
    NotificationKind,
    Shown,
)
from tow_core.records import DisplayId, RecordSummary, RecordType

_ORG = "(CAST(:org AS bigint) IS NULL OR n.organisation_id = :org)"


def _shown(row: sa.Row) -> Shown:
    (id_, org, kind, record_id, comment_id, created, read, r_id, r_type, prefix, number, title, status, s_kind,
     s_ref, actor, run_id, run_kind, diff_id, d_id, d_changes) = row
    summary = None if r_id is None else RecordSummary(r_id, RecordType(r_type), DisplayId(prefix, number), title,
                                                      status, Scope(ScopeKind(s_kind), org, s_ref))
    lost_diff = diff_id is not None and d_id is None
    lost = (record_id is not None and summary is None) or lost_diff
    return Shown(id_, org, NotificationKind(kind), created, read, summary, None if lost else comment_id,
                 None if lost else actor, lost, run_id, run_kind, d_id, d_changes or 0, lost_diff)


class PgNotifications(SqlStore):
    def add(self, new: NewNotification) -> int:
        return self._conn.execute(
            sa.text("INSERT INTO notifications (user_id, organisation_id, kind, record_id, comment_id, actor_id, "
                    "created_at, agent_run_id, memory_diff_id) "
                    "VALUES (:user, :org, :kind, :record, :comment, :actor, :at, :run, :diff) RETURNING id"),
            {"run": new.agent_run_id, "diff": new.memory_diff_id,
             "user": new.user_id, "org": new.organisation_id, "kind": new.kind.value, "record": new.record_id,
             "comment": new.comment_id, "actor": new.actor_id, "at": new.created_at},
        ).scalar_one()

    def add_many(self, news: Sequence[NewNotification]) -> list[int]:
        if not news:
            return []
        ids = self._conn.execute(
            sa.text("INSERT INTO notifications (user_id, organisation_id, kind, record_id, comment_id, actor_id, "
                    "created_at, agent_run_id, memory_diff_id) "
                    "SELECT n.user_id, n.org, n.kind, n.record, n.comment, n.actor, n.at, n.run, n.diff "
                    "FROM unnest(CAST(:users AS bigint[]), CAST(:orgs AS bigint[]), CAST(:kinds AS text[]), "
                    "CAST(:records AS bigint[]), CAST(:comments AS bigint[]), CAST(:actors AS bigint[]), "
                    "CAST(:ats AS timestamptz[]), CAST(:runs AS bigint[]), CAST(:diffs AS bigint[])) WITH ORDINALITY "
                    "AS n(user_id, org, kind, record, comment, actor, at, run, diff, i) ORDER BY n.i RETURNING id"),
            {"users": [n.user_id for n in news], "orgs": [n.organisation_id for n in news],
             "kinds": [n.kind.value for n in news], "records": [n.record_id for n in news],
             "comments": [n.comment_id for n in news], "actors": [n.actor_id for n in news],
             "ats": [n.created_at for n in news], "runs": [n.agent_run_id for n in news],
             "diffs": [n.memory_diff_id for n in news]},
        ).scalars().all()
        # Inserted in the ORDER BY's order, so the serial ids ascend with it (how SQLAlchemy's insertmanyvalues
        # matches RETURNING rows to parameters for an integer key): sorted, they are in the order of ``news``.
        return sorted(ids)

    def deliveries_for(self, user_ids: Sequence[int], kind: NotificationKind) -> dict[int, DeliverySettings]:
        rows = self._rows(
            "SELECT c.user_id, p.delivery, d.digest FROM unnest(CAST(:users AS bigint[])) AS c(user_id) "
            "LEFT JOIN notification_preferences p ON p.user_id = c.user_id AND p.kind = :kind "
            "LEFT JOIN notification_digests d ON d.user_id = c.user_id",
            users=list(user_ids), kind=kind.value,
        )
        return {user: DeliverySettings(Delivery(delivery) if delivery else DEFAULT_DELIVERY,
                                       Digest(digest) if digest else DEFAULT_DIGEST) for user, delivery, digest in rows}

    def shown(self, user_id: int, org_id: int | None, *, unread_only: bool, before_id: int | None,
              limit: int) -> list[Shown]:
        rows = self._rows(
            "SELECT n.id, n.organisation_id, n.kind, n.record_id, n.comment_id, n.created_at, n.read_at, "
            "r.id, r.type, r.prefix, r.number, r.title, r.status, r.scope_kind, r.scope_ref, u.display_name, "
            "ar.id, ar.kind, n.memory_diff_id, d.id, jsonb_array_length(d.operations) "
            "FROM notifications n "
            f"LEFT JOIN records r ON r.id = n.record_id AND r.organisation_id = n.organisation_id AND "
            f"{visible_predicate('r')} "
            "LEFT JOIN users u ON u.id = n.actor_id "
            f"LEFT JOIN agent_runs ar ON ar.id = n.agent_run_id AND ar.owner_id = :{PRINCIPAL_PARAM} "
            "LEFT JOIN memory_diffs d ON d.id = n.memory_diff_id AND d.organisation_id = n.organisation_id AND "
            f"{visible_predicate('d')} "
            f"WHERE n.user_id = :{PRINCIPAL_PARAM} AND {_ORG} "
            "AND (NOT :unread OR n.read_at IS NULL) AND (CAST(:before AS bigint) IS NULL OR n.id < :before) "
            "ORDER BY n.id DESC LIMIT :n",
            org=org_id, unread=unread_only, before=before_id, n=limit, **{PRINCIPAL_PARAM: user_id},
        )
        return [_shown(r) for r in rows]

    def count_unread(self, user_id: int, org_id: int | None) -> int:
        row = self._row(f"SELECT count(*) FROM notifications n WHERE n.user_id = :user AND {_ORG} "
                        "AND n.read_at IS NULL", user=user_id, org=org_id)
        return int(row[0]) if row else 0

    def recipient(self, notification_id: int) -> tuple[int, int] | None:
        row = self._row("SELECT user_id, organisation_id FROM notifications WHERE id = :id", id=notification_id)
        return (row[0], row[1]) if row else None

    def mark_read(self, user_id: int, ids: Sequence[int] | None, org_id: int | None, *, now: datetime) -> int:
        result = self._conn.execute(
            sa.text(f"UPDATE notifications n SET read_at = :now WHERE n.user_id = :user AND {_ORG} "
                    "AND n.read_at IS NULL AND (CAST(:all AS boolean) OR n.id = ANY(:ids))"),
            {"now": now, "user": user_id, "org": org_id, "all": ids is None, "ids": list(ids or [])},
        )
        return result.rowcount

    def watch(self, record_id: int, user_id: int) -> None:
        self._conn.execute(sa.text("INSERT INTO record_watchers (record_id, user_id) VALUES (:record, :user) "
                                   "ON CONFLICT DO NOTHING"), {"record": record_id, "user": user_id})

    def unwatch(self, record_id: int, user_id: int) -> None:
        self._conn.execute(sa.text("DELETE FROM record_watchers WHERE record_id = :record AND user_id = :user"),
                           {"record": record_id, "user": user_id})

    def watchers(self, record_id: int) -> list[int]:
        return [r[0] for r in self._rows("SELECT user_id FROM record_watchers WHERE record_id = :record "
                                         "ORDER BY user_id", record=record_id)]

    def is_watching(self, record_id: int, user_id: int) -> bool:
        return self._row("SELECT 1 FROM record_watchers WHERE record_id = :record AND user_id = :user",
                         record=record_id, user=user_id) is not None

    def preferences(self, user_id: int) -> dict[NotificationKind, Delivery]:
        rows = self._rows("SELECT kind, delivery FROM notification_preferences WHERE user_id = :user", user=user_id)
        return {NotificationKind(k): Delivery(d) for k, d in rows if k in NotificationKind._value2member_map_}

    def set_preference(self, user_id: int, kind: NotificationKind, delivery: Delivery) -> None:
        self._conn.execute(
            sa.text("INSERT INTO notification_preferences (user_id, kind, delivery) VALUES (:user, :kind, :d) "
                    "ON CONFLICT (user_id, kind) DO UPDATE SET delivery = EXCLUDED.delivery"),
            {"user": user_id, "kind": kind.value, "d": delivery.value},
        )

    def digest(self, user_id: int) -> Digest:
        row = self._row("SELECT digest FROM notification_digests WHERE user_id = :user", user=user_id)
        return Digest(row[0]) if row else DEFAULT_DIGEST

    def set_digest(self, user_id: int, digest: Digest, *, now: datetime) -> None:
        self._conn.execute(
            sa.text("INSERT INTO notification_digests AS d (user_id, digest, last_digest_at) "
                    "VALUES (:user, :digest, :now) ON CONFLICT (user_id) DO UPDATE SET digest = EXCLUDED.digest, "
                    "last_digest_at = CASE WHEN d.digest = 'daily' THEN d.last_digest_at "
                    "ELSE EXCLUDED.last_digest_at END"),
            {"user": user_id, "digest": digest.value, "now": now},
        )

    def claim_digests(self, cutoff: datetime, *, now: datetime) -> list[tuple[int, datetime]]:
        rows = self._conn.execute(
            sa.text("UPDATE notification_digests d SET last_digest_at = :now FROM notification_digests old "
                    "WHERE old.user_id = d.user_id AND d.digest = 'daily' AND d.last_digest_at <= :cutoff "
                    "RETURNING d.user_id, old.last_digest_at"),
            {"now": now, "cutoff": cutoff},
        ).all()
        return sorted((r[0], r[1]) for r in rows)
