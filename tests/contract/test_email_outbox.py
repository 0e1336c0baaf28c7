"""The email outbox ports against their fakes and PostgreSQL (issue 19): ``EmailOutbox`` (queueing on the
caller's transaction, dead letters) with the workers' ``EmailDelivery`` (claims under a lease, sent, retried
with backoff, dead-lettered, purged), two workers sending every message exactly once; and ``PasswordResets``
(tokens by hash, single use, the throttling log).

Delivery runs its own transactions, so the PostgreSQL side uses one database for the module and empties the
outbox before each test; the PasswordResets suite runs in a rolled-back transaction.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.fake_email import InMemoryEmailOutbox, InMemoryPasswordResets, RecordingTransport
from tests.fakes import InMemoryDirectory
from tow_adapters.postgres.directory import PgDirectory
from tow_adapters.postgres.email_outbox import PgEmailDelivery, PgEmailOutbox
from tow_adapters.postgres.engine import PoolOptions, create_engine
from tow_adapters.postgres.migrator import PgSchemaMigrator
from tow_adapters.postgres.password_resets import PgPasswordResets
from tow_core.jobs import RetryPolicy
from tow_core.mail import OutgoingEmail
from tow_core.outbox import EmailStatus, send_next

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(lease_seconds=60, max_attempts=2, base_delay_seconds=30)


def hello(n: int = 0) -> OutgoingEmail:
    return OutgoingEmail(f"person{n}@example.com", f"Hello {n}", f"text {n}", f"<p>html {n}</p>")


@pytest.fixture(scope="module")
def outbox_engine(embedded_postgres):
    embedded_postgres.ensure_database("email_outbox_contract")
    engine = create_engine(embedded_postgres.url("email_outbox_contract"), PoolOptions(pool_size=4, max_overflow=2))
    PgSchemaMigrator(engine).upgrade()
    yield engine
    engine.dispose()


class Outbox:
    """``queue``/``dead_letters`` committed at once (as the change that caused them would), and ``delivery``."""

    def __init__(self, queue, delivery) -> None:
        self._queue, self.delivery = queue, delivery

    def queue(self, message: OutgoingEmail, now: datetime = T) -> int:
        return self._queue(lambda outbox: outbox.queue(message, now=now))

    def dead_letters(self):
        return self._queue(lambda outbox: outbox.dead_letters(limit=10))


@pytest.fixture(params=["fake", "postgres"])
def outbox(request) -> Outbox:
    if request.param == "fake":
        fake = InMemoryEmailOutbox()
        return Outbox(lambda use: use(fake), fake)
    engine = request.getfixturevalue("outbox_engine")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM email_outbox"))

    def committed(use):
        with engine.begin() as conn:
            return use(PgEmailOutbox(conn))

    return Outbox(committed, PgEmailDelivery(engine))


def test_a_queued_message_is_claimed_whole_once_and_sent_keeps_only_recipient_and_subject(outbox):
    email_id = outbox.queue(hello())
    claimed = outbox.delivery.claim(now=T, policy=POLICY)
    assert (claimed.id, claimed.message, claimed.status, claimed.attempts) == (email_id, hello(), EmailStatus.SENDING, 1)
    assert outbox.delivery.claim(now=T, policy=POLICY) is None  # leased
    assert outbox.delivery.sent(claimed, now=T) is True
    assert outbox.delivery.sent(claimed, now=T) is False  # a claim is answered once
    assert outbox.delivery.claim(now=T + timedelta(days=1), policy=POLICY) is None


def test_a_message_not_yet_due_waits(outbox):
    outbox.queue(hello(), now=T + timedelta(seconds=5))
    assert outbox.delivery.claim(now=T, policy=POLICY) is None
    assert outbox.delivery.claim(now=T + timedelta(seconds=5), policy=POLICY) is not None


def test_a_failure_is_retried_after_its_backoff_then_dead_lettered_with_its_last_error(outbox):
    email_id = outbox.queue(hello())
    first = outbox.delivery.claim(now=T, policy=POLICY)
    assert outbox.delivery.failed(first, "451 try later", now=T, policy=POLICY) is EmailStatus.QUEUED
    assert outbox.delivery.claim(now=T + timedelta(seconds=29), policy=POLICY) is None
    second = outbox.delivery.claim(now=T + timedelta(seconds=30), policy=POLICY)
    assert (second.attempts, second.last_error) == (2, "451 try later")
    assert outbox.delivery.failed(second, "x" * 5000, now=T + timedelta(seconds=31), policy=POLICY) is EmailStatus.DEAD
    [dead] = outbox.dead_letters()
    assert (dead.id, dead.status, dead.attempts, dead.message, len(dead.last_error)) == (
        email_id, EmailStatus.DEAD, 2, hello(), 2000)
    assert outbox.delivery.claim(now=T + timedelta(days=1), policy=POLICY) is None


def test_an_expired_lease_is_claimed_again_and_the_old_claim_is_lost(outbox):
    outbox.queue(hello())
    stalled = outbox.delivery.claim(now=T, policy=POLICY)
    again = outbox.delivery.claim(now=T + timedelta(seconds=60), policy=POLICY)
    assert again.attempts == 2
    assert outbox.delivery.sent(stalled, now=T) is False
    assert outbox.delivery.failed(stalled, "late", now=T, policy=POLICY) is None
    assert outbox.delivery.sent(again, now=T) is True


def test_a_lease_that_expires_after_the_last_attempt_dead_letters_the_message(outbox):
    outbox.queue(hello())
    outbox.delivery.claim(now=T, policy=POLICY)
    outbox.delivery.claim(now=T + timedelta(seconds=60), policy=POLICY)
    assert outbox.delivery.claim(now=T + timedelta(seconds=120), policy=POLICY) is None
    [dead] = outbox.dead_letters()
    assert "lease expired 2 times" in dead.last_error


def test_dead_letters_are_newest_first_and_finished_messages_are_purged_by_age(outbox):
    ids = [outbox.queue(hello(n)) for n in range(3)]
    for n, at in ((0, T), (1, T + timedelta(hours=1))):
        claimed = outbox.delivery.claim(now=at, policy=POLICY)
        assert claimed.id == ids[n]
        outbox.delivery.failed(claimed, "no", now=at, policy=RetryPolicy(60, max_attempts=1))
    assert [d.id for d in outbox.dead_letters()] == [ids[1], ids[0]]
    sent = outbox.delivery.claim(now=T + timedelta(hours=2), policy=POLICY)
    outbox.delivery.sent(sent, now=T + timedelta(hours=2))
    assert outbox.delivery.purge_finished(before=T + timedelta(minutes=30)) == 1
    assert [d.id for d in outbox.dead_letters()] == [ids[1]]
    assert outbox.delivery.purge_finished(before=T + timedelta(days=1)) == 2


def test_two_workers_send_every_message_exactly_once(outbox):
    queued = {outbox.queue(hello(n)) for n in range(30)}
    transports = [RecordingTransport(), RecordingTransport()]
    start = threading.Barrier(2)

    def work(transport: RecordingTransport) -> None:
        start.wait()
        while send_next(outbox.delivery, transport, clock=lambda: T, policy=POLICY) is not None:
            pass

    threads = [threading.Thread(target=work, args=(t,)) for t in transports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    subjects = [m.subject for t in transports for m in t.sent]
    assert sorted(subjects) == sorted(f"Hello {n}" for n in range(30)) and len(queued) == 30


# --- PasswordResets -----------------------------------------------------------------------------------------


@pytest.fixture(params=["fake", "postgres"])
def resets(request):
    if request.param == "fake":
        directory = InMemoryDirectory()
        return directory, InMemoryPasswordResets()
    conn = request.getfixturevalue("outbox_engine").connect()
    transaction = conn.begin()
    request.addfinalizer(conn.close)
    request.addfinalizer(transaction.rollback)
    return PgDirectory(conn), PgPasswordResets(conn)


def test_a_token_is_found_by_its_hash_only_and_using_the_accounts_tokens_uses_every_one(resets):
    directory, store = resets
    ada, bob = (directory.add_user(f"{n}-{id(store)}@example.com", n, None, server_admin=False).id
                for n in ("ada", "bob"))
    first = store.add_token(ada, "hash-1", now=T, expires_at=T + timedelta(minutes=30))
    store.add_token(ada, "hash-2", now=T, expires_at=T + timedelta(minutes=30))
    theirs = store.add_token(bob, "hash-3", now=T, expires_at=T + timedelta(minutes=30))
    assert (first.user_id, first.created_at, first.expires_at, first.used_at) == (ada, T, T + timedelta(minutes=30),
                                                                                 None)
    assert store.token_by_hash("hash-1") == first and store.token_by_hash("hash-9") is None
    assert store.token_by_hash("hash-1", for_update=True) == first
    assert store.use_tokens_of(ada, T + timedelta(minutes=1)) == 2
    assert store.token_by_hash("hash-2").used_at == T + timedelta(minutes=1)
    assert store.token_by_hash("hash-3") == theirs  # another account's token is untouched
    assert store.use_tokens_of(ada, T + timedelta(minutes=2)) == 0


def test_attempts_are_counted_by_address_and_client_within_the_window_newest_first(resets):
    _, store = resets
    for minute, (email, ip) in enumerate([("a@example.com", "192.0.2.1"), ("a@example.com", "192.0.2.2"),
                                          ("b@example.com", "192.0.2.1"), ("", "192.0.2.1")]):
        store.record_attempt(email, ip, T + timedelta(minutes=minute), forget_before=T - timedelta(hours=1))
    assert store.recent_attempts(T - timedelta(seconds=1), limit=10, email="a@example.com") == [
        T + timedelta(minutes=1), T]
    assert store.recent_attempts(T - timedelta(seconds=1), limit=2, client_ip="192.0.2.1") == [
        T + timedelta(minutes=3), T + timedelta(minutes=2)]
    assert store.recent_attempts(T, limit=10, email="a@example.com", client_ip="192.0.2.1") == []
    store.record_attempt("c@example.com", "192.0.2.9", T + timedelta(hours=2), forget_before=T + timedelta(hours=1))
    assert store.recent_attempts(T - timedelta(seconds=1), limit=10, client_ip="192.0.2.1") == []  # forgotten
