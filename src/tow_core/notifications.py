"""Notifications, mentions and watching (issue 19 items 2 and 4): the workspace tells people what needs them.

Rules:
- **One place creates them**: ``Notifications.deliver_many`` (``deliver`` for one person) inside the unit of work of
  the change that causes it, so a notification commits with its change or not at all. It never notifies the actor
  about their own act.
- **Never what the recipient cannot read**: ``deliver_many`` checks, through the one access policy (the record
  store's ``readers_among``, the predicate of ``readable`` asked for each *recipient*), that the recipient reads the
  record at that moment; if not, nothing is created (a mention of someone who cannot read the doc: no notification,
  no email). A memory diff is only ever news to those who may review it (``MemoryDiffStore.reviewers_among``).
- **Telling many costs what telling one does**: one event told to many people (a group's members, a diff's
  reviewers, a record's watchers) is a fixed handful of statements — who reads it, what each chose
  (``NotificationStore.deliveries_for``), one insert (``add_many``), one batch of live nudges and one of email
  jobs — not a few per person (a grant to a 200-member group ran 606 statements when each was told in turn, and
  now runs 9, as for 10 members: tests/e2e/test_notification_fanout.py).
- A notification stores **ids only** (kind, record, comment, actor), never a title or body. It is *shown*
  through the access policy at read time (``NotificationStore.shown`` joins the record under the visibility
  predicate for the reader): a record the reader lost shows as "a record you can no longer see", with no
  title and no actor.
- Mentions are written ``@[Display Name](user:ID)`` (the editor inserts them; a rename keeps the id, and the
  name shown is the member's current one). Only mentions *added* by a create or an edit notify.
- Watching: the author of a record, a ticket's assignee and every commenter watch it automatically; anyone who
  reads a record may watch or unwatch it. A comment notifies the record's watchers who still read it.
- Preferences, per person and kind: ``in_app`` (the default), ``email`` (in-app too, and emailed) or ``off``.
  An email is rendered later by a job (``tow_core.use_cases.notification_email``) that reads the record again
  for the recipient: if they lost it meanwhile, nothing is sent.
- The digest setting, per person, decides how the kinds set to email are emailed: ``immediate`` (the default:
  each on its own), ``daily`` (no email per notification; one email a day listing the still-unread ones, see
  ``tow_core.use_cases.notification_email``) or ``off`` (no notification email at all, whatever the kinds say).
- A snapshot entering pending_review (written by hand, or generated) tells who may review it — the active
  members who may write its scope, as the inbox lists it — but never the actor, and at most
  ``MAX_REVIEWERS_TOLD`` of them (``review_awaited``; hooked in ``Notifying``, so every front door does it).
- A memory diff proposed (by hand, by a chat action or by a memory extraction: all go through
  ``memory_review.propose_diff``) tells who may review it — the active members who read and write its scope, the
  inbox's rule — but never its author (who, with ``memory.require_second_reviewer``, may not approve it anyway), at
  most ``MAX_REVIEWERS_TOLD`` of them (``diff_proposed``). It names the diff by id; what it shows (the number of
  changes) is read at show time under the visibility predicate for the reader, so a diff whose scope they lost shows
  as "a memory diff you can no longer see".
- Who may review (a snapshot or a diff) is asked of the store for all members in one statement
  (``RecordStore.readers_among``, ``MemoryDiffStore.reviewers_among``: the one predicate, per user).
- A change of someone's access tells them (``access_changed``): their role, a direct project grant, their
  membership of a group; a group's project grant changing (or the group deleted) tells its members
  (``group_access_changed``, at most ``MAX_GROUP_TOLD``).
- An agent run that ends completed or failed tells its owner (``agent_run_ended``, in the transaction that records
  the end); a cancelled one tells nobody (its owner or an admin asked for it). The notification names the run by
  id; its kind is read at show time, joined on the run *and its owner being the reader*.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from tow_core.agent_runs import AgentRun, AgentRunStatus
from tow_core.errors import InvalidInput
from tow_core.identity import Directory, Group
from tow_core.jobs import JobQueue, NewJob
from tow_core.knowledge import RecordHistory, Workspace
from tow_core.live import LiveEvent, LiveEvents
from tow_core.memory_diffs import MemoryDiff, MemoryDiffStore
from tow_core.notification_preferences import (  # noqa: F401 - re-exported: callers import them with the kinds
    DEFAULT_DELIVERY,
    DEFAULT_DIGEST,
    Delivery,
    DeliverySettings,
    Digest,
    delivery_of,
    digest_of,
)
from tow_core.records import Record, RecordStore, RecordSummary, RecordType

MAX_LISTED = 100
# A snapshot or diff awaiting review tells at most this many reviewers: the active members who may write its scope, in
# the order they joined the server (user id), so an organisation of 500 writers is not flooded (the inbox of
# every writer lists it anyway).
MAX_REVIEWERS_TOLD = 50
# A group's grant changing tells at most this many of its members (told in one batch: a few statements in the granting
# transaction however many, but each is a row and a live nudge).
MAX_GROUP_TOLD = 200
MENTION = re.compile(r"@\[([^\]\n]{1,200})\]\(user:(\d{1,18})\)")
# Bodies where a mention notifies (a comment's body too, see ``comment_added``).
MENTIONABLE = frozenset({RecordType.DOC, RecordType.TICKET, RecordType.DECISION, RecordType.RISK})
LOST = "a record you can no longer see"
LOST_DIFF = "a memory diff you can no longer see"
EMAIL_JOB = "notification_email"


class NotificationKind(StrEnum):
    """What notifies (issue 19 item 2)."""

    ASSIGNED = "assigned"  # a ticket was assigned to you
    MENTIONED = "mentioned"  # you were mentioned in a body or a comment
    COMMENTED = "commented"  # a comment on a record you watch
    ACCESS = "access"  # your role or a grant that affects you changed
    REVIEW = "review"  # a snapshot you may review entered pending_review, or a memory diff you may review was proposed
    RUN_FINISHED = "run_finished"  # your agent run (chat answer, snapshot generation, extraction) completed
    RUN_FAILED = "run_failed"  # your agent run failed


DESCRIPTIONS: Mapping[NotificationKind, str] = {
    NotificationKind.ASSIGNED: "A ticket is assigned to you",
    NotificationKind.MENTIONED: "Someone mentions you",
    NotificationKind.COMMENTED: "A comment on something you watch",
    NotificationKind.ACCESS: "Your role or access changed",
    NotificationKind.REVIEW: "A snapshot or memory diff awaits your review",
    NotificationKind.RUN_FINISHED: "Your agent run finished",
    NotificationKind.RUN_FAILED: "Your agent run failed",
}
# What an agent run's kind is called in a notification (``agent_runs.kind``; another kind shows as "agent run").
RUN_LABELS: Mapping[str, str] = {"chat": "chat answer", "snapshot_generation": "snapshot generation",
                                 "memory_extraction": "memory extraction"}


@dataclass(frozen=True, slots=True)
class NewNotification:
    user_id: int
    organisation_id: int
    kind: NotificationKind
    record_id: int | None
    comment_id: int | None
    actor_id: int | None
    created_at: datetime
    agent_run_id: int | None = None
    memory_diff_id: int | None = None


@dataclass(frozen=True, slots=True)
class Shown:
    """A notification as its recipient may see it now: ``record`` is None when there is none or when they no
    longer read it (``lost``); the actor's name is then withheld too."""

    id: int
    organisation_id: int
    kind: NotificationKind
    created_at: datetime
    read_at: datetime | None
    record: RecordSummary | None
    comment_id: int | None
    actor_name: str | None
    lost: bool
    agent_run_id: int | None = None  # the reader's own run (RUN_FINISHED, RUN_FAILED)
    run_kind: str | None = None  # its kind, read at show time; None when it is gone
    memory_diff_id: int | None = None  # a diff the reader still reads (REVIEW); None when lost or none
    diff_changes: int = 0  # how many operations that diff proposes, read at show time
    lost_diff: bool = False  # lost, and what was lost is a memory diff (not a record)

    @property
    def run_label(self) -> str:
        return RUN_LABELS.get(self.run_kind or "", "agent run")

    @property
    def link(self) -> str | None:
        """The page of what it is about, while the reader still reads it (the browser's paths)."""
        if self.record is not None:
            return f"/o/{self.organisation_id}/r/{self.record.display_id}"
        if self.memory_diff_id is not None:
            return f"/o/{self.organisation_id}/memory-diffs/{self.memory_diff_id}"
        return None

    @property
    def text(self) -> str:
        """One line saying what happened, from the kind and what the reader still reads."""
        if self.lost:
            return f"{DESCRIPTIONS[self.kind]}: {LOST_DIFF if self.lost_diff else LOST}"
        who = self.actor_name or "Someone"
        if self.memory_diff_id is not None:
            changes = f"{self.diff_changes} change{'' if self.diff_changes == 1 else 's'}"
            return f"{who} proposed memory diff #{self.memory_diff_id} ({changes}) for your review"
        what = f"{self.record.display_id} {self.record.title}" if self.record else ""
        return {
            NotificationKind.ASSIGNED: f"{who} assigned you {what}",
            NotificationKind.MENTIONED: f"{who} mentioned you in {what}",
            NotificationKind.COMMENTED: f"{who} commented on {what}",
            NotificationKind.ACCESS: f"{who} changed your role or access in this organisation",
            NotificationKind.REVIEW: f"{who} put {what} up for your review",
            NotificationKind.RUN_FINISHED: f"Your {self.run_label} finished",
            NotificationKind.RUN_FAILED: f"Your {self.run_label} failed",
        }[self.kind]


class NotificationStore(Protocol):
    def add(self, new: NewNotification) -> int: ...

    def add_many(self, news: Sequence[NewNotification]) -> list[int]:
        """Adds all of ``news`` in one statement; their ids, in the order of ``news``."""
        ...

    def deliveries_for(self, user_ids: Sequence[int], kind: NotificationKind) -> dict[int, DeliverySettings]:
        """For every one of ``user_ids``: their delivery of ``kind`` and their digest setting (the defaults when
        never chosen), in one statement."""
        ...

    def shown(self, user_id: int, org_id: int | None, *, unread_only: bool, before_id: int | None,
              limit: int) -> list[Shown]:
        """The newest notifications of ``user_id`` (in ``org_id``, or every organisation), each with its record
        read under the visibility predicate *for ``user_id``* (None when unreadable or deleted)."""
        ...

    def count_unread(self, user_id: int, org_id: int | None) -> int: ...

    def recipient(self, notification_id: int) -> tuple[int, int] | None:
        """(user id, organisation id) of a notification, for the job that emails it."""
        ...

    def mark_read(self, user_id: int, ids: Sequence[int] | None, org_id: int | None, *, now: datetime) -> int:
        """Marks ``ids`` (None: all) of ``user_id``'s unread notifications read; returns how many."""
        ...

    def watch(self, record_id: int, user_id: int) -> None: ...

    def unwatch(self, record_id: int, user_id: int) -> None: ...

    def watchers(self, record_id: int) -> list[int]: ...

    def is_watching(self, record_id: int, user_id: int) -> bool: ...

    def preferences(self, user_id: int) -> dict[NotificationKind, Delivery]:
        """The kinds ``user_id`` set; a missing kind is ``DEFAULT_DELIVERY``."""
        ...

    def set_preference(self, user_id: int, kind: NotificationKind, delivery: Delivery) -> None: ...

    def digest(self, user_id: int) -> Digest:
        """``user_id``'s digest setting (``DEFAULT_DIGEST`` when never chosen)."""
        ...

    def set_digest(self, user_id: int, digest: Digest, *, now: datetime) -> None:
        """Choosing ``daily`` when it was not starts its day at ``now`` (the first digest comes a day later, with
        what arrived since); choosing it again keeps the time of the last digest."""
        ...

    def claim_digests(self, cutoff: datetime, *, now: datetime) -> list[tuple[int, datetime]]:
        """The ``daily`` people whose last digest (or choosing daily) is at or before ``cutoff``, each with that
        time; marks each as digested at ``now`` in the same statement, so a person claimed by one worker is not
        claimed by another before the next day."""
        ...


def mentioned_ids(*texts: str | None) -> frozenset[int]:
    """The user ids mentioned as ``@[Name](user:ID)`` in ``texts``."""
    return frozenset(int(m.group(2)) for text in texts if text for m in MENTION.finditer(text))


def mention_markup(user_id: int, display_name: str) -> str:
    """What the editor inserts for a mention: survives renames (the id decides), shown as a chip."""
    name = display_name.replace("]", "").replace("\n", " ")[:200] or f"user {user_id}"
    return f"@[{name}](user:{user_id})"


def kind_of(text: str, field: str = "kind") -> NotificationKind:
    try:
        return NotificationKind(text)
    except ValueError as exc:
        raise InvalidInput(f"{field} must be one of {', '.join(k.value for k in NotificationKind)}",
                           field=field) from exc


@dataclass(frozen=True, slots=True)
class Notifications:
    """The one place notifications are created (see the module rules), in the caller's unit of work."""

    store: NotificationStore
    records: RecordStore
    now: datetime
    jobs: JobQueue | None = None  # where a notification to email is queued (``notification_email``)
    live: LiveEvents | None = None  # where the recipient's open pages are nudged (sent on commit)
    diffs: MemoryDiffStore | None = None  # where a diff's readers are checked (``diff_proposed``)

    def deliver(self, actor_id: int | None, recipient_id: int, org_id: int, kind: NotificationKind, *,
                record: Record | None = None, comment_id: int | None = None,
                agent_run_id: int | None = None, memory_diff: MemoryDiff | None = None) -> bool:
        """``deliver_many`` for one person; whether a notification was created."""
        return bool(self.deliver_many(actor_id, [recipient_id], org_id, kind, record=record, comment_id=comment_id,
                                      agent_run_id=agent_run_id, memory_diff=memory_diff))

    def deliver_many(self, actor_id: int | None, recipient_ids: Iterable[int], org_id: int, kind: NotificationKind, *,
                     record: Record | None = None, comment_id: int | None = None,
                     agent_run_id: int | None = None, memory_diff: MemoryDiff | None = None) -> list[int]:
        """Notify each of ``recipient_ids`` (once, in their order) unless they are the actor, switched the kind off,
        or cannot read ``record`` (may not review ``memory_diff``) now. Returns who was notified. The same few
        statements for one recipient or hundreds (see the module rules)."""
        candidates = self._readers([u for u in dict.fromkeys(recipient_ids) if u != actor_id], org_id, record,
                                   memory_diff)
        settings = self.store.deliveries_for(candidates, kind) if candidates else {}
        told = [u for u in candidates if settings[u].delivery is not Delivery.OFF]
        if not told:
            return []
        ids = self.store.add_many([NewNotification(u, org_id, kind, record.id if record else None, comment_id,
                                                   actor_id, self.now, agent_run_id,
                                                   memory_diff.id if memory_diff else None) for u in told])
        if self.live is not None:  # the recipients' open pages refetch their counts (tow_core.live)
            self.live.publish_all([LiveEvent.user_nudged(org_id, u) for u in told])
        # Rendered by the job, which reads the record again for the recipient: only what they read then.
        emails = [NewJob(EMAIL_JOB, {"notification_id": n}) for u, n in zip(told, ids, strict=True)
                  if settings[u].emailed_at_once]
        if emails and self.jobs is not None:
            self.jobs.enqueue_many(emails, now=self.now)
        return told

    def _readers(self, user_ids: list[int], org_id: int, record: Record | None,
                 memory_diff: MemoryDiff | None) -> list[int]:
        """Those of ``user_ids`` who read ``record`` and may review ``memory_diff`` now (one statement each)."""
        if user_ids and record is not None:
            readers = self.records.readers_among(org_id, record.id, user_ids)
            user_ids = [u for u in user_ids if u in readers]
        if user_ids and memory_diff is not None:
            reviewers = frozenset() if self.diffs is None else self.diffs.reviewers_among(org_id, memory_diff.id,
                                                                                           user_ids)
            user_ids = [u for u in user_ids if u in reviewers]
        return user_ids

    def watch(self, record: Record, user_ids: Iterable[int | None]) -> None:
        for user_id in user_ids:
            if user_id is not None:
                self.store.watch(record.id, user_id)

    def record_created(self, actor_id: int, record: Record) -> None:
        """The author watches; a ticket's assignee watches and is told; everyone mentioned in the body is told."""
        assignee = record.fields.get("assignee_id") if record.type is RecordType.TICKET else None
        self.watch(record, (record.author_id, assignee))
        if assignee is not None:
            self.deliver(actor_id, assignee, record.organisation_id, NotificationKind.ASSIGNED, record=record)
        self._mentions(actor_id, record, mentioned_ids(record.body) if record.type in MENTIONABLE else frozenset())

    def record_changed(self, actor_id: int, before: Record, after: Record) -> None:
        """A new assignee watches and is told; mentions the edit added are told."""
        assignee = after.fields.get("assignee_id") if after.type is RecordType.TICKET else None
        if assignee is not None and assignee != before.fields.get("assignee_id"):
            self.watch(after, (assignee,))
            self.deliver(actor_id, assignee, after.organisation_id, NotificationKind.ASSIGNED, record=after)
        if after.type in MENTIONABLE and after.body != before.body:
            self._mentions(actor_id, after, mentioned_ids(after.body) - mentioned_ids(before.body))

    def comment_added(self, actor_id: int, record: Record, comment_id: int, body: str) -> None:
        """The commenter watches; those mentioned are told of the mention, the other watchers of the comment."""
        self.watch(record, (actor_id,))
        mentioned = mentioned_ids(body)
        self._mentions(actor_id, record, mentioned, comment_id=comment_id)
        watchers = [w for w in self.store.watchers(record.id) if w not in mentioned]
        self.deliver_many(actor_id, watchers, record.organisation_id, NotificationKind.COMMENTED, record=record,
                          comment_id=comment_id)

    def comment_edited(self, actor_id: int, record: Record, comment_id: int, before: str, after: str) -> None:
        self._mentions(actor_id, record, mentioned_ids(after) - mentioned_ids(before), comment_id=comment_id)

    def access_changed(self, actor_id: int, user_id: int | None, org_id: int) -> None:
        """A member's role, a project grant of theirs, or their membership of a group changed."""
        if user_id is not None:
            self.deliver(actor_id, user_id, org_id, NotificationKind.ACCESS)

    def group_access_changed(self, actor_id: int, group: Group) -> None:
        """A group's project grant changed, or the group was deleted: each of its members' access changed (the
        first ``MAX_GROUP_TOLD`` by user id are told; the others see it in the project's access)."""
        self.deliver_many(actor_id, sorted(group.member_ids)[:MAX_GROUP_TOLD], group.organisation_id,
                          NotificationKind.ACCESS)

    def agent_run_ended(self, run: AgentRun) -> bool:
        """Tell a run's owner it completed or failed (nobody caused it: no actor). Cancelled runs tell nobody."""
        kinds = {AgentRunStatus.COMPLETED: NotificationKind.RUN_FINISHED,
                 AgentRunStatus.FAILED: NotificationKind.RUN_FAILED}
        kind = kinds.get(run.status)
        if kind is None:
            return False
        return self.deliver(None, run.owner_id, run.organisation_id, kind, agent_run_id=run.id)

    def review_awaited(self, actor_id: int, record: Record, directory: Directory) -> None:
        """A snapshot entered pending_review: tell who may review it (who may write its scope, as the inbox lists
        it), at most ``MAX_REVIEWERS_TOLD`` of them, never the actor."""
        candidates = _other_active_members(directory, record.organisation_id, actor_id)
        writers = first_among(candidates, lambda users: self.records.readers_among(
            record.organisation_id, record.id, users, write=True), MAX_REVIEWERS_TOLD)
        self.deliver_many(actor_id, writers, record.organisation_id, NotificationKind.REVIEW, record=record)

    def diff_proposed(self, actor_id: int, diff: MemoryDiff, directory: Directory) -> None:
        """A memory diff was proposed: tell who may review it (who reads and writes its scope, as the inbox lists
        it), at most ``MAX_REVIEWERS_TOLD`` of them, never the actor or the diff's author."""
        if self.diffs is None:
            return
        diffs = self.diffs
        candidates = [u for u in _other_active_members(directory, diff.organisation_id, actor_id)
                      if u != diff.author_id]
        reviewers = first_among(candidates, lambda users: diffs.reviewers_among(diff.organisation_id, diff.id, users),
                                MAX_REVIEWERS_TOLD)
        self.deliver_many(actor_id, reviewers, diff.organisation_id, NotificationKind.REVIEW, memory_diff=diff)

    def _mentions(self, actor_id: int, record: Record, user_ids: Iterable[int], *,
                  comment_id: int | None = None) -> None:
        self.deliver_many(actor_id, sorted(user_ids), record.organisation_id, NotificationKind.MENTIONED,
                          record=record, comment_id=comment_id)


@dataclass(frozen=True, slots=True)
class Notifying:
    """A ``knowledge.RecordHistory`` that keeps ``inner``'s history and then notifies (``Notifications``), so
    every create and update — whichever front door or use case made it — notifies the same way."""

    inner: RecordHistory  # ``record_history.RecordKeeping``
    notifications: Notifications

    def created(self, ws: Workspace, record: Record) -> None:
        self.inner.created(ws, record)
        self.notifications.record_created(ws.principal.user_id, record)
        if _in_review(record):
            self.notifications.review_awaited(ws.principal.user_id, record, ws.directory)

    def changed(self, ws: Workspace, before: Record, after: Record) -> Record:
        saved = self.inner.changed(ws, before, after)
        self.notifications.record_changed(ws.principal.user_id, before, saved)
        if _in_review(saved) and not _in_review(before):
            self.notifications.review_awaited(ws.principal.user_id, saved, ws.directory)
        return saved


def first_among(candidates: Sequence[int], ask: Callable[[list[int]], frozenset[int]], wanted: int) -> list[int]:
    """The first ``wanted`` of ``candidates`` (in their order) that ``ask`` — one statement per call, e.g.
    ``RecordStore.readers_among`` — says qualify, asked a batch at a time: checking each user costs the store the
    visibility predicate once (about 0.2 ms), so a batch twice the size wanted usually ends the search at once
    (an open record's readers), and only a rare scope walks every member."""
    found: list[int] = []
    batch = max(2 * wanted, 20)
    for start in range(0, len(candidates), batch):
        chunk = list(candidates[start:start + batch])
        qualified = ask(chunk)
        found += [u for u in chunk if u in qualified]
        if len(found) >= wanted:
            break
    return found[:wanted]


def _other_active_members(directory: Directory, org_id: int, actor_id: int | None) -> list[int]:
    """The organisation's active members but the actor, by user id (the order reviewers are told in)."""
    return sorted(m.user_id for m in directory.members(org_id) if m.is_active and m.user_id != actor_id)


def _in_review(record: Record) -> bool:
    return record.type is RecordType.SNAPSHOT and record.status == "pending_review"
