"""Differential leak test of notifications (issue 19) on a real PostgreSQL, over the random worlds of
test_visibility_differential (organisations, users active or not, memberships, groups, projects, grants).

Each world's records are tickets whose titles and bodies are secrets. Random events then go through the one
place notifications are created (``tow_core.notifications.Notifications`` over ``PgNotifications`` and
``PgRecordStore``): assignments, mentions added to a body (``@[Name](user:ID)``), and comments on tickets with
random watchers and mentions in the comment. What was created must be exactly what the pure policy allows: a
notification for each recipient other than the actor who can read the record at that moment
(``can_read_scope``) — nothing more (a leak) and nothing less. Then random revocations follow (grants, group
memberships, memberships, restricted projects, deactivated users), and every notification of every user in
every organisation is read back through ``PgNotifications.shown``: its record (title, display ID), actor and
comment appear exactly while the pure policy says the reader reads the record, and otherwise it shows only "a
record you can no longer see" — no secret in its text. Random people want some kinds by email: after the
revocations every queued ``notification_email`` job runs (``NotificationMailer``), and exactly the notifications
whose recipient is active and still reads the record are emailed, with no secret of any record they cannot
read in the subject, text, HTML or headers. Then they all switch to a daily digest: the digest each gets lists
exactly the records of their emailed notifications they still read, and no other record's secret. ``STATS`` counts
worlds, events, notifications, emails, checks and leaks. Who the editor offers to mention on each record is compared
with the policy too. Three quick tests do the same for records put up for review (exactly the writers of the scope
are told), for memory diffs proposed (exactly the members who read and write the diff's scope, never its author)
and for notifications about agent runs (only a run's owner is told, and only its owner is shown which run).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.test_visibility_differential import REVOCATIONS, World, load, revoke, world_engine, worlds
from tests.fake_unit_of_work import fake_transactions
from tests.suite_figures import say
from tow_adapters.postgres.agent_runs import PgAgentRuns
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.email_outbox import PgEmailOutbox
from tow_adapters.postgres.jobs import PgJobQueue
from tow_adapters.postgres.memory_diffs import PgMemoryDiffStore
from tow_adapters.postgres.notifications import PgNotifications
from tow_adapters.postgres.records import PgRecordStore
from tow_core.access import can_read_scope, can_write_scope
from tow_core.agent_runs import AgentRunStatus, new_run
from tow_core.mail import MailComposer
from tow_core.memory_diffs import CreateItem, DiffSource, NewMemoryDiff
from tow_core.notifications import (
    EMAIL_JOB,
    LOST,
    LOST_DIFF,
    MAX_REVIEWERS_TOLD,
    Delivery,
    Digest,
    NewNotification,
    NotificationKind,
    Notifications,
    mention_markup,
)
from tow_core.records import Record
from tow_core.use_cases.notification_email import NotificationMailer
from tow_http.email_templates import JinjaEmailTemplates
from tow_http.session_cookie import SessionCookieSigner

STATS: dict = {"worlds": 0, "events": 0, "created": 0, "diff_told": 0, "emails": 0, "digests": 0, "checks": 0,
               "leaks": 0}
SIGNER = SessionCookieSigner("notification-leak-secret-0123456789abcdef")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def secret(record_id: int) -> str:
    return f"Secret-{record_id}-zq"


@pytest.fixture(scope="module")
def notification_engine(embedded_postgres, request):
    engine = world_engine(embedded_postgres, "notification_leak")
    yield engine
    engine.dispose()
    if STATS["worlds"]:
        say(request.config, f"notification leak: {STATS['worlds']} worlds, {STATS['events']} events, "
            f"{STATS['created']} notifications ({STATS['diff_told']} about memory diffs), {STATS['emails']} emails, {STATS['digests']} daily digests, "
            f"{STATS['checks']} checks, "
            f"{STATS['leaks']} leaks")


def expect(got, want, context: str) -> None:
    STATS["checks"] += 1
    if got != want:
        STATS["leaks"] += 1
    assert got == want, f"{context}: got {got}, policy says {want}"


def events(world: World, data) -> list[tuple]:
    """(assign, actor, record, assignee) | (mention, actor, record, users) | (comment, actor, record, users)."""
    users, records = sorted(world.active), sorted(world.records)
    drawn = []
    for n in range(data.draw(st.integers(1, 10), label="events")):
        kind = data.draw(st.sampled_from(["assign", "mention", "comment", "watch"]), label=f"event{n}")
        actor, record = data.draw(st.sampled_from(users), label="actor"), data.draw(st.sampled_from(records))
        org = world.records[record].organisation_id
        # Mostly members of the record's organisation (readers more often), anyone else too.
        people = st.sampled_from(sorted({u for (o, u) in world.memberships if o == org}) or users) | st.sampled_from(
            users)
        if kind == "assign":
            drawn.append((kind, actor, record, data.draw(people, label="assignee")))
        else:
            drawn.append((kind, actor, record, frozenset(data.draw(st.lists(people, max_size=3), label="people"))))
    return drawn


class Run:
    def __init__(self, world: World, conn: sa.Connection, emailed: dict[int, set[str]]) -> None:
        self.world, self.conn, self.emailed = world, conn, emailed
        self.store, self.records = PgNotifications(conn), PgRecordStore(conn)
        self.notifications = Notifications(self.store, self.records, NOW, PgJobQueue(conn))
        for user, kinds in emailed.items():
            for kind in kinds:
                self.store.set_preference(user, NotificationKind(kind), Delivery.EMAIL)
        self.watchers: dict[int, set[int]] = {}
        self.wanted: list[tuple[int, str, int]] = []  # (recipient, kind, record)
        self.comment_ids = iter(range(1, 10_000))

    def insert_records(self) -> None:
        rows = [{"id": r, "o": s.organisation_id, "k": s.kind.value, "ref": s.ref_id, "title": secret(r),
                 "body": f"body of {secret(r)}", "fields": json.dumps({})} for r, s in self.world.records.items()]
        self.conn.execute(sa.text(
            "INSERT INTO records (id, organisation_id, type, prefix, number, scope_kind, scope_ref, title, body, "
            "status, fields) VALUES (:id, :o, 'ticket', 'TKT', :id, :k, :ref, :title, :body, 'todo', "
            "CAST(:fields AS jsonb))"), rows)

    def reads(self, user: int, record_id: int) -> bool:
        scope = self.world.records[record_id]
        return can_read_scope(self.world.principal(user), scope, self.world.project_access(scope))

    def record(self, record_id: int) -> Record:
        found = self.records.for_update(self.world.records[record_id].organisation_id, record_id)
        assert found is not None
        return found

    def want(self, actor: int, recipient: int, kind: NotificationKind, record_id: int) -> None:
        if recipient != actor and self.reads(recipient, record_id):
            self.wanted.append((recipient, kind.value, record_id))

    def apply(self, event: tuple) -> None:
        kind, actor, record_id, who = event
        record = self.record(record_id)
        STATS["events"] += 1
        if kind == "assign":
            before = record
            after = replace(record, fields={"assignee_id": who})
            self.notifications.record_changed(actor, before, after)
            self.watchers.setdefault(record_id, set()).add(who)
            self.want(actor, who, NotificationKind.ASSIGNED, record_id)
        elif kind == "mention":
            body = " ".join(mention_markup(u, f"user {u}") for u in sorted(who))
            after = replace(record, body=f"{record.body} {body}")
            self.notifications.record_changed(actor, record, after)
            for user in sorted(who):
                self.want(actor, user, NotificationKind.MENTIONED, record_id)
        elif kind == "watch":
            for user in who:
                self.store.watch(record_id, user)
                self.watchers.setdefault(record_id, set()).add(user)
        else:
            comment_id = next(self.comment_ids)
            body = "see " + " ".join(mention_markup(u, f"user {u}") for u in sorted(who))
            self.conn.execute(sa.text("INSERT INTO ticket_comments (id, record_id, author_id, body) "
                                      "VALUES (:id, :r, :a, :b)"), {"id": comment_id, "r": record_id, "a": actor,
                                                                     "b": body})
            watching = self.watchers.setdefault(record_id, set())
            watching.add(actor)
            self.notifications.comment_added(actor, record, comment_id, body)
            for user in sorted(who):
                self.want(actor, user, NotificationKind.MENTIONED, record_id)
            for user in sorted(watching - who):
                self.want(actor, user, NotificationKind.COMMENTED, record_id)

    def created(self) -> list[tuple[int, str, int]]:
        return sorted(tuple(r) for r in self.conn.execute(sa.text(
            "SELECT user_id, kind, record_id FROM notifications")).all())

    def mailer(self) -> NotificationMailer:
        transactions = fake_transactions(lambda: NOW, notifications=self.store, directory=PgDirectory(self.conn),
                                         email_outbox=PgEmailOutbox(self.conn))
        return NotificationMailer(transactions, SIGNER, MailComposer(JinjaEmailTemplates(), "http://tow.test"))

    def check_digests(self) -> None:
        """Everyone switched to a daily digest two days ago: each digest sent now lists exactly the records of the
        notifications of their emailed kinds they still read (all still unread), and no other record's secret."""
        for user in self.emailed:
            self.store.set_digest(user, Digest.DAILY, now=NOW - 2 * DAY)
        self.conn.execute(sa.text("DELETE FROM email_outbox"))  # the single emails were checked
        self.mailer().send_digests(NOW)
        rows = self.conn.execute(sa.text("SELECT user_id, kind, record_id FROM notifications")).all()
        wanted: dict[str, set[int]] = {}
        for user, kind, record in rows:
            if kind in self.emailed.get(user, ()) and self.world.active[user] and self.reads(user, record):
                wanted.setdefault(f"u{user}@example.com", set()).add(record)
        sent = self.conn.execute(sa.text("SELECT recipient, subject, text_body, html_body, headers::text "
                                         "FROM email_outbox")).all()
        STATS["digests"] += len(sent)
        listed = {recipient: {r for r in self.world.records if any(secret(r) in part for part in parts)}
                  for recipient, *parts in sent}
        expect(listed, wanted, "records listed in the daily digests")

    def check_emails(self) -> None:
        """Runs every queued notification email; compares what was sent with what the policy allows now."""
        mailer = self.mailer()
        for (payload,) in self.conn.execute(sa.text("SELECT payload FROM jobs WHERE kind = :k ORDER BY id"),
                                            {"k": EMAIL_JOB}).all():
            mailer.send(SimpleNamespace(payload=payload))
        rows = self.conn.execute(sa.text("SELECT id, user_id, kind, record_id FROM notifications")).all()
        wanted = sorted(f"u{user}@example.com" for _, user, kind, record in rows
                        if kind in self.emailed.get(user, ()) and self.world.active[user] and self.reads(user, record))
        sent = self.conn.execute(sa.text("SELECT recipient, subject, text_body, html_body, headers::text "
                                         "FROM email_outbox")).all()
        STATS["emails"] += len(sent)
        expect(sorted(r[0] for r in sent), wanted, "notification emails sent")
        for recipient, *parts in sent:
            user = int(recipient[1:].partition("@")[0])
            unreadable = [r for r in self.world.records if not self.reads(user, r)]
            expect([r for r in unreadable if any(secret(r) in part for part in parts)], [],
                   f"secrets of unreadable records in the email to {recipient}")

    def check_mentionable(self) -> None:
        """Who the editor offers to mention on a record (``NotificationUseCases.mentionable`` asks
        ``readers_among`` of the organisation's members): exactly the users the policy lets read it."""
        everyone = sorted(self.world.active)
        for record_id in sorted(self.world.records):
            org = self.world.records[record_id].organisation_id
            expect(self.records.readers_among(org, record_id, everyone),
                   frozenset(u for u in everyone if self.reads(u, record_id)), f"who may be mentioned on {record_id}")

    def check_shown(self, phase: str) -> None:
        for user in self.world.active:
            for org in self.world.orgs:
                for shown in self.store.shown(user, org, unread_only=False, before_id=None, limit=100):
                    record_id = self.conn.execute(sa.text("SELECT record_id FROM notifications WHERE id = :id"),
                                                  {"id": shown.id}).scalar_one()
                    readable = self.reads(user, record_id)
                    context = f"{phase}: notification {shown.id} of user {user} about record {record_id}"
                    expect(shown.record is not None, readable, f"{context} shows its record")
                    expect(shown.lost, not readable, f"{context} is lost")
                    if readable:
                        expect(shown.record.title, secret(record_id), f"{context}'s title")
                    else:
                        expect((shown.actor_name, shown.comment_id), (None, None), f"{context}'s actor and comment")
                        expect(secret(record_id) in shown.text or LOST not in shown.text, False, f"{context}'s text")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(world=worlds(), revocations=REVOCATIONS, data=st.data())
def test_notifications_are_created_and_shown_exactly_as_the_policy_lets_each_reader_read(
        notification_engine, world: World, revocations, data):
    drawn = events(world, data)
    every_kind = {"assigned", "mentioned", "commented"}
    emailed = {u: data.draw(st.sets(st.sampled_from(sorted(every_kind))), label=f"emailed{u}")
               for u in sorted(world.active)}
    # Someone wants every kind by email, so that every world sends (or rightly withholds) some emails.
    emailed[data.draw(st.sampled_from(sorted(world.active)), label="emails everything")] = every_kind
    with notification_engine.connect() as conn:
        transaction = conn.begin()
        try:
            load(world, conn)
            run = Run(world, conn, emailed)
            run.insert_records()
            for event in drawn:
                run.apply(event)
            created = run.created()
            STATS["created"] += len(created)
            expect(created, sorted(run.wanted), "notifications created")
            run.check_mentionable()
            run.check_shown("before revocations")
            for kind, pick in revocations:
                revoke(world, conn, kind, pick)
            run.check_shown("after revocations")  # the very next statements see every revocation
            run.check_emails()  # rendered after the revocations, as a job runs later
            run.check_digests()
            STATS["worlds"] += 1
        finally:
            transaction.rollback()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(world=worlds(), data=st.data())
def test_agent_run_notifications_reach_and_show_their_runs_owner_alone(notification_engine, world: World, data):
    """Random users' runs end completed, failed or cancelled (``agent_run_ended``, the worker's end transaction),
    and rows naming a run are also forged for other users: exactly the owner of each completed or failed run is
    told, and a notification shows a run's id and kind only to its owner — never its input, output or error."""
    users = sorted(world.active)
    drawn = [(data.draw(st.sampled_from(users), label="owner"), data.draw(st.sampled_from(world.orgs), label="org"),
              data.draw(st.sampled_from([AgentRunStatus.COMPLETED, AgentRunStatus.FAILED, AgentRunStatus.CANCELLED]),
                        label="ends"), data.draw(st.sampled_from(users), label="forged for"))
             for _ in range(data.draw(st.integers(1, 6), label="runs"))]
    with notification_engine.connect() as conn:
        transaction = conn.begin()
        try:
            load(world, conn)
            store, runs = PgNotifications(conn), PgAgentRuns(conn)
            notifications = Notifications(store, PgRecordStore(conn), NOW, PgJobQueue(conn))
            owners, wanted, forged = {}, [], set()
            for owner, org, ends, forged_for in drawn:
                run = runs.create(new_run("chat", owner_id=owner, organisation_id=org, project_id=None,
                                          input={"question": f"Secret-question-{owner}-zq"}), now=NOW)
                owners[run.id] = owner
                if ends is not AgentRunStatus.CANCELLED:  # the rule: completed and failed runs tell their owner
                    wanted.append((owner, run.id))
                notifications.agent_run_ended(replace(run, status=ends, error="Secret-error-zq"))
                forged.add(store.add(NewNotification(forged_for, org, NotificationKind.RUN_FAILED, None, None, None,
                                                     NOW, run.id)))
            created = conn.execute(sa.text("SELECT id, user_id, agent_run_id FROM notifications ORDER BY id")).all()
            expect([(u, r) for i, u, r in created if i not in forged], wanted, "run notifications created")
            STATS["worlds"] += 1
            STATS["events"] += len(drawn)
            STATS["created"] += len(wanted)
            for user in users:
                for org in world.orgs:
                    for shown in store.shown(user, org, unread_only=False, before_id=None, limit=100):
                        run_id = conn.execute(sa.text("SELECT agent_run_id FROM notifications WHERE id = :id"),
                                              {"id": shown.id}).scalar_one()
                        mine = owners[run_id] == user
                        context = f"notification {shown.id} of user {user} about run {run_id}"
                        expect((shown.agent_run_id, shown.run_kind), (run_id, "chat") if mine else (None, None),
                               f"{context}'s run")
                        expect("Secret" in shown.text or shown.record is not None, False, f"{context}'s text")
        finally:
            transaction.rollback()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(world=worlds(), revocations=REVOCATIONS, data=st.data())
def test_review_notifications_reach_exactly_the_writers_of_the_scope_and_show_as_the_policy_lets(
        notification_engine, world: World, revocations, data):
    """Records put up for review (``review_awaited``, as a snapshot entering pending_review) tell exactly the
    active members other than the actor who may write the record's scope (``can_write_scope``), and after random
    revocations each is shown exactly as the reader still reads its record."""
    users, records = sorted(world.active), sorted(world.records)
    drawn = [(data.draw(st.sampled_from(users), label="actor"), data.draw(st.sampled_from(records), label="record"))
             for _ in range(data.draw(st.integers(1, 4), label="reviews"))]
    with notification_engine.connect() as conn:
        transaction = conn.begin()
        try:
            load(world, conn)
            run = Run(world, conn, {})
            run.insert_records()
            directory = PgDirectory(conn)
            for actor, record_id in drawn:
                STATS["events"] += 1
                scope = world.records[record_id]
                writers = [u for (o, u) in sorted(world.memberships, key=lambda m: m[1])
                           if o == scope.organisation_id and world.active[u] and u != actor
                           and can_write_scope(world.principal(u), scope, world.project_access(scope))]
                for user in writers[:MAX_REVIEWERS_TOLD]:
                    run.want(actor, user, NotificationKind.REVIEW, record_id)
                run.notifications.review_awaited(actor, run.record(record_id), directory)
            created = run.created()
            STATS["created"] += len(created)
            expect(created, sorted(run.wanted), "review notifications created")
            for kind, pick in revocations:
                revoke(world, conn, kind, pick)
            run.check_shown("after revocations")
            STATS["worlds"] += 1
        finally:
            transaction.rollback()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(world=worlds(), revocations=REVOCATIONS, data=st.data())
def test_memory_diff_notifications_reach_exactly_its_reviewers_and_show_as_the_policy_lets(
        notification_engine, world: World, revocations, data):
    """Memory diffs proposed in random scopes by random authors (``diff_proposed``, as ``propose_diff`` calls it)
    tell exactly the active members other than the author who may read and write the diff's scope (the inbox's
    reviewers), at most ``MAX_REVIEWERS_TOLD``; after random revocations each shows the diff's id and size exactly
    while the reader still reads its scope, and otherwise "a memory diff you can no longer see" — never a title."""
    users, scopes = sorted(world.active), sorted(set(world.records.values()), key=repr)
    drawn = [(data.draw(st.sampled_from(users), label="author"), data.draw(st.sampled_from(scopes), label="scope"))
             for _ in range(data.draw(st.integers(1, 4), label="diffs"))]
    with notification_engine.connect() as conn:
        transaction = conn.begin()
        try:
            load(world, conn)
            diffs, directory, store = PgMemoryDiffStore(conn), PgDirectory(conn), PgNotifications(conn)
            notifications = Notifications(store, PgRecordStore(conn), NOW, PgJobQueue(conn), diffs=diffs)
            wanted, scope_of = [], {}
            for n, (author, scope) in enumerate(drawn):
                STATS["events"] += 1
                diff = diffs.add(NewMemoryDiff(scope.organisation_id, scope, DiffSource.MANUAL, None, "why", author,
                                               (CreateItem(f"Secret-diff-{n}-zq", "body", {"memory_type": "fact"}),)))
                scope_of[diff.id] = scope
                reviewers = [u for (o, u) in sorted(world.memberships, key=lambda m: m[1])
                             if o == scope.organisation_id and world.active[u] and u != author
                             and can_write_scope(world.principal(u), scope, world.project_access(scope))]
                wanted += [(u, diff.id) for u in reviewers[:MAX_REVIEWERS_TOLD]]
                notifications.diff_proposed(author, diff, directory)
            created = sorted(tuple(r) for r in conn.execute(sa.text(
                "SELECT user_id, memory_diff_id FROM notifications")).all())
            STATS["created"] += len(created)
            STATS["diff_told"] += len(created)
            expect(created, sorted(wanted), "memory diff notifications created")
            for kind, pick in revocations:
                revoke(world, conn, kind, pick)
            for user in users:
                for org in world.orgs:
                    for shown in store.shown(user, org, unread_only=False, before_id=None, limit=100):
                        diff_id = conn.execute(sa.text("SELECT memory_diff_id FROM notifications WHERE id = :id"),
                                               {"id": shown.id}).scalar_one()
                        scope = scope_of[diff_id]
                        reads = can_read_scope(world.principal(user), scope, world.project_access(scope))
                        context = f"notification {shown.id} of user {user} about memory diff {diff_id}"
                        expect((shown.memory_diff_id, shown.lost), (diff_id, False) if reads else (None, True),
                               f"{context}'s diff")
                        expect("Secret" in shown.text or (not reads and LOST_DIFF not in shown.text), False,
                               f"{context}'s text")
            STATS["worlds"] += 1
        finally:
            transaction.rollback()
