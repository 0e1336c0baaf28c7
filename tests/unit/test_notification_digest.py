"""The digest setting of notification emails through the use cases over the fakes (tow_core.notifications,
tow_core.use_cases.notification_email): ``immediate`` emails each notification of a kind set to email on its
own, ``daily`` queues no email per notification and one digest a day of the still-unread ones (shown as the
recipient may see them when it is sent), ``off`` sends no notification email at all; the digest's one-click
link turns it off. World: tests/unit/records_world.py (Ada owns Acme; Bob is an APP viewer; OPS is open)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fake_email import InMemoryEmailOutbox
from tests.fake_exports import InMemoryJobQueue
from tests.fake_notifications import InMemoryNotifications
from tests.fake_unit_of_work import fake_transactions, signed_in
from tests.unit.records_world import World
from tests.unit.test_notifications import _inbox_stores
from tow_core.errors import InvalidInput
from tow_core.jobs import JobStatus
from tow_core.mail import MailComposer
from tow_core.notifications import Delivery, Digest, NotificationKind
from tow_core.records import RecordType
from tow_core.use_cases.notification_email import NotificationMailer
from tow_core.use_cases.notifications import NotificationUseCases
from tow_core.use_cases.records import RecordUseCases
from tow_http.email_templates import JinjaEmailTemplates
from tow_http.session_cookie import SessionCookieSigner

SECRET = "Secret merger plan"
DAY = timedelta(days=1)


class Desk:
    def __init__(self) -> None:
        w = self.w = World()
        self.later = timedelta(0)  # how far the test moved time on
        self.store = InMemoryNotifications(w.records, w.directory)
        self.jobs, self.outbox = InMemoryJobQueue(), InMemoryEmailOutbox()
        transactions = fake_transactions(self.now, rollback=(w.records, w.directory, w.comments),
                                         directory=w.directory, records=w.records, history=w.keeping,
                                         notifications=self.store, jobs=self.jobs, email_outbox=self.outbox,
                                         **_inbox_stores(w))
        self.records = RecordUseCases(transactions)
        self.notifications = NotificationUseCases(transactions)
        self.signer = SessionCookieSigner("digest-test-secret-0123456789abcdef")
        self.mailer = NotificationMailer(transactions, self.signer,
                                         MailComposer(JinjaEmailTemplates(), "http://tow.test"))

    def now(self):
        return self.w.clock() + self.later

    def c(self, name: str):
        return signed_in(self.w.directory, self.w.ids[name], self.now())

    def assign(self, project: str, title: str, to: str = "bob"):
        return self.records.create(self.c("ada"), self.w.org, record_type=RecordType.TICKET,
                                   scope=("project", self.w.projects[project]), title=title, body="",
                                   fields={"assignee_id": self.w.ids[to]})

    def choose(self, digest: Digest | None, name: str = "bob") -> None:
        self.notifications.set_preferences(self.c(name), {NotificationKind.ASSIGNED: Delivery.EMAIL}, digest)

    def run_jobs(self) -> None:
        for job in [j for j in self.jobs.jobs.values() if j.status is JobStatus.QUEUED]:
            self.mailer.send(job)
            self.jobs.finish(job.id, JobStatus.COMPLETED)

    def mails(self) -> list:
        return [row.email.message for row in self.outbox._rows.values()]


@pytest.fixture
def d() -> Desk:
    return Desk()


def test_immediate_is_the_default_and_emails_each_notification(d):
    assert d.notifications.preferences(d.c("bob")).digest is Digest.IMMEDIATE
    d.choose(None)
    d.assign("OPS", "Fix login")
    d.run_jobs()
    assert [m.subject for m in d.mails()] == ["[TOW] A ticket is assigned to you: OPS-1"]


def test_off_sends_no_notification_email_whatever_the_kinds_say(d):
    d.choose(Digest.OFF)
    d.assign("OPS", "Fix login")
    d.run_jobs()
    d.later = 2 * DAY
    assert d.mailer.send_digests(d.now()) == 0
    assert d.mails() == [] and d.notifications.list(d.c("bob"), d.w.org).unread == 1  # still in the app


def test_daily_sends_one_digest_a_day_of_the_unread_ones_shown_as_they_are_then(d):
    d.choose(Digest.DAILY)
    d.assign("OPS", "Fix login")
    d.assign("OPS", "Fix logout")
    secret = d.assign("APP", SECRET)
    d.run_jobs()
    assert d.mails() == []  # no email per notification
    assert d.mailer.send_digests(d.now()) == 0  # the day that choosing daily began is not over
    grant = next(g for g in d.w.directory.grants(d.w.projects["APP"]) if g.user_id == d.w.ids["bob"])
    d.w.directory.delete_grant(grant.id)  # Bob loses the secret ticket before the digest is sent
    d.later = DAY
    assert d.mailer.send_digests(d.now()) == 1
    (digest,) = d.mails()
    assert digest.to == d.w.directory.user(d.w.ids["bob"]).email
    assert digest.subject == "[TOW] Your daily digest: 2 notifications"
    assert "Ada assigned you OPS-1 Fix login" in digest.text and "OPS-2 Fix logout" in digest.text
    assert SECRET not in digest.text + digest.html and str(secret.display_id) not in digest.text
    assert "http://tow.test/o/" in digest.text and digest.headers["List-Unsubscribe-Post"]
    assert d.mailer.send_digests(d.now() + timedelta(hours=23)) == 0  # nothing twice the same day
    d.later = 2 * DAY
    assert d.mailer.send_digests(d.now()) == 0  # nothing new since: no email
    d.assign("OPS", "Fix signup")
    d.notifications.mark_all_read(d.c("bob"), d.w.org)
    d.assign("OPS", "Fix reset")
    d.later = 3 * DAY
    assert d.mailer.send_digests(d.now()) == 1
    last = d.mails()[-1]
    assert "Fix reset" in last.text and "Fix signup" not in last.text and "Fix login" not in last.text
    assert last.subject.endswith(": 1 notification")


def test_a_digest_lists_only_kinds_set_to_email(d):
    d.choose(Digest.DAILY)
    d.notifications.set_preferences(d.c("bob"), {NotificationKind.ASSIGNED: Delivery.IN_APP})
    d.assign("OPS", "Fix login")
    d.later = DAY
    assert d.mailer.send_digests(d.now()) == 0


def test_choosing_daily_again_keeps_its_day_and_other_people_are_not_digested(d):
    d.choose(Digest.DAILY)
    d.later = DAY / 2
    d.choose(Digest.DAILY)
    d.assign("OPS", "Fix login")
    d.assign("OPS", "Fix cy's thing", to="cy")  # Cy is immediate (the default, kinds in-app): nothing
    d.later = DAY
    assert d.mailer.send_digests(d.now()) == 1 and len(d.mails()) == 1


def test_the_digest_unsubscribe_link_turns_the_digest_off(d):
    d.choose(Digest.DAILY)
    d.assign("OPS", "Fix login")
    d.later = DAY
    d.mailer.send_digests(d.now())
    token = d.mails()[0].headers["List-Unsubscribe"].rsplit("/", 1)[1].rstrip(">")
    assert d.mailer.unsubscribe(token) == "Daily digest of your notification emails"
    prefs = d.notifications.preferences(d.c("bob"))
    assert prefs.digest is Digest.OFF and prefs.kinds[NotificationKind.ASSIGNED] is Delivery.EMAIL
    with pytest.raises(InvalidInput):
        d.mailer.unsubscribe(token[:-2] + "xx")


def test_an_unknown_digest_is_refused_naming_the_field():
    from tow_core.notifications import digest_of
    with pytest.raises(InvalidInput) as raised:
        digest_of("weekly")
    assert raised.value.field == "digest"
