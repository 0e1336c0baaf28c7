"""The unit of work every use case runs in, and who it runs as.

A use case object (``tow_core.use_cases``) is built once by the composition root with a ``Transactions``
and the other ports it needs. Each call takes the acting credential and plain inputs, opens **one** unit
of work, loads the principal fresh inside it (revocation is immediate, SPEC §2), checks membership and
permission, does its work and returns plain domain values; everything it wrote commits together or not at
all. The JSON API, the pages, the CLI and (next) the MCP server and AI tools call the same objects, so a new
front door cannot skip a rule.

A unit of work is entered, used and left on the caller's thread: front doors call use cases from one
worker thread per request (issue 11: a transaction shared between threads crashed the process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tow_core.access import Principal
from tow_core.access_tokens import AccessToken, AccessTokens, resolve_token
from tow_core.accounts import resolve_session
from tow_core.agent_runs import AgentRuns
from tow_core.conversations import Conversations
from tow_core.errors import NotFound
from tow_core.exports import ExportStore
from tow_core.identity import Directory, Session
from tow_core.imports import OrganisationImport
from tow_core.jobs import JobQueue
from tow_core.knowledge import Workspace
from tow_core.live import LiveEvents
from tow_core.memory_diffs import MemoryDiffStore
from tow_core.notifications import Notifications, NotificationStore, Notifying
from tow_core.oidc import OidcIdentities, resolve_provider_access
from tow_core.outbox import EmailOutbox
from tow_core.password_reset import PasswordResets
from tow_core.record_history import RecordKeeping
from tow_core.records import RecordStore
from tow_core.semantic_search import SemanticIndex
from tow_core.snapshots import SnapshotSources
from tow_core.uploads import UploadRecords


@dataclass(frozen=True)
class Stores:
    """The ports one transaction works through; all of them commit together or not at all."""

    directory: Directory
    records: RecordStore
    history: RecordKeeping  # doc revisions and tree, ticket activity, comments and links
    memory_diffs: MemoryDiffStore  # proposed memory changes under review (SPEC §4)
    uploads: UploadRecords  # upload rows; the bytes are in the UploadStore (SPEC §5)
    semantic: SemanticIndex  # nearest readable records by embedding (SPEC §7)
    jobs: JobQueue  # background jobs, queued with the change that asks for them
    exports: ExportStore  # export requests (SPEC §5)
    organisation_import: OrganisationImport  # restores an organisation export
    agent_runs: AgentRuns  # AI work a person asked for, run by workers (SPEC §6)
    conversations: Conversations  # chats with the assistant and their turns, read by their owner alone (SPEC §6)
    tokens: AccessTokens  # personal access tokens, by the hash of their secret (issue 15)
    oidc_identities: OidcIdentities  # single sign-on: linked provider identities, roles their groups gave
    snapshot_sources: SnapshotSources  # a generated snapshot's cited records, pinned to versions (SPEC §4)
    email_outbox: EmailOutbox  # email queued with the change that causes it, sent by workers (issue 19)
    password_resets: PasswordResets  # password reset links (their hashes) and the log that throttles them
    notifications: NotificationStore  # in-app notifications, watchers and preferences (issue 19)
    live: LiveEvents  # live updates to open pages, sent on commit (tow_core.live)


def notifications_of(stores: Stores, now: datetime) -> Notifications:
    """The one place a unit of work creates notifications (``tow_core.notifications``)."""
    return Notifications(stores.notifications, stores.records, now, stores.jobs, stores.live, stores.memory_diffs)


def notifying_history(stores: Stores, now: datetime) -> Notifying:
    """The record history every workspace of a unit of work keeps: ``stores.history``, then notifications."""
    return Notifying(stores.history, notifications_of(stores, now))


class UnitOfWork(Protocol):
    """Opens one transaction: commits when the block ends normally, rolls back when it raises. A held pool
    raises ``DatabaseBusy``, an unreachable database ``DependencyUnavailable``."""

    def __call__(self) -> AbstractContextManager[Stores]: ...


class Credential:
    """Who a front door says is asking, verified without the database: a ``SessionCredential``, a
    ``TokenCredential`` or a ``ProviderTokenCredential``, which ``Transactions.acting_as`` resolves to a
    principal. (One base class rather than a union: the HTTP edge hands it through Litestar's dependency
    validation, which takes one class.)"""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class SessionCredential(Credential):
    """Who a front door says is asking: the hash of a session token whose cookie signature it verified.
    Nothing is loaded yet; the use case resolves it inside its unit of work."""

    token_hash: str


@dataclass(frozen=True, slots=True)
class TokenCredential(Credential):
    """A personal access token a front door received as ``Authorization: Bearer`` (JSON API, MCP): the SHA-256
    of its secret, and whether the request asks to change something (an unsafe HTTP method, a writing MCP
    tool), which a read-only token may not (``tow_core.access_tokens``)."""

    token_hash: str
    writes: bool


@dataclass(frozen=True, slots=True)
class ProviderTokenCredential(Credential):
    """An access token of the single sign-on provider whose signature, issuer, audience and expiry a front door
    checked (the MCP server, when ``mcp.oidc_access_tokens`` is on): the provider identity it names, whether its
    scopes let it write, whether the request asks to, and when it expires (``tow_core.oidc``)."""

    issuer: str
    subject: str
    may_write: bool
    writes: bool
    expires_at: datetime


@dataclass(frozen=True)
class Acting:
    """Inside one unit of work: its stores, the principal loaded fresh for it, and the one "now" it uses."""

    stores: Stores
    principal: Principal
    session: Session
    now: datetime
    token: AccessToken | None = None  # the access token acting, narrowed principal and all; None for a session
    by_provider_token: bool = False  # a single sign-on provider's access token acts (ProviderTokenCredential)

    def workspace(self, org_id: int) -> Workspace:
        """The principal's workspace in ``org_id``: NotFound unless they are an active member of it."""
        return Workspace.for_member(self.stores.records, self.stores.directory, self.principal, org_id,
                                    history=notifying_history(self.stores, self.now))

    def notifications(self) -> Notifications:
        return notifications_of(self.stores, self.now)


@dataclass(frozen=True)
class OnBehalf:
    """Inside one unit of work for background work a person started (their agent run): their workspace in
    the run's organisation, loaded fresh, with the stores and the one "now"."""

    stores: Stores
    workspace: Workspace
    now: datetime


@dataclass(frozen=True)
class Unattended:
    """A unit of work no signed-in person acts in (sign-in, first account, accepting an invite)."""

    stores: Stores
    now: datetime


@dataclass(frozen=True)
class Transactions:
    """How use cases open their unit of work; the composition root gives every use case object the same one."""

    unit_of_work: UnitOfWork
    clock: Callable[[], datetime]

    @contextmanager
    def acting_as(self, credential: Credential) -> Iterator[Acting]:
        """One unit of work as the credential's principal, or NotAuthenticated (expired, revoked, deactivated);
        an access token's principal is narrowed to what the token may do (``tow_core.access_tokens``)."""
        with self.unit_of_work() as stores:
            now = self.clock()
            if isinstance(credential, TokenCredential):
                token, principal = resolve_token(stores.tokens, stores.directory, token_hash=credential.token_hash,
                                                 writes=credential.writes, now=now)
                stores.directory.act_for(principal.user_id)
                yield Acting(stores, principal, token.session(), now, token)
            elif isinstance(credential, ProviderTokenCredential):
                principal = resolve_provider_access(
                    stores.directory, stores.oidc_identities, issuer=credential.issuer, subject=credential.subject,
                    may_write=credential.may_write, writes=credential.writes, expires_at=credential.expires_at,
                    now=now)
                stores.directory.act_for(principal.user_id)
                session = Session(f"provider-token:{credential.issuer}#{credential.subject}", principal.user_id, None,
                                  credential.expires_at)  # nothing is stored under it, as for a personal token
                yield Acting(stores, principal, session, now, by_provider_token=True)
            else:  # resolve_session also makes the unit of work act for the session's user
                session, principal = resolve_session(stores.directory, token_hash=credential.token_hash, now=now)
                yield Acting(stores, principal, session, now)

    @contextmanager
    def on_behalf_of(self, user_id: int, org_id: int) -> Iterator[OnBehalf]:
        """One unit of work as ``user_id`` in ``org_id`` with no session (an agent run they started): the
        principal is loaded fresh, so a revoked grant or membership counts from this unit of work; NotFound when
        they are gone or no longer a member. What it writes is attributed to them, as with ``acting_as``."""
        with self.unit_of_work() as stores:
            principal = stores.directory.principal(user_id)
            if principal is None:
                raise NotFound("organisation not found")
            now = self.clock()
            workspace = Workspace.for_member(stores.records, stores.directory, principal, org_id,
                                             history=notifying_history(stores, now))
            stores.directory.act_for(user_id)
            yield OnBehalf(stores, workspace, now)

    @contextmanager
    def unattended(self) -> Iterator[Unattended]:
        with self.unit_of_work() as stores:
            yield Unattended(stores, self.clock())
