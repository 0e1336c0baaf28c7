"""People, organisations, groups, projects, grants, sessions, invites and login throttling (SPEC §1–§3).

Revision ID: 0002
Revises: 0001

Indexes follow the visibility filter: every lookup it makes starts from the principal's user id
(memberships, group_members, project_grants by user or group), so its cost depends on what the
principal can reach, not on how many rows others have.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE users (
            id bigserial PRIMARY KEY,
            email text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 320),
            display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
            password_hash text,
            is_server_admin boolean NOT NULL DEFAULT false,
            is_active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            deactivated_at timestamptz
        );
        CREATE UNIQUE INDEX users_email_key ON users (email);

        CREATE TABLE organisations (
            id bigserial PRIMARY KEY,
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            workflow_mode text NOT NULL DEFAULT 'organization' CHECK (workflow_mode IN ('founder', 'organization')),
            created_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE memberships (
            organisation_id bigint NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            role text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (organisation_id, user_id)
        );
        CREATE INDEX memberships_user_idx ON memberships (user_id, organisation_id, role);

        CREATE TABLE groups (
            id bigserial PRIMARY KEY,
            organisation_id bigint NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (organisation_id, id)
        );
        CREATE UNIQUE INDEX groups_name_key ON groups (organisation_id, lower(name));

        CREATE TABLE group_members (
            group_id bigint NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
            user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            PRIMARY KEY (group_id, user_id)
        );
        CREATE INDEX group_members_user_idx ON group_members (user_id, group_id);

        CREATE TABLE projects (
            id bigserial PRIMARY KEY,
            organisation_id bigint NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            key text NOT NULL CHECK (key ~ '^[A-Z0-9]{2,10}$'),
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            description text NOT NULL DEFAULT '',
            lead_user_id bigint REFERENCES users(id) ON DELETE SET NULL,
            visibility text NOT NULL CHECK (visibility IN ('open', 'restricted')),
            status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (organisation_id, key),
            UNIQUE (organisation_id, id)
        );
        CREATE INDEX projects_open_idx ON projects (organisation_id) WHERE visibility = 'open';

        CREATE TABLE project_grants (
            id bigserial PRIMARY KEY,
            project_id bigint NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            user_id bigint REFERENCES users(id) ON DELETE CASCADE,
            group_id bigint REFERENCES groups(id) ON DELETE CASCADE,
            role text NOT NULL CHECK (role IN ('viewer', 'member', 'lead', 'admin')),
            created_at timestamptz NOT NULL DEFAULT now(),
            CHECK ((user_id IS NULL) <> (group_id IS NULL))
        );
        CREATE UNIQUE INDEX project_grants_user_key ON project_grants (project_id, user_id) WHERE user_id IS NOT NULL;
        CREATE UNIQUE INDEX project_grants_group_key ON project_grants (project_id, group_id) WHERE group_id IS NOT NULL;
        CREATE INDEX project_grants_user_idx ON project_grants (user_id, project_id) WHERE user_id IS NOT NULL;
        CREATE INDEX project_grants_group_idx ON project_grants (group_id, project_id) WHERE group_id IS NOT NULL;

        -- A session row per signed-in browser; the cookie carries the token, the row its SHA-256.
        CREATE TABLE sessions (
            token_hash text PRIMARY KEY,
            user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            active_organisation_id bigint REFERENCES organisations(id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            revoked_at timestamptz
        );
        CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;

        CREATE TABLE invites (
            id bigserial PRIMARY KEY,
            organisation_id bigint NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            token_hash text NOT NULL UNIQUE,
            role text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
            email text CHECK (email IS NULL OR email = lower(email)),
            created_by bigint REFERENCES users(id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            revoked_at timestamptz,
            used_at timestamptz,
            used_by bigint REFERENCES users(id) ON DELETE SET NULL
        );
        CREATE INDEX invites_org_idx ON invites (organisation_id, created_at DESC);

        -- Failed sign-ins, per account (lower-cased email) and per client IP, for throttling.
        CREATE TABLE login_failures (
            id bigserial PRIMARY KEY,
            subject_kind text NOT NULL CHECK (subject_kind IN ('account', 'ip')),
            subject text NOT NULL,
            failed_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX login_failures_subject_idx ON login_failures (subject_kind, subject, failed_at DESC);
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE login_failures, invites, sessions, project_grants, projects, group_members, groups, "
        "memberships, organisations, users"
    )
