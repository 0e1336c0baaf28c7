"""PgDirectory: identity and access data in PostgreSQL, on the caller's connection (one transaction)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tow_adapters.postgres.engine import SqlStore, transaction
from tow_core.access import OrgRole, Principal, ProjectRole, Visibility
from tow_core.audit import AuditAction, AuditEntry, AuditQuery
from tow_core.errors import Conflict, InvalidInput
from tow_core.identity import (
    Grant,
    Group,
    Invite,
    Member,
    Organisation,
    Project,
    ProjectStatus,
    Session,
    User,
    WorkflowMode,
)

# Arbitrary, fixed advisory-lock keys (transaction-scoped) for "is this the first/last ...?" checks.
_REGISTRATION_LOCK = 0x70_77_01
_SERVER_ADMINS_LOCK = 0x70_77_02
_OWNERS_LOCK_CLASS = 0x70_77_03

_USER_COLUMNS = "id, email, display_name, is_server_admin, is_active, password_hash"
_PROJECT_COLUMNS = "id, organisation_id, key, name, description, lead_user_id, visibility, status"
_INVITE_COLUMNS = "id, organisation_id, role, email, created_by, created_at, expires_at, revoked_at, used_at"


def _user(row) -> User:
    return User(*row)


def _project(row) -> Project:
    return Project(row[0], row[1], row[2], row[3], row[4], row[5], Visibility(row[6]), ProjectStatus(row[7]))


def _invite(row) -> Invite:
    return Invite(row[0], row[1], OrgRole(row[2]), *row[3:])


def _grant(row) -> Grant:
    return Grant(row[0], row[1], row[2], row[3], ProjectRole(row[4]))


def _cursor_id(cursor: str) -> int:
    if not cursor.isdecimal() or len(cursor) > 18:
        raise InvalidInput("cursor is not one this server issued", field="cursor")
    return int(cursor)


def _raise_unless_unique_violation(exc: sa.exc.IntegrityError) -> None:
    """Only a unique violation (SQLSTATE 23505) means "already exists"; anything else is a bug to surface."""
    if getattr(exc.orig, "sqlstate", None) != "23505":
        raise exc


# What Principal.build needs of user ``u``: active, server admin, organisation roles, groups, direct grants and
# grants through groups — as a select list, so a session lookup can carry it in the same statement.
_PRINCIPAL_COLUMNS = """u.is_active, u.is_server_admin,
  COALESCE((SELECT json_object_agg(m.organisation_id, m.role) FROM memberships m WHERE m.user_id = u.id), '{}'),
  COALESCE((SELECT array_agg(gm.group_id) FROM group_members gm WHERE gm.user_id = u.id), '{}'),
  COALESCE((SELECT json_object_agg(pg.project_id, pg.role) FROM project_grants pg WHERE pg.user_id = u.id), '{}'),
  COALESCE((SELECT json_agg(json_build_array(pg.project_id, pg.role)) FROM project_grants pg
            JOIN group_members gm ON gm.group_id = pg.group_id AND gm.user_id = u.id
            JOIN groups g ON g.id = pg.group_id
            JOIN projects p ON p.id = pg.project_id AND p.organisation_id = g.organisation_id), '[]')"""


def _principal(user_id: int, row: Sequence[Any]) -> Principal:
    active, server_admin, org_roles, group_ids, direct, via_groups = row
    group_grants: dict[int, ProjectRole] = {}
    for project_id, role in via_groups:
        group_grants[project_id] = ProjectRole.highest((group_grants.get(project_id), ProjectRole(role)))
    return Principal.build(
        user_id, is_active=active, is_server_admin=server_admin,
        org_roles={int(k): OrgRole(v) for k, v in org_roles.items()},
        group_ids=group_ids,
        direct_grants={int(k): ProjectRole(v) for k, v in direct.items()},
        group_grants=group_grants,
    )


class PgDirectory(SqlStore):

    def _exec(self, sql: str, **params) -> int:
        return self._conn.execute(sa.text(sql), params).rowcount

    # --- users ----------------------------------------------------------------------------------

    def lock_registration(self) -> None:
        self._exec("SELECT pg_advisory_xact_lock(:key)", key=_REGISTRATION_LOCK)

    def count_users(self) -> int:
        return self._row("SELECT count(*) FROM users")[0]

    def user(self, user_id: int) -> User | None:
        row = self._row(f"SELECT {_USER_COLUMNS} FROM users WHERE id = :id", id=user_id)
        return _user(row) if row else None

    def user_by_email(self, email: str) -> User | None:
        row = self._row(f"SELECT {_USER_COLUMNS} FROM users WHERE email = :email", email=email)
        return _user(row) if row else None

    def add_user(self, email: str, display_name: str, password_hash: str | None, *, server_admin: bool) -> User:
        try:
            with self._conn.begin_nested():
                row = self._row(
                    "INSERT INTO users (email, display_name, password_hash, is_server_admin) "
                    f"VALUES (:email, :name, :hash, :admin) RETURNING {_USER_COLUMNS}",
                    email=email, name=display_name, hash=password_hash, admin=server_admin,
                )
        except sa.exc.IntegrityError as exc:
            _raise_unless_unique_violation(exc)
            raise Conflict("an account with this email already exists", field="email") from exc
        return _user(row)

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        self._exec("UPDATE users SET password_hash = :h WHERE id = :id", h=password_hash, id=user_id)

    def set_profile(self, user_id: int, *, email: str, display_name: str) -> None:
        try:
            with self._conn.begin_nested():
                self._exec("UPDATE users SET email = :email, display_name = :name WHERE id = :id",
                           email=email, name=display_name, id=user_id)
        except sa.exc.IntegrityError as exc:
            _raise_unless_unique_violation(exc)
            raise Conflict("an account with this email already exists", field="email") from exc

    def set_server_admin(self, user_id: int, value: bool) -> None:
        self._exec("UPDATE users SET is_server_admin = :v WHERE id = :id", v=value, id=user_id)

    def set_active(self, user_id: int, value: bool) -> None:
        self._exec(
            "UPDATE users SET is_active = :v, deactivated_at = CASE WHEN :v THEN NULL ELSE now() END WHERE id = :id",
            v=value, id=user_id,
        )

    def lock_server_admins(self) -> None:
        self._exec("SELECT pg_advisory_xact_lock(:key)", key=_SERVER_ADMINS_LOCK)

    def lock_owners(self, org_id: int) -> None:
        self._exec("SELECT pg_advisory_xact_lock(:cls, :org)", cls=_OWNERS_LOCK_CLASS, org=org_id)

    def server_admins(self) -> Sequence[User]:
        rows = self._rows(f"SELECT {_USER_COLUMNS} FROM users WHERE is_server_admin AND is_active ORDER BY id")
        return [_user(r) for r in rows]

    def principal(self, user_id: int) -> Principal | None:
        """Everything the policy needs, in one round trip (SPEC §2: loaded per request, never cached)."""
        row = self._row(f"SELECT {_PRINCIPAL_COLUMNS} FROM users u WHERE u.id = :id", id=user_id)
        return None if row is None else _principal(user_id, row)

    def acting_session(self, token_hash: str, now: datetime) -> tuple[Session, Principal] | None:
        # One round trip for what every signed-in request starts with: the live session, its user's principal,
        # and the transaction-local acting user (as act_for; set only when a live session matched).
        row = self._row(
            f"SELECT s.token_hash, s.user_id, s.active_organisation_id, s.expires_at, {_PRINCIPAL_COLUMNS}, "
            "set_config('tow.acting_user_id', CAST(s.user_id AS text), true) "
            "FROM sessions s JOIN users u ON u.id = s.user_id "
            "WHERE s.token_hash = :t AND s.revoked_at IS NULL AND s.expires_at > :now",
            t=token_hash, now=now,
        )
        if row is None:
            return None
        return Session(*row[:4]), _principal(row[1], row[4:10])

    # --- organisations and members ----------------------------------------------------------------

    def add_organisation(self, name: str, workflow_mode: WorkflowMode) -> Organisation:
        row = self._row(
            "INSERT INTO organisations (name, workflow_mode) VALUES (:name, :mode) RETURNING id",
            name=name, mode=workflow_mode.value,
        )
        return Organisation(row[0], name, workflow_mode)

    def organisation(self, org_id: int) -> Organisation | None:
        row = self._row("SELECT id, name, workflow_mode, require_second_reviewer FROM organisations WHERE id = :id",
                        id=org_id)
        return Organisation(row[0], row[1], WorkflowMode(row[2]), row[3]) if row else None

    def organisations_named(self, name: str) -> Sequence[Organisation]:
        rows = self._rows("SELECT id, name, workflow_mode, require_second_reviewer FROM organisations "
                          "WHERE lower(name) = lower(:name) ORDER BY id", name=name)
        return [Organisation(r[0], r[1], WorkflowMode(r[2]), r[3]) for r in rows]

    def organisations_of(self, user_id: int) -> Sequence[tuple[Organisation, OrgRole]]:
        rows = self._rows(
            "SELECT o.id, o.name, o.workflow_mode, o.require_second_reviewer, m.role FROM memberships m "
            "JOIN organisations o ON o.id = m.organisation_id WHERE m.user_id = :u ORDER BY o.id",
            u=user_id,
        )
        return [(Organisation(r[0], r[1], WorkflowMode(r[2]), r[3]), OrgRole(r[4])) for r in rows]

    def update_organisation(self, org_id: int, *, name: str, workflow_mode: WorkflowMode,
                            require_second_reviewer: bool) -> Organisation:
        self._exec("UPDATE organisations SET name = :n, workflow_mode = :m, require_second_reviewer = :r "
                   "WHERE id = :id", n=name, m=workflow_mode.value, r=require_second_reviewer, id=org_id)
        return Organisation(org_id, name, workflow_mode, require_second_reviewer)

    def members(self, org_id: int) -> Sequence[Member]:
        rows = self._rows(
            "SELECT m.organisation_id, m.user_id, m.role, u.email, u.display_name, u.is_active "
            "FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.organisation_id = :o ORDER BY u.email",
            o=org_id,
        )
        return [Member(r[0], r[1], OrgRole(r[2]), r[3], r[4], r[5]) for r in rows]

    def set_membership(self, org_id: int, user_id: int, role: OrgRole) -> None:
        self._exec(
            "INSERT INTO memberships (organisation_id, user_id, role) VALUES (:o, :u, :r) "
            "ON CONFLICT (organisation_id, user_id) DO UPDATE SET role = EXCLUDED.role",
            o=org_id, u=user_id, r=role.value,
        )

    def remove_membership(self, org_id: int, user_id: int) -> None:
        """Also drops the user's groups and direct grants in that organisation, so that re-inviting
        them later does not silently restore old access."""
        self._exec(
            "DELETE FROM group_members gm USING groups g WHERE gm.group_id = g.id AND g.organisation_id = :o "
            "AND gm.user_id = :u", o=org_id, u=user_id,
        )
        self._exec(
            "DELETE FROM project_grants pg USING projects p WHERE pg.project_id = p.id AND p.organisation_id = :o "
            "AND pg.user_id = :u", o=org_id, u=user_id,
        )
        self._exec("DELETE FROM memberships WHERE organisation_id = :o AND user_id = :u", o=org_id, u=user_id)

    def count_owners(self, org_id: int) -> int:
        return self._row(
            "SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id "
            "WHERE m.organisation_id = :o AND m.role = 'owner' AND u.is_active", o=org_id,
        )[0]

    # --- groups -----------------------------------------------------------------------------------

    @staticmethod
    def _group_name_conflict(_: sa.exc.IntegrityError) -> Conflict:
        return Conflict("a group with this name already exists in the organisation", field="name")

    def add_group(self, org_id: int, name: str) -> Group:
        try:
            with self._conn.begin_nested():
                row = self._row("INSERT INTO groups (organisation_id, name) VALUES (:o, :n) RETURNING id",
                                o=org_id, n=name)
        except sa.exc.IntegrityError as exc:
            _raise_unless_unique_violation(exc)
            raise self._group_name_conflict(exc) from exc
        return Group(row[0], org_id, name, ())

    def group(self, group_id: int) -> Group | None:
        row = self._row(
            "SELECT g.id, g.organisation_id, g.name, "
            "COALESCE(array_agg(gm.user_id ORDER BY gm.user_id) FILTER (WHERE gm.user_id IS NOT NULL), '{}') "
            "FROM groups g LEFT JOIN group_members gm ON gm.group_id = g.id WHERE g.id = :id GROUP BY g.id",
            id=group_id,
        )
        return Group(row[0], row[1], row[2], tuple(row[3])) if row else None

    def groups(self, org_id: int) -> Sequence[Group]:
        rows = self._rows(
            "SELECT g.id, g.organisation_id, g.name, "
            "COALESCE(array_agg(gm.user_id ORDER BY gm.user_id) FILTER (WHERE gm.user_id IS NOT NULL), '{}') "
            "FROM groups g LEFT JOIN group_members gm ON gm.group_id = g.id WHERE g.organisation_id = :o "
            "GROUP BY g.id ORDER BY lower(g.name)",
            o=org_id,
        )
        return [Group(r[0], r[1], r[2], tuple(r[3])) for r in rows]

    def rename_group(self, group_id: int, name: str) -> Group:
        try:
            with self._conn.begin_nested():
                self._exec("UPDATE groups SET name = :n WHERE id = :id", n=name, id=group_id)
        except sa.exc.IntegrityError as exc:
            _raise_unless_unique_violation(exc)
            raise self._group_name_conflict(exc) from exc
        group = self.group(group_id)
        assert group is not None, "rename_group is called for existing groups only"
        return group

    def delete_group(self, group_id: int) -> None:
        self._exec("DELETE FROM groups WHERE id = :id", id=group_id)

    def add_group_member(self, group_id: int, user_id: int) -> None:
        self._exec("INSERT INTO group_members (group_id, user_id) VALUES (:g, :u) ON CONFLICT DO NOTHING",
                   g=group_id, u=user_id)

    def remove_group_member(self, group_id: int, user_id: int) -> None:
        self._exec("DELETE FROM group_members WHERE group_id = :g AND user_id = :u", g=group_id, u=user_id)

    # --- projects and grants ------------------------------------------------------------------------

    def add_project(self, project: Project) -> Project:
        try:
            with self._conn.begin_nested():
                row = self._row(
                    "INSERT INTO projects (organisation_id, key, name, description, lead_user_id, visibility, status) "
                    f"VALUES (:o, :k, :n, :d, :l, :v, :s) RETURNING {_PROJECT_COLUMNS}",
                    o=project.organisation_id, k=project.key, n=project.name, d=project.description,
                    l=project.lead_user_id, v=project.visibility.value, s=project.status.value,
                )
        except sa.exc.IntegrityError as exc:
            _raise_unless_unique_violation(exc)
            raise Conflict(f"project key {project.key} is already used in this organisation", field="key") from exc
        return _project(row)

    def project(self, project_id: int) -> Project | None:
        row = self._row(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = :id", id=project_id)
        return _project(row) if row else None

    def projects(self, org_id: int) -> Sequence[Project]:
        rows = self._rows(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE organisation_id = :o ORDER BY key", o=org_id)
        return [_project(r) for r in rows]

    def update_project(self, project: Project) -> Project:
        self._exec(
            "UPDATE projects SET name = :n, description = :d, lead_user_id = :l, visibility = :v, status = :s "
            "WHERE id = :id",
            n=project.name, d=project.description, l=project.lead_user_id, v=project.visibility.value,
            s=project.status.value, id=project.id,
        )
        return project

    def grants(self, project_id: int) -> Sequence[Grant]:
        rows = self._rows(
            "SELECT id, project_id, user_id, group_id, role FROM project_grants WHERE project_id = :p ORDER BY id",
            p=project_id,
        )
        return [_grant(r) for r in rows]

    def grant(self, grant_id: int) -> Grant | None:
        row = self._row("SELECT id, project_id, user_id, group_id, role FROM project_grants WHERE id = :id",
                        id=grant_id)
        return _grant(row) if row else None

    def put_grant(self, project_id: int, *, user_id: int | None, group_id: int | None, role: ProjectRole) -> Grant:
        holder = "user_id" if user_id is not None else "group_id"
        row = self._row(
            "INSERT INTO project_grants (project_id, user_id, group_id, role) VALUES (:p, :u, :g, :r) "
            f"ON CONFLICT (project_id, {holder}) WHERE {holder} IS NOT NULL DO UPDATE SET role = EXCLUDED.role "
            "RETURNING id, project_id, user_id, group_id, role",
            p=project_id, u=user_id, g=group_id, r=role.value,
        )
        return _grant(row)

    def delete_grant(self, grant_id: int) -> None:
        self._exec("DELETE FROM project_grants WHERE id = :id", id=grant_id)

    # --- invites ------------------------------------------------------------------------------------

    def add_invite(self, org_id: int, token_hash: str, role: OrgRole, email: str | None, created_by: int,
                   expires_at: datetime) -> Invite:
        row = self._row(
            "INSERT INTO invites (organisation_id, token_hash, role, email, created_by, expires_at) "
            f"VALUES (:o, :t, :r, :e, :c, :x) RETURNING {_INVITE_COLUMNS}",
            o=org_id, t=token_hash, r=role.value, e=email, c=created_by, x=expires_at,
        )
        return _invite(row)

    def invite(self, invite_id: int) -> Invite | None:
        row = self._row(f"SELECT {_INVITE_COLUMNS} FROM invites WHERE id = :id", id=invite_id)
        return _invite(row) if row else None

    def invite_by_token_hash(self, token_hash: str, *, for_update: bool = False) -> Invite | None:
        lock = " FOR UPDATE" if for_update else ""  # one acceptance per invite, even when raced
        row = self._row(f"SELECT {_INVITE_COLUMNS} FROM invites WHERE token_hash = :t{lock}", t=token_hash)
        return _invite(row) if row else None

    def invites(self, org_id: int) -> Sequence[Invite]:
        rows = self._rows(f"SELECT {_INVITE_COLUMNS} FROM invites WHERE organisation_id = :o ORDER BY id DESC",
                          o=org_id)
        return [_invite(r) for r in rows]

    def mark_invite_revoked(self, invite_id: int, now: datetime) -> None:
        self._exec("UPDATE invites SET revoked_at = :now WHERE id = :id", now=now, id=invite_id)

    def mark_invite_used(self, invite_id: int, user_id: int, now: datetime) -> None:
        self._exec("UPDATE invites SET used_at = :now, used_by = :u WHERE id = :id", now=now, u=user_id, id=invite_id)

    # --- audit log -----------------------------------------------------------------------------------

    def audit(self, entry: AuditEntry) -> None:
        self._exec(
            "INSERT INTO audit_log (organisation_id, actor_id, action, target, details) "
            "VALUES (:org, :actor, :action, :target, CAST(:details AS jsonb))",
            org=entry.organisation_id, actor=entry.actor_id, action=entry.action.value, target=entry.target,
            details=json.dumps(dict(entry.details), default=str),
        )

    def audit_entries(
        self, org_id: int | None, query: AuditQuery, *, cursor: str | None, limit: int
    ) -> tuple[list[AuditEntry], str | None]:
        conditions = ["organisation_id IS NULL" if org_id is None else "organisation_id = :org"]
        params: dict = {"org": org_id, "limit": limit + 1}
        if query.actions:
            conditions.append("action = ANY(:actions)")
            params["actions"] = sorted(a.value for a in query.actions)
        for column, value, op in (("actor_id", query.actor_id, "="), ("target", query.target, "="),
                                  ("created_at", query.since, ">="), ("created_at", query.until, "<")):
            if value is not None:
                name = f"p_{column}_{len(params)}"
                conditions.append(f"{column} {op} :{name}")
                params[name] = value
        if cursor is not None:
            conditions.append("id < :after")
            params["after"] = _cursor_id(cursor)
        rows = self._rows(
            "SELECT id, organisation_id, actor_id, action, target, details, created_at FROM audit_log "
            f"WHERE {' AND '.join(conditions)} ORDER BY id DESC LIMIT :limit",
            **params,
        )
        entries = [AuditEntry(r[1], r[2], AuditAction(r[3]), r[4], r[5], r[0], r[6]) for r in rows[:limit]]
        next_cursor = str(entries[-1].id) if len(rows) > limit else None
        return entries, next_cursor

    # --- sessions -----------------------------------------------------------------------------------

    def add_session(self, session: Session) -> None:
        self._exec(
            "INSERT INTO sessions (token_hash, user_id, active_organisation_id, expires_at) VALUES (:t, :u, :o, :x)",
            t=session.token_hash, u=session.user_id, o=session.active_organisation_id, x=session.expires_at,
        )

    def live_session(self, token_hash: str, now: datetime) -> Session | None:
        row = self._row(
            "SELECT token_hash, user_id, active_organisation_id, expires_at FROM sessions "
            "WHERE token_hash = :t AND revoked_at IS NULL AND expires_at > :now",
            t=token_hash, now=now,
        )
        return Session(*row) if row else None

    def act_for(self, user_id: int) -> None:
        # Transaction-local (is_local => true): read by the embedding_enqueue trigger (migration
        # 0016_embedding_actor), gone when the transaction ends, so a pooled connection carries nothing on.
        self._conn.execute(sa.text("SELECT set_config('tow.acting_user_id', :user_id, true)"),
                           {"user_id": str(int(user_id))})

    def set_session_organisation(self, token_hash: str, org_id: int) -> None:
        self._exec("UPDATE sessions SET active_organisation_id = :o WHERE token_hash = :t", o=org_id, t=token_hash)

    def revoke_session(self, token_hash: str, now: datetime) -> None:
        self._exec("UPDATE sessions SET revoked_at = :now WHERE token_hash = :t AND revoked_at IS NULL",
                   now=now, t=token_hash)

    def revoke_user_sessions(self, user_id: int, now: datetime, *, keep_token_hash: str | None = None) -> int:
        return self._exec("UPDATE sessions SET revoked_at = :now WHERE user_id = :u AND revoked_at IS NULL "
                          "AND token_hash IS DISTINCT FROM CAST(:keep AS text)",
                          now=now, u=user_id, keep=keep_token_hash)


class PgSignInLog:
    """The ``SignInLog`` port over ``login_failures`` and ``login_successes`` (migration 0012); each write
    in its own transaction (``engine.transaction``: a held pool is DatabaseBusy, not a 500). Forgetting
    takes at most ``_FORGET_BATCH`` old rows per write and skips rows
    another writer is deleting, so concurrent sign-ins never wait on (or deadlock over) the same old rows;
    as every write forgets up to that many, the tables stay bounded by what still counts."""

    _FORGET_BATCH = 100

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def record_failure(self, email: str, client_ip: str, now: datetime, *, forget_before: datetime) -> None:
        with transaction(self._engine) as conn:
            conn.execute(sa.text("INSERT INTO login_failures (email, client_ip, failed_at) VALUES (:e, :ip, :now)"),
                         {"e": email, "ip": client_ip, "now": now})
            conn.execute(sa.text(
                "DELETE FROM login_failures WHERE id IN (SELECT id FROM login_failures WHERE failed_at < :before "
                "LIMIT :n FOR UPDATE SKIP LOCKED)"), {"before": forget_before, "n": self._FORGET_BATCH})

    def recent_failures(
        self, since: datetime, *, limit: int, email: str | None = None, client_ip: str | None = None
    ) -> Sequence[datetime]:
        subjects = {name: value for name, value in (("email", email), ("client_ip", client_ip)) if value is not None}
        where = " ".join(f"AND {name} = :{name}" for name in subjects)  # fixed names; each has its index
        with transaction(self._engine) as conn:
            rows = conn.execute(sa.text(f"SELECT failed_at FROM login_failures WHERE failed_at > :since {where} "
                                        "ORDER BY failed_at DESC LIMIT :n"),
                                {"since": since, "n": limit, **subjects}).all()
        return [r[0] for r in rows]

    def clear_failures(self, email: str, client_ip: str) -> None:
        with transaction(self._engine) as conn:
            conn.execute(sa.text("DELETE FROM login_failures WHERE email = :e AND client_ip = :ip"),
                         {"e": email, "ip": client_ip})

    def record_success(self, user_id: int, client_ip: str, now: datetime, *, forget_before: datetime) -> None:
        with transaction(self._engine) as conn:
            conn.execute(sa.text(
                "INSERT INTO login_successes (user_id, client_ip, last_success_at) VALUES (:u, :ip, :now) "
                "ON CONFLICT (user_id, client_ip) DO UPDATE "
                "SET last_success_at = GREATEST(login_successes.last_success_at, EXCLUDED.last_success_at)"),
                {"u": user_id, "ip": client_ip, "now": now})
            conn.execute(sa.text(
                "DELETE FROM login_successes WHERE (user_id, client_ip) IN (SELECT user_id, client_ip "
                "FROM login_successes WHERE last_success_at < :before LIMIT :n FOR UPDATE SKIP LOCKED)"),
                {"before": forget_before, "n": self._FORGET_BATCH})

    def signed_in_from(self, user_id: int, client_ip: str, since: datetime) -> bool:
        with transaction(self._engine) as conn:
            return conn.execute(sa.text(
                "SELECT EXISTS (SELECT 1 FROM login_successes WHERE user_id = :u AND client_ip = :ip "
                "AND last_success_at > :since)"), {"u": user_id, "ip": client_ip, "since": since}).scalar_one()
