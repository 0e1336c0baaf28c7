"""Password reset by email through its use cases over fakes (issue 19): the answer never tells who has an
account, only an active account that signs in with a password gets a link, the link is single use, expires
after 30 minutes and sets only its own account's password, a reset ends every session of that account, and
requests and failed uses of links are throttled per address and per client."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.fake_email import InMemoryEmailOutbox, InMemoryPasswordResets
from tests.fake_exports import InMemoryJobQueue
from tests.fake_oidc_identities import InMemoryOidcIdentities
from tests.fake_tokens import InMemoryAccessTokens
from tests.fake_unit_of_work import fake_transactions, signed_in
from tests.fakes import FakePasswordHasher, InMemoryDirectory
from tests.unit.test_administration_use_cases import Tokens
from tow_core import accounts
from tow_core.access_tokens import NewToken, TokenAccess
from tow_core.audit import AuditAction
from tow_core.errors import AccessDenied, Conflict, InvalidInput, NotAuthenticated, NotFound, Throttled
from tow_core.jobs import JobStatus
from tow_core.password_reset import NEUTRAL_ANSWER
from tow_core.use_cases.password_reset import RESET_LINK_JOB, PasswordResetUseCases, ResetLinkMailer
from tow_http.bootstrap import mail_composer
from tow_http.config import Settings

HOUR = timedelta(hours=1)
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LINK = re.compile(r"http://tow\.example/reset-password/(tok-\d+)")


class ResetWorld:
    def __init__(self, *, single_sign_on: bool = False) -> None:
        self.now = T0
        self.directory = InMemoryDirectory(lambda: self.now)
        self.hasher = FakePasswordHasher()
        self.outbox, self.resets = InMemoryEmailOutbox(), InMemoryPasswordResets()
        self.identities = InMemoryOidcIdentities(self.directory)
        self.tokens = InMemoryAccessTokens()
        self.jobs = InMemoryJobQueue()
        d = self.directory
        self.ada = d.add_user("ada@example.com", "Ada", self.hasher.hash("ada's old password"), server_admin=True).id
        self.bob = d.add_user("bob@example.com", "Bob", self.hasher.hash("bob's old password"), server_admin=False).id
        self.sso_only = d.add_user("sso@example.com", "Sso", None, server_admin=False).id
        self.identities.link("https://idp.example", "sso-subject", self.sso_only, T0)
        self.gone = d.add_user("gone@example.com", "Gone", self.hasher.hash("gone's password"), server_admin=False).id
        d.set_active(self.gone, False)
        self.imported = d.add_user("imported@example.com", "Imported", None, server_admin=False).id
        transactions = fake_transactions(lambda: self.now, rollback=(self.directory, self.outbox, self.resets),
                                         directory=d, email_outbox=self.outbox, password_resets=self.resets,
                                         oidc_identities=self.identities, tokens=self.tokens,
                                         jobs=self.jobs)
        settings = Settings()
        settings = type(settings)(runtime=type(settings.runtime)(public_app_url="http://tow.example/"))
        self.cases = PasswordResetUseCases(transactions, self.hasher, Tokens(), mail_composer(settings),
                                           single_sign_on=single_sign_on)
        self.mailer = ResetLinkMailer(transactions, Tokens(), mail_composer(settings))

    def ask(self, email: str, client_ip: str = "198.51.100.7") -> str:
        """Asks, then runs the lookups the job worker would."""
        answer = self.cases.request_reset(email=email, client_ip=client_ip)
        self.run_jobs()
        return answer

    def run_jobs(self) -> None:
        for job in [j for j in self.jobs.jobs.values() if j.status is JobStatus.QUEUED]:
            assert job.kind == RESET_LINK_JOB
            self.mailer.send_link(job)
            self.jobs.finish(job.id, JobStatus.COMPLETED)

    def emailed_token(self, to: str) -> str:
        [message] = [e.message for e in self.outbox.all() if e.message.to == to]
        [token] = set(LINK.findall(message.text)) | set(LINK.findall(message.html))
        return token

    def reset(self, token: str, password: str = "a brand new password", client_ip: str = "198.51.100.7") -> int:
        return self.cases.reset_password(token=token, password=password, client_ip=client_ip)

    def signs_in(self, email: str, password: str) -> bool:
        return self.hasher.verify(self.directory.user_by_email(email).password_hash or "", password)


@pytest.fixture
def w() -> ResetWorld:
    return ResetWorld()


def test_the_answer_is_the_same_for_every_address_and_only_an_account_that_may_reset_gets_an_email(w):
    answers = {email: w.ask(email) for email in ("ada@example.com", "nobody@example.com", "sso@example.com",
                                                 "gone@example.com", "imported@example.com", "ADA@Example.com ")}
    assert set(answers.values()) == {NEUTRAL_ANSWER}
    assert sorted(e.message.to for e in w.outbox.all()) == ["ada@example.com", "ada@example.com",
                                                             "imported@example.com"]
    message = w.outbox.all()[0].message
    assert message.subject == "Reset your TOW password"
    assert "30 minutes" in message.text and "Ada" in message.text
    assert LINK.search(message.text) and LINK.search(message.html)
    assert {token.user_id for token in w.resets.tokens()} == {w.ada, w.imported}


def test_the_store_keeps_only_the_hash_of_the_emailed_token(w):
    w.ask("bob@example.com")
    token = w.emailed_token("bob@example.com")
    assert w.resets.token_by_hash(token) is None and w.resets.token_by_hash(f"h({token})") is not None


def test_a_link_sets_the_password_once_and_ends_every_session_of_its_account(w):
    sessions = [signed_in(w.directory, w.bob, T0) for _ in range(2)]
    ada_session = signed_in(w.directory, w.ada, T0)
    new = NewToken("ci", 30, TokenAccess.READ, None)
    bob_token = w.tokens.add_token(w.bob, "bob-token-hash", new, prefix="tow_pat_b", now=T0, expires_at=T0 + HOUR)
    ada_token = w.tokens.add_token(w.ada, "ada-token-hash", new, prefix="tow_pat_a", now=T0, expires_at=T0 + HOUR)
    w.ask("bob@example.com")
    token = w.emailed_token("bob@example.com")
    assert w.cases.reset_problem(token) is None
    assert w.reset(token) == 2
    assert w.signs_in("bob@example.com", "a brand new password")
    assert not w.signs_in("bob@example.com", "bob's old password")
    for session in sessions:
        with pytest.raises(NotAuthenticated):
            accounts.resolve_session(w.directory, token_hash=session.token_hash, now=w.now)
    accounts.resolve_session(w.directory, token_hash=ada_session.token_hash, now=w.now)  # another account: kept
    assert w.tokens.token(bob_token.id).revoked_at == w.now  # the account's access tokens end with its sessions
    assert w.tokens.token(ada_token.id).revoked_at is None
    assert w.signs_in("ada@example.com", "ada's old password")
    [entry] = [e for e in w.directory.audit_log if e.action is AuditAction.PASSWORD_RESET]
    assert (entry.organisation_id, entry.actor_id, entry.target) == (None, w.bob, f"user:{w.bob}")
    # reuse: refused, and it says so when opened
    with pytest.raises(Conflict, match="already used"):
        w.reset(token, "yet another password")
    assert "already used" in w.cases.reset_problem(token)
    assert w.signs_in("bob@example.com", "a brand new password")


def test_using_one_link_uses_every_other_outstanding_link_of_the_account(w):
    w.ask("bob@example.com")
    w.ask("bob@example.com")
    first, second = (LINK.search(e.message.text).group(1) for e in w.outbox.all())
    w.reset(second)
    with pytest.raises(Conflict, match="already used"):
        w.reset(first, "an attackers password")


def test_an_expired_link_is_refused_and_says_so_when_opened(w):
    w.ask("bob@example.com")
    token = w.emailed_token("bob@example.com")
    w.now = T0 + timedelta(minutes=29, seconds=59)
    assert w.cases.reset_problem(token) is None
    w.now = T0 + timedelta(minutes=30)
    assert "expired" in w.cases.reset_problem(token)
    with pytest.raises(Conflict, match="expired"):
        w.reset(token)
    assert w.signs_in("bob@example.com", "bob's old password")


def test_an_unknown_or_forged_link_is_refused_and_a_link_only_ever_sets_its_own_accounts_password(w):
    for forged in ("tok-999", "h(tok-1)", ""):
        assert "not valid" in w.cases.reset_problem(forged)
        with pytest.raises(NotFound):
            w.reset(forged)
    w.ask("bob@example.com")
    w.reset(w.emailed_token("bob@example.com"), "bob's new password")
    assert w.signs_in("ada@example.com", "ada's old password")  # Bob's link changed nothing of Ada's
    assert w.signs_in("bob@example.com", "bob's new password")


def test_a_link_of_an_account_deactivated_since_sets_nothing(w):
    w.ask("bob@example.com")
    token = w.emailed_token("bob@example.com")
    w.directory.set_active(w.bob, False)
    with pytest.raises(NotFound):
        w.reset(token)
    assert w.signs_in("bob@example.com", "bob's old password")


def test_a_weak_new_password_is_refused_and_leaves_the_link_usable(w):
    w.ask("bob@example.com")
    token = w.emailed_token("bob@example.com")
    with pytest.raises(InvalidInput) as refused:
        w.reset(token, "short")
    assert refused.value.field == "password"
    assert w.reset(token) == 0


def test_requests_are_throttled_per_address_the_same_for_unknown_addresses(w):
    for email in ("bob@example.com", "nobody@example.com"):
        for n in range(3):
            w.ask(email, client_ip=f"203.0.113.{n}")
        with pytest.raises(Throttled) as known:
            w.ask(email, client_ip="203.0.113.99")
        assert known.value.retry_after_seconds > 0
    assert len([e for e in w.outbox.all() if e.message.to == "bob@example.com"]) == 3
    w.now = T0 + timedelta(minutes=16)
    assert w.ask("bob@example.com") == NEUTRAL_ANSWER


def test_requests_and_failed_links_are_throttled_per_client_network(w):
    for n in range(10):
        w.ask(f"person{n}@example.com", client_ip=f"2001:db8:1:1::{n + 1}")  # one /64
    with pytest.raises(Throttled):
        w.ask("bob@example.com", client_ip="2001:db8:1:1::ff")
    assert w.ask("bob@example.com", client_ip="192.0.2.1") == NEUTRAL_ANSWER  # another client
    for _ in range(10):
        with pytest.raises(NotFound):
            w.reset("tok-guess", client_ip="192.0.2.50")  # each failure is counted, though it is refused
    token = w.emailed_token("bob@example.com")
    with pytest.raises(Throttled):
        w.reset(token, client_ip="192.0.2.50")
    assert w.reset(token, client_ip="192.0.2.1") == 0


def test_with_single_sign_on_there_is_no_reset():
    w = ResetWorld(single_sign_on=True)
    with pytest.raises(AccessDenied):
        w.ask("ada@example.com")
    with pytest.raises(AccessDenied):
        w.reset("tok-1")
    assert w.outbox.all() == []


def test_asking_queues_the_same_lookup_for_every_address_and_no_email_until_the_worker_runs_it(w):
    for address in ("ada@example.com", "nobody@example.com"):
        assert w.cases.request_reset(email=address, client_ip="198.51.100.7") == NEUTRAL_ANSWER
    assert [(job.kind, sorted(job.payload)) for job in w.jobs.jobs.values()] == [(RESET_LINK_JOB, ["email"])] * 2
    assert w.outbox.all() == []
    w.run_jobs()
    assert [e.message.to for e in w.outbox.all()] == ["ada@example.com"]
