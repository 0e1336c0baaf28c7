"""Password reset by email at every front door (rules in ``tow_core.password_reset``).

Asking always answers ``NEUTRAL_ANSWER`` and does the same work whatever the address: it records the attempt
(throttling) and queues a ``password_reset`` job, one transaction of the same statements, so neither the answer
nor its timing tells whether the address has an account. The job worker then looks the address up and, for an
account that may reset, stores the token's hash and queues the email in the outbox in one transaction; the email
worker sends it, so the answer never waits for the database lookup, the template or the mail server. A failed
use of a link is counted against the client in a transaction that commits before the refusal is raised.
With single sign-on (``auth.mode: oidc``) there is no reset: passwords are the provider's business (the
break-glass server admin's is set with `tow users set-password`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from tow_core import password_reset
from tow_core.accounts import client_network
from tow_core.audit import AuditAction, AuditEntry
from tow_core.errors import AccessDenied, NotFound, TowError
from tow_core.identity import normalise_email
from tow_core.jobs import Job, NewJob
from tow_core.mail import MailComposer
from tow_core.password_reset import NEUTRAL_ANSWER, RESET_LIFETIME, ResetThrottle
from tow_core.passwords import PasswordHasher, check_password_policy
from tow_core.unit_of_work import Stores, Transactions
from tow_core.use_cases.accounts import SessionTokens

RESET_LINK_JOB = "password_reset"
SSO_NO_RESET = "this server signs in through single sign-on: reset your password with your identity provider"


@dataclass(frozen=True)
class PasswordResetUseCases:
    transactions: Transactions
    password_hasher: PasswordHasher
    tokens: SessionTokens
    mail: MailComposer
    single_sign_on: bool = False
    throttle: ResetThrottle = field(default_factory=ResetThrottle)

    def request_reset(self, *, email: str, client_ip: str) -> str:
        """Queues the lookup that emails a reset link when the address belongs to an account that may reset
        (``send_link``); the same answer and the same statements always."""
        self._refuse_single_sign_on()
        address = normalise_email(email)
        with self.transactions.unattended() as unattended:
            stores, now = unattended.stores, unattended.now
            password_reset.request(stores.password_resets, email=address, client_ip=client_ip, now=now,
                                   policy=self.throttle)
            stores.jobs.enqueue(NewJob(RESET_LINK_JOB, {"email": address}), now=now)
        return NEUTRAL_ANSWER

    def reset_problem(self, token: str) -> str | None:
        """Why the link cannot set a password (unknown, used, expired), or None while it can."""
        with self.transactions.unattended() as unattended:
            found = unattended.stores.password_resets.token_by_hash(self.tokens.token_hash(token))
            refused = password_reset.refusal(found, unattended.now)
            return refused.message if refused is not None else None

    def reset_password(self, *, token: str, password: str, client_ip: str) -> int:
        """Sets the password of the link's account, uses the link, ends every session of the account and revokes
        its personal access tokens; how many sessions ended. A bad link is refused (and counted) whatever the
        password."""
        self._refuse_single_sign_on()
        refused: TowError | None = None
        with self.transactions.unattended() as unattended:
            stores, now = unattended.stores, unattended.now
            resets, directory = stores.password_resets, stores.directory
            password_reset.check_throttle(resets, email=None, client_ip=client_network(client_ip), now=now,
                                          policy=self.throttle)
            found = resets.token_by_hash(self.tokens.token_hash(token), for_update=True)
            refused = password_reset.refusal(found, now)
            user = directory.user(found.user_id) if found is not None and refused is None else None
            if refused is None and (user is None or not password_reset.may_reset(user, _linked(stores, user.id))):
                refused = NotFound("this password reset link is not valid: ask for a new one", field="token")
            if refused is not None or user is None:
                password_reset.failed_use(resets, client_ip=client_ip, now=now, policy=self.throttle)
            else:
                check_password_policy(password)
                directory.set_password_hash(user.id, self.password_hasher.hash(password))
                resets.use_tokens_of(user.id, now)
                directory.audit(AuditEntry(None, user.id, AuditAction.PASSWORD_RESET, f"user:{user.id}",
                                           {"via": "emailed link"}))
                stores.tokens.revoke_user_tokens(user.id, now)
                return directory.revoke_user_sessions(user.id, now)
        raise refused or NotFound("this password reset link is not valid: ask for a new one", field="token")

    def _refuse_single_sign_on(self) -> None:
        if self.single_sign_on:
            raise AccessDenied(SSO_NO_RESET)


@dataclass(frozen=True)
class ResetLinkMailer:
    """Runs the ``password_reset`` jobs that ``request_reset`` queues (in the job worker: no APP_SECRET needed,
    tokens are random and stored as their SHA-256)."""

    transactions: Transactions
    tokens: SessionTokens
    mail: MailComposer

    def send_link(self, job: Job) -> None:
        """The ``password_reset`` job: emails a link when the asked address belongs to an account that may
        reset (``tow_core.password_reset.may_reset``), else nothing."""
        address = str(job.payload.get("email", ""))
        with self.transactions.unattended() as unattended:
            stores, now = unattended.stores, unattended.now
            user = stores.directory.user_by_email(address)
            if user is not None and password_reset.may_reset(user, _linked(stores, user.id)):
                token = self.tokens.new_token()
                stores.password_resets.add_token(user.id, self.tokens.token_hash(token), now=now,
                                                 expires_at=now + RESET_LIFETIME)
                message = self.mail.password_reset(to=user.email, display_name=user.display_name, token=token,
                                                   valid_minutes=RESET_LIFETIME // timedelta(minutes=1))
                stores.email_outbox.queue(message, now=now)


def _linked(stores: Stores, user_id: int) -> int:
    return len(stores.oidc_identities.identities_of(user_id))

