"""The email outbox over its fakes (issue 19): an emailed invite is queued with the invite (and not at all
when the invite is refused), carries the accept link into ``runtime.public_app_url`` and is audited as
emailed; a worker sends what is due, retries a failure with backoff and dead-letters it after
``email.max_attempts``, and a message whose worker died is sent again once its lease expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fake_email import InMemoryEmailOutbox, RecordingTransport
from tests.unit.test_administration_use_cases import AdminWorld
from tow_core.access import OrgRole
from tow_core.audit import AuditAction
from tow_core.errors import AccessDenied, InvalidInput
from tow_core.jobs import RetryPolicy
from tow_core.mail import MailComposer, OutgoingEmail
from tow_core.outbox import EmailStatus, send_next
from tow_core.use_cases.administration import OrganisationUseCases
from tow_http.email_templates import JinjaEmailTemplates

WEEK = timedelta(days=7)


@pytest.fixture
def w() -> AdminWorld:
    return AdminWorld()


def emailing(w: AdminWorld) -> OrganisationUseCases:
    mail = MailComposer(JinjaEmailTemplates(), "https://tow.example.com/", "TOW")
    return OrganisationUseCases(w.transactions_over(w.directory), w.tokens, mail)


def test_an_emailed_invite_is_queued_with_the_invite_and_carries_its_accept_link(w):
    created = emailing(w).create_invite(w.credential("ada"), w.org, role=OrgRole.MEMBER, email="Dee@Example.com",
                                        lifetime=WEEK, send_email=True)
    assert created.emailed and created.invite.email == "dee@example.com"
    [queued] = w.outbox.all()
    message = queued.message
    assert (message.to, message.subject, queued.status) == ("dee@example.com", "Ada invited you to Acme on TOW",
                                                            EmailStatus.QUEUED)
    link = f"https://tow.example.com/invite/{created.token}"
    assert link in message.text and f'href="{link}"' in message.html and "as member" in message.text
    [entry] = [e for e in w.directory.audit_log if e.action is AuditAction.INVITE_CREATED]
    assert entry.details == {"role": "member", "email": "dee@example.com", "emailed": True}


def test_an_invite_not_sent_by_email_queues_nothing_and_sending_needs_an_address(w):
    cases = emailing(w)
    cases.create_invite(w.credential("ada"), w.org, role=OrgRole.MEMBER, email="dee@example.com", lifetime=WEEK)
    with pytest.raises(InvalidInput) as refused:
        cases.create_invite(w.credential("ada"), w.org, role=OrgRole.MEMBER, email="  ", lifetime=WEEK,
                            send_email=True)
    assert refused.value.field == "email"
    assert w.outbox.all() == []


def test_a_refused_invite_sends_no_email(w):
    with pytest.raises(AccessDenied):
        emailing(w).create_invite(w.credential("bob"), w.org, role=OrgRole.MEMBER, email="dee@example.com",
                                  lifetime=WEEK, send_email=True)
    with pytest.raises(AccessDenied):  # an admin may not invite an owner
        w.directory.set_membership(w.org, w.ids["cy"], OrgRole.ADMIN)
        emailing(w).create_invite(w.credential("cy"), w.org, role=OrgRole.OWNER, email="dee@example.com",
                                  lifetime=WEEK, send_email=True)
    assert w.outbox.all() == []


def test_names_in_an_invite_are_escaped_in_html_and_folded_onto_one_subject_line(w):
    w.directory.update_organisation(w.org, name="<b>Acme</b>\r\nBcc: x@evil.example",
                                    workflow_mode=w.directory.organisation(w.org).workflow_mode,
                                    require_second_reviewer=False)
    emailing(w).create_invite(w.credential("ada"), w.org, role=OrgRole.MEMBER, email="dee@example.com",
                              lifetime=WEEK, send_email=True)
    [queued] = w.outbox.all()
    assert "\n" not in queued.message.subject and "\r" not in queued.message.subject
    assert "<b>Acme</b>" not in queued.message.html and "&lt;b&gt;Acme&lt;/b&gt;" in queued.message.html


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


POLICY = RetryPolicy(lease_seconds=60, max_attempts=3, base_delay_seconds=30)
HELLO = OutgoingEmail("dee@example.com", "Hello", "text", "<p>html</p>")


def test_a_due_message_is_sent_once_and_keeps_only_its_recipient_and_subject():
    outbox, transport, clock = InMemoryEmailOutbox(), RecordingTransport(), Clock()
    email_id = outbox.queue(HELLO, now=clock.now)
    attempt = send_next(outbox, transport, clock=clock, policy=POLICY)
    assert attempt.status is EmailStatus.SENT and transport.sent == [HELLO]
    assert send_next(outbox, transport, clock=clock, policy=POLICY) is None
    sent = outbox.message(email_id)
    assert (sent.status, sent.message.to, sent.message.subject, sent.message.text, sent.message.html) == (
        EmailStatus.SENT, "dee@example.com", "Hello", "", "")


def test_a_failing_transport_is_retried_with_backoff_then_dead_lettered_never_lost():
    outbox, transport, clock = InMemoryEmailOutbox(), RecordingTransport(), Clock()
    transport.refuse = True
    email_id = outbox.queue(HELLO, now=clock.now)
    first = send_next(outbox, transport, clock=clock, policy=POLICY)
    assert first.status is EmailStatus.QUEUED and "did not take the message" in first.error
    assert send_next(outbox, transport, clock=clock, policy=POLICY) is None  # not due before its backoff
    clock.now += timedelta(seconds=30)
    assert send_next(outbox, transport, clock=clock, policy=POLICY).status is EmailStatus.QUEUED
    clock.now += timedelta(seconds=59)
    assert send_next(outbox, transport, clock=clock, policy=POLICY) is None  # the second backoff is 60 s
    clock.now += timedelta(seconds=1)
    assert send_next(outbox, transport, clock=clock, policy=POLICY).status is EmailStatus.DEAD
    [dead] = outbox.dead_letters(limit=10)
    assert (dead.id, dead.attempts, dead.message) == (email_id, 3, HELLO)  # kept whole for the admin to see
    assert "did not take the message" in dead.last_error and transport.sent == []


def test_a_message_whose_worker_died_is_sent_again_once_its_lease_expires():
    outbox, transport, clock = InMemoryEmailOutbox(), RecordingTransport(), Clock()
    outbox.queue(HELLO, now=clock.now)
    crashed = outbox.claim(now=clock.now, policy=POLICY)
    assert send_next(outbox, transport, clock=clock, policy=POLICY) is None  # still leased
    clock.now += timedelta(seconds=60)
    assert send_next(outbox, transport, clock=clock, policy=POLICY).status is EmailStatus.SENT
    assert outbox.sent(crashed, now=clock.now) is False  # the dead worker's late answer changes nothing
    assert transport.sent == [HELLO]


def test_sent_and_dead_messages_are_purged_after_they_finished():
    outbox, transport, clock = InMemoryEmailOutbox(), RecordingTransport(), Clock()
    outbox.queue(HELLO, now=clock.now)
    waiting = outbox.queue(HELLO, now=clock.now + timedelta(days=1))
    send_next(outbox, transport, clock=clock, policy=POLICY)
    assert outbox.purge_finished(before=clock.now) == 0
    assert outbox.purge_finished(before=clock.now + timedelta(seconds=1)) == 1
    assert [e.id for e in outbox.all()] == [waiting]
