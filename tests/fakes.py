"""In-memory fakes of the identity ports (ARCHITECTURE practice 12: fakes over mocks).

``InMemoryDirectory`` mirrors ``tow_adapters.postgres.directory.PgDirectory`` method by method, including
what the schema does on its own (unique indexes → ``Conflict`` where PgDirectory maps them, cascades on
delete, the principal query). Where PostgreSQL would raise a raw integrity error that PgDirectory does
not translate (a CHECK constraint, a foreign key to a missing row, a grant naming both a user and a
group), the fake raises ``ValueError``: in both cases that is a bug in the calling use case, never a user
error. tests/contract/test_directory.py runs the same suite against both.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from tow_core.access import OrgRole, Principal, ProjectRole
from tow_core.audit import AuditEntry, AuditQuery
from tow_core.errors import Conflict, InvalidInput
from tow_core.identity import (
    Grant,
    Group,
    Invite,
    Member,
    Organisation,
    Project,
    Session,
    User,
    WorkflowMode,
)

# CHECK constraints of migration 0002 (PgDirectory lets them surface as IntegrityError: only unique
# violations become Conflict). PostgreSQL's "$" matches only at the very end of the string, hence fullmatch.
_PG_PROJECT_KEY = re.compile(r"[A-Z0-9]{2,10}")
_PG_NAME_LENGTH = range(1, 201)


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"{what} violates a CHECK constraint or names a missing row")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _SessionRow:
    session: Session
    revoked_at: datetime | None = None


@dataclass(slots=True)
class _InviteRow:
    invite: Invite
    token_hash: str
    used_by: int | None = None


class InMemoryDirectory:
    """The ``Directory`` port over plain dicts; same semantics as ``PgDirectory``.

    ``clock`` stands in for the database's ``now()`` (only ``Invite.created_at`` uses it).
    """

    def __init__(self, clock: Callable[[], datetime] = _now) -> None:
        self._clock = clock
        tables = ("users", "orgs", "groups", "projects", "grants", "invites")
        self._ids = {table: itertools.count(1) for table in tables}  # one sequence per table, as bigserial
        self._users: dict[int, User] = {}
        self._orgs: dict[int, Organisation] = {}
        self._memberships: dict[tuple[int, int], OrgRole] = {}  # (organisation_id, user_id) → role
        self._groups: dict[int, tuple[int, str]] = {}  # group_id → (organisation_id, name)
        self._group_members: set[tuple[int, int]] = set()  # (group_id, user_id)
        self._projects: dict[int, Project] = {}
        self._grants: dict[int, Grant] = {}
        self._invites: dict[int, _InviteRow] = {}
        self._sessions: dict[str, _SessionRow] = {}
        self.acted_for: list[int] = []  # each act_for call, in order
        self.audit_log: list[AuditEntry] = []

    def _next_id(self, table: str) -> int:
        return next(self._ids[table])

    # --- users ----------------------------------------------------------------------------------

    # --- audit log --------------------------------------------------------------------------------

    def audit(self, entry: AuditEntry) -> None:
        self.audit_log.append(replace(entry, id=len(self.audit_log) + 1, created_at=self._clock()))

    def audit_entries(self, org_id, query: AuditQuery, *, cursor, limit):
        if cursor is not None and (not cursor.isdigit() or len(cursor) > 18):  # as PgDirectory validates it
            raise InvalidInput("cursor is not one this server issued", field="cursor")
        matching = [
            e for e in reversed(self.audit_log)
            if e.organisation_id == org_id
            and (not query.actions or e.action in query.actions)
            and query.actor_id in (None, e.actor_id)
            and query.target in (None, e.target)
            and (query.since is None or e.created_at >= query.since)
            and (query.until is None or e.created_at < query.until)
            and (cursor is None or e.id < int(cursor))
        ]
        page = matching[:limit]
        return page, (str(page[-1].id) if len(matching) > limit else None)

    def lock_registration(self) -> None:
        """A no-op: the fake is used from one thread (PgDirectory takes an advisory transaction lock)."""

    def count_users(self) -> int:
        return len(self._users)

    def user(self, user_id: int) -> User | None:
        return self._users.get(user_id)

    def user_by_email(self, email: str) -> User | None:
        return next((u for u in self._users.values() if u.email == email), None)

    def add_user(self, email: str, display_name: str, password_hash: str | None, *, server_admin: bool) -> User:
        _check(email == email.lower() and 3 <= len(email) <= 320 and len(display_name) in _PG_NAME_LENGTH,
               "the user")
        if any(u.email == email for u in self._users.values()):
            raise Conflict("an account with this email already exists", field="email")
        user = User(self._next_id("users"), email, display_name, server_admin, True, password_hash)
        self._users[user.id] = user
        return user

    def _update_user(self, user_id: int, **changes) -> None:
        if user_id in self._users:  # an UPDATE that matches no row changes nothing
            self._users[user_id] = replace(self._users[user_id], **changes)

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        self._update_user(user_id, password_hash=password_hash)

    def set_profile(self, user_id: int, *, email: str, display_name: str) -> None:
        _check(email == email.lower() and 3 <= len(email) <= 320 and len(display_name) in _PG_NAME_LENGTH,
               "the user")
        if any(u.email == email and u.id != user_id for u in self._users.values()):
            raise Conflict("an account with this email already exists", field="email")
        self._update_user(user_id, email=email, display_name=display_name)

    def set_server_admin(self, user_id: int, value: bool) -> None:
        self._update_user(user_id, is_server_admin=value)

    def set_active(self, user_id: int, value: bool) -> None:
        """Like PgDirectory, this does not revoke sessions: the use case does."""
        self._update_user(user_id, is_active=value)

    def server_admins(self) -> Sequence[User]:
        return [u for _, u in sorted(self._users.items()) if u.is_server_admin and u.is_active]

    def principal(self, user_id: int) -> Principal | None:
        user = self._users.get(user_id)
        if user is None:
            return None
        group_ids = {g for g, u in self._group_members if u == user_id}
        return Principal.build(
            user_id, is_active=user.is_active, is_server_admin=user.is_server_admin,
            org_roles={o: role for (o, u), role in self._memberships.items() if u == user_id},
            group_ids=group_ids,
            direct_grants={g.project_id: g.role for g in self._grants.values() if g.user_id == user_id},
            group_grants=self._group_grants(group_ids),
        )

    def _group_grants(self, group_ids: set[int]) -> dict[int, ProjectRole]:
        """Highest role per project through the user's groups — only groups of the project's organisation
        count (PgDirectory joins projects on p.organisation_id = g.organisation_id)."""
        best: dict[int, ProjectRole] = {}
        for grant in self._grants.values():
            if grant.group_id not in group_ids:
                continue
            project = self._projects[grant.project_id]
            if self._groups[grant.group_id][0] == project.organisation_id:
                best[grant.project_id] = ProjectRole.highest((best.get(grant.project_id), grant.role))
        return best

    # --- organisations and members ----------------------------------------------------------------

    def add_organisation(self, name: str, workflow_mode: WorkflowMode) -> Organisation:
        if not 1 <= len(name) <= 200:
            raise ValueError("organisation name violates its CHECK constraint")
        organisation = Organisation(self._next_id("orgs"), name, workflow_mode)
        self._orgs[organisation.id] = organisation
        return organisation

    def organisation(self, org_id: int) -> Organisation | None:
        return self._orgs.get(org_id)

    def organisations_named(self, name: str) -> Sequence[Organisation]:
        return [o for _, o in sorted(self._orgs.items()) if o.name.lower() == name.lower()]

    def organisations_of(self, user_id: int) -> Sequence[tuple[Organisation, OrgRole]]:
        return [(self._orgs[o], role) for (o, u), role in sorted(self._memberships.items()) if u == user_id]

    def update_organisation(self, org_id: int, *, name: str, workflow_mode: WorkflowMode,
                            require_second_reviewer: bool) -> Organisation:
        organisation = Organisation(org_id, name, workflow_mode, require_second_reviewer)
        if org_id in self._orgs:
            self._orgs[org_id] = organisation
        return organisation

    def members(self, org_id: int) -> Sequence[Member]:
        members = [
            Member(o, u, role, self._users[u].email, self._users[u].display_name, self._users[u].is_active)
            for (o, u), role in self._memberships.items() if o == org_id
        ]
        return sorted(members, key=lambda m: m.email)

    def set_membership(self, org_id: int, user_id: int, role: OrgRole) -> None:
        if org_id not in self._orgs or user_id not in self._users:
            raise ValueError(f"membership ({org_id}, {user_id}) names a missing organisation or user")
        self._memberships[(org_id, user_id)] = OrgRole(role)

    def remove_membership(self, org_id: int, user_id: int) -> None:
        """Also drops the user's groups and direct grants in that organisation (as PgDirectory does)."""
        self._group_members -= {
            (g, u) for g, u in self._group_members if u == user_id and self._groups[g][0] == org_id
        }
        for grant_id in [
            g.id for g in self._grants.values()
            if g.user_id == user_id and self._projects[g.project_id].organisation_id == org_id
        ]:
            del self._grants[grant_id]
        self._memberships.pop((org_id, user_id), None)

    def lock_owners(self, org_id: int) -> None:
        """Single-threaded fake: nothing to serialise."""

    def lock_server_admins(self) -> None:
        """Single-threaded fake: nothing to serialise."""

    def count_owners(self, org_id: int) -> int:
        return sum(
            1 for (o, u), role in self._memberships.items()
            if o == org_id and role is OrgRole.OWNER and self._users[u].is_active
        )

    # --- groups -----------------------------------------------------------------------------------

    def _check_group_name(self, org_id: int, name: str, *, except_id: int | None = None) -> None:
        taken = any(
            o == org_id and n.lower() == name.lower() and g != except_id for g, (o, n) in self._groups.items()
        )
        _check(len(name) in _PG_NAME_LENGTH, "the group name")
        if taken:
            raise Conflict("a group with this name already exists in the organisation", field="name")

    def add_group(self, org_id: int, name: str) -> Group:
        if org_id not in self._orgs:
            raise ValueError(f"organisation {org_id} does not exist")
        self._check_group_name(org_id, name)
        group_id = self._next_id("groups")
        self._groups[group_id] = (org_id, name)
        return Group(group_id, org_id, name, ())

    def group(self, group_id: int) -> Group | None:
        if group_id not in self._groups:
            return None
        org_id, name = self._groups[group_id]
        members = tuple(sorted(u for g, u in self._group_members if g == group_id))
        return Group(group_id, org_id, name, members)

    def groups(self, org_id: int) -> Sequence[Group]:
        found = [self.group(g) for g, (o, _) in self._groups.items() if o == org_id]
        return sorted(found, key=lambda g: g.name.lower())

    def rename_group(self, group_id: int, name: str) -> Group:
        if group_id in self._groups:
            org_id, _ = self._groups[group_id]
            self._check_group_name(org_id, name, except_id=group_id)
            self._groups[group_id] = (org_id, name)
        return self.group(group_id)

    def delete_group(self, group_id: int) -> None:
        """Cascades to its memberships and its project grants (ON DELETE CASCADE)."""
        self._groups.pop(group_id, None)
        self._group_members = {(g, u) for g, u in self._group_members if g != group_id}
        self._grants = {i: g for i, g in self._grants.items() if g.group_id != group_id}

    def add_group_member(self, group_id: int, user_id: int) -> None:
        if group_id not in self._groups or user_id not in self._users:
            raise ValueError(f"group member ({group_id}, {user_id}) names a missing group or user")
        self._group_members.add((group_id, user_id))  # ON CONFLICT DO NOTHING

    def remove_group_member(self, group_id: int, user_id: int) -> None:
        self._group_members.discard((group_id, user_id))

    # --- projects and grants ------------------------------------------------------------------------

    def add_project(self, project: Project) -> Project:
        if project.organisation_id not in self._orgs:
            raise ValueError(f"organisation {project.organisation_id} does not exist")
        taken = any(
            p.organisation_id == project.organisation_id and p.key == project.key for p in self._projects.values()
        )
        _check(bool(_PG_PROJECT_KEY.fullmatch(project.key)) and len(project.name) in _PG_NAME_LENGTH, "the project")
        if taken:
            raise Conflict(f"project key {project.key} is already used in this organisation", field="key")
        stored = replace(project, id=self._next_id("projects"))
        self._projects[stored.id] = stored
        return stored

    def project(self, project_id: int) -> Project | None:
        return self._projects.get(project_id)

    def projects(self, org_id: int) -> Sequence[Project]:
        return sorted((p for p in self._projects.values() if p.organisation_id == org_id), key=lambda p: p.key)

    def update_project(self, project: Project) -> Project:
        """Changes name, description, lead, visibility and status; never the key or the organisation."""
        current = self._projects.get(project.id)
        if current is not None:
            self._projects[project.id] = replace(
                current, name=project.name, description=project.description, lead_user_id=project.lead_user_id,
                visibility=project.visibility, status=project.status,
            )
        return project

    def grants(self, project_id: int) -> Sequence[Grant]:
        return [g for _, g in sorted(self._grants.items()) if g.project_id == project_id]

    def grant(self, grant_id: int) -> Grant | None:
        return self._grants.get(grant_id)

    def put_grant(self, project_id: int, *, user_id: int | None, group_id: int | None, role: ProjectRole) -> Grant:
        """Upsert on (project, user) or (project, group): one grant per holder, its id kept."""
        if (user_id is None) == (group_id is None):
            raise ValueError("a grant names exactly one of user_id and group_id")
        holder_exists = user_id in self._users if user_id is not None else group_id in self._groups
        if project_id not in self._projects or not holder_exists:
            raise ValueError(f"grant on project {project_id} names a missing project, user or group")
        existing = next(
            (g for g in self.grants(project_id) if (g.user_id, g.group_id) == (user_id, group_id)), None
        )
        grant = Grant(existing.id if existing else self._next_id("grants"), project_id, user_id, group_id,
                      ProjectRole(role))
        self._grants[grant.id] = grant
        return grant

    def delete_grant(self, grant_id: int) -> None:
        self._grants.pop(grant_id, None)

    # --- invites ------------------------------------------------------------------------------------

    def add_invite(self, org_id: int, token_hash: str, role: OrgRole, email: str | None, created_by: int,
                   expires_at: datetime) -> Invite:
        if any(row.token_hash == token_hash for row in self._invites.values()):
            raise ValueError("invite token hash already exists")
        _check(org_id in self._orgs and created_by in (None, *self._users) and (email is None or email == email.lower()),
               "the invite")
        invite = Invite(self._next_id("invites"), org_id, OrgRole(role), email, created_by, self._clock(),
                        expires_at, None, None)
        self._invites[invite.id] = _InviteRow(invite, token_hash)
        return invite

    def invite(self, invite_id: int) -> Invite | None:
        row = self._invites.get(invite_id)
        return row.invite if row else None

    def invite_by_token_hash(self, token_hash: str, *, for_update: bool = False) -> Invite | None:
        return next((row.invite for row in self._invites.values() if row.token_hash == token_hash), None)

    def invites(self, org_id: int) -> Sequence[Invite]:
        return [row.invite for _, row in sorted(self._invites.items(), reverse=True)
                if row.invite.organisation_id == org_id]

    def mark_invite_revoked(self, invite_id: int, now: datetime) -> None:
        if invite_id in self._invites:
            row = self._invites[invite_id]
            row.invite = replace(row.invite, revoked_at=now)

    def mark_invite_used(self, invite_id: int, user_id: int, now: datetime) -> None:
        if invite_id in self._invites:
            row = self._invites[invite_id]
            row.invite, row.used_by = replace(row.invite, used_at=now), user_id

    def invite_used_by(self, invite_id: int) -> int | None:
        """Test helper: who used the invite (stored by PgDirectory, not exposed by the port)."""
        return self._invites[invite_id].used_by

    # --- sessions -----------------------------------------------------------------------------------

    def add_session(self, session: Session) -> None:
        if session.token_hash in self._sessions:
            raise ValueError("session token hash already exists")
        _check(session.user_id in self._users and session.active_organisation_id in (None, *self._orgs),
               "the session")
        self._sessions[session.token_hash] = _SessionRow(session)

    def live_session(self, token_hash: str, now: datetime) -> Session | None:
        row = self._sessions.get(token_hash)
        if row is None or row.revoked_at is not None or row.session.expires_at <= now:
            return None
        return row.session

    def act_for(self, user_id: int) -> None:
        self.acted_for.append(user_id)

    def acting_session(self, token_hash: str, now: datetime) -> tuple[Session, Principal] | None:
        session = self.live_session(token_hash, now)
        principal = self.principal(session.user_id) if session else None
        if session is None or principal is None:
            return None
        self.act_for(session.user_id)
        return session, principal

    def set_session_organisation(self, token_hash: str, org_id: int) -> None:
        if token_hash in self._sessions:
            row = self._sessions[token_hash]
            row.session = replace(row.session, active_organisation_id=org_id)

    def revoke_session(self, token_hash: str, now: datetime) -> None:
        row = self._sessions.get(token_hash)
        if row is not None and row.revoked_at is None:
            row.revoked_at = now

    def revoke_user_sessions(self, user_id: int, now: datetime, *, keep_token_hash: str | None = None) -> int:
        rows = [r for r in self._sessions.values() if r.session.user_id == user_id and r.revoked_at is None
                and r.session.token_hash != keep_token_hash]
        for row in rows:
            row.revoked_at = now
        return len(rows)


class InMemorySignInLog:
    """The ``SignInLog`` port over a list and a dict; same semantics as ``PgSignInLog`` (forgetting is not
    batched here: nothing else would see the difference)."""

    def __init__(self) -> None:
        self._failures: list[tuple[str, str, datetime]] = []  # (email, client_ip, failed_at)
        self._successes: dict[tuple[int, str], datetime] = {}  # (user_id, client_ip) → last success

    def record_failure(self, email: str, client_ip: str, now: datetime, *, forget_before: datetime) -> None:
        self._failures = [f for f in self._failures if f[2] >= forget_before] + [(email, client_ip, now)]

    def recent_failures(
        self, since: datetime, *, limit: int, email: str | None = None, client_ip: str | None = None
    ) -> Sequence[datetime]:
        found = [at for e, ip, at in self._failures
                 if at > since and email in (None, e) and client_ip in (None, ip)]
        return sorted(found, reverse=True)[:limit]

    def clear_failures(self, email: str, client_ip: str) -> None:
        self._failures = [f for f in self._failures if (f[0], f[1]) != (email, client_ip)]

    def record_success(self, user_id: int, client_ip: str, now: datetime, *, forget_before: datetime) -> None:
        previous = self._successes.get((user_id, client_ip))
        self._successes[(user_id, client_ip)] = max(now, previous) if previous else now
        self._successes = {key: at for key, at in self._successes.items() if at >= forget_before}

    def signed_in_from(self, user_id: int, client_ip: str, since: datetime) -> bool:
        at = self._successes.get((user_id, client_ip))
        return at is not None and at > since


class FakePasswordHasher:
    """A cheap, deterministic ``PasswordHasher``: ``<prefix><reversed password>``.

    A hash with another ``fake…$`` prefix still verifies but ``needs_rehash`` — build a second hasher with
    ``prefix="fake2$"`` to simulate changed parameters. ``dummy_calls`` counts ``dummy_verify`` calls, so
    tests can check that an unknown email still costs one verification.
    """

    def __init__(self, prefix: str = "fake$") -> None:
        if not (prefix.startswith("fake") and prefix.endswith("$")):
            raise ValueError("prefix must look like 'fake…$'")
        self.prefix = prefix
        self.dummy_calls = 0

    def hash(self, password: str) -> str:
        return self.prefix + password[::-1]

    def verify(self, password_hash: str, password: str) -> bool:
        head, sep, tail = password_hash.partition("$")
        return bool(sep) and head.startswith("fake") and tail == password[::-1]

    def needs_rehash(self, password_hash: str) -> bool:
        return not password_hash.startswith(self.prefix)

    def dummy_verify(self, password: str) -> bool:
        self.dummy_calls += 1
        return False
