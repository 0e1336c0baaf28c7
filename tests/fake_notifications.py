"""An in-memory NotificationStore (``tow_core.notifications``): what it shows is read through the fake record
store's ``readable`` for the reader, as the Postgres adapter joins the record under the visibility predicate."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

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
from tow_core.records import RecordSummary


@dataclass(frozen=True)
class _Row:
    id: int
    new: NewNotification
    read_at: datetime | None = None


class InMemoryNotifications:
    def __init__(self, records=None, directory=None, runs=None, diffs=None) -> None:  # noqa: ANN001 - the fakes
        self.records = records  # of tests/fake_records.py, an AgentRuns fake (tests/fake_agent_runs.py) or None
        self.diffs = diffs  # and fake_records' InMemoryMemoryDiffStore or None
        self.directory = directory
        self.runs = runs
        self._ids = itertools.count(1)
        self.rows: dict[int, _Row] = {}
        self.watching: set[tuple[int, int]] = set()
        self.settings: dict[tuple[int, NotificationKind], Delivery] = {}
        self.digests: dict[int, tuple[Digest, datetime]] = {}  # user id: (setting, last digest)

    def add(self, new: NewNotification) -> int:
        row = _Row(next(self._ids), new)
        self.rows[row.id] = row
        return row.id

    def add_many(self, news: Sequence[NewNotification]) -> list[int]:
        return [self.add(new) for new in news]

    def deliveries_for(self, user_ids: Sequence[int], kind: NotificationKind) -> dict[int, DeliverySettings]:
        return {u: DeliverySettings(self.preferences(u).get(kind, DEFAULT_DELIVERY), self.digest(u)) for u in user_ids}

    def _mine(self, user_id: int, org_id: int | None) -> list[_Row]:
        return sorted((r for r in self.rows.values() if r.new.user_id == user_id
                       and (org_id is None or r.new.organisation_id == org_id)), key=lambda r: -r.id)

    def shown(self, user_id: int, org_id: int | None, *, unread_only: bool, before_id: int | None,
              limit: int) -> list[Shown]:
        rows = [r for r in self._mine(user_id, org_id) if (not unread_only or r.read_at is None)
                and (before_id is None or r.id < before_id)][:limit]
        return [self._shown(user_id, r) for r in rows]

    def _shown(self, user_id: int, row: _Row) -> Shown:
        new = row.new
        record = None if new.record_id is None else self.records.readable(user_id, new.organisation_id, new.record_id)
        summary = None if record is None else RecordSummary(record.id, record.type, record.display_id, record.title,
                                                            record.status, record.scope)
        diff = None if new.memory_diff_id is None or self.diffs is None else self.diffs.readable(
            user_id, new.organisation_id, new.memory_diff_id)
        lost_diff = new.memory_diff_id is not None and diff is None
        lost = (new.record_id is not None and record is None) or lost_diff
        actor = None if lost or new.actor_id is None else self.directory.user(new.actor_id)
        run = None if new.agent_run_id is None or self.runs is None else self.runs.get(new.agent_run_id)
        run = run if run is not None and run.owner_id == user_id else None
        return Shown(row.id, new.organisation_id, new.kind, new.created_at, row.read_at, summary,
                     None if lost else new.comment_id, actor.display_name if actor else None, lost,
                     run.id if run else None, run.kind if run else None, diff.id if diff else None,
                     len(diff.operations) if diff else 0, lost_diff)

    def count_unread(self, user_id: int, org_id: int | None) -> int:
        return sum(1 for r in self._mine(user_id, org_id) if r.read_at is None)

    def recipient(self, notification_id: int) -> tuple[int, int] | None:
        row = self.rows.get(notification_id)
        return (row.new.user_id, row.new.organisation_id) if row else None

    def mark_read(self, user_id: int, ids: Sequence[int] | None, org_id: int | None, *, now: datetime) -> int:
        marked = 0
        for row in self._mine(user_id, org_id):
            if row.read_at is None and (ids is None or row.id in ids):
                self.rows[row.id] = replace(row, read_at=now)
                marked += 1
        return marked

    def watch(self, record_id: int, user_id: int) -> None:
        self.watching.add((record_id, user_id))

    def unwatch(self, record_id: int, user_id: int) -> None:
        self.watching.discard((record_id, user_id))

    def watchers(self, record_id: int) -> list[int]:
        return sorted(u for r, u in self.watching if r == record_id)

    def is_watching(self, record_id: int, user_id: int) -> bool:
        return (record_id, user_id) in self.watching

    def preferences(self, user_id: int) -> dict[NotificationKind, Delivery]:
        return {kind: d for (u, kind), d in self.settings.items() if u == user_id}

    def set_preference(self, user_id: int, kind: NotificationKind, delivery: Delivery) -> None:
        self.settings[(user_id, kind)] = delivery

    def digest(self, user_id: int) -> Digest:
        return self.digests[user_id][0] if user_id in self.digests else DEFAULT_DIGEST

    def set_digest(self, user_id: int, digest: Digest, *, now: datetime) -> None:
        before = self.digests.get(user_id)
        keep = before is not None and before[0] is Digest.DAILY
        self.digests[user_id] = (digest, before[1] if keep and before else now)

    def claim_digests(self, cutoff: datetime, *, now: datetime) -> list[tuple[int, datetime]]:
        due = sorted((u, last) for u, (d, last) in self.digests.items() if d is Digest.DAILY and last <= cutoff)
        for user_id, _ in due:
            self.digests[user_id] = (Digest.DAILY, now)
        return due
