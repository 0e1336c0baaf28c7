"""Personal access tokens (issue 15): machine access to the JSON API and the MCP server as a person.

Revision ID: 0022_personal_access_tokens
Revises: 0018_memory_review_rules

Only the SHA-256 of a token's secret is kept (``token_hash``, unique: the lookup of every bearer request);
``prefix`` is the secret's first characters, shown in lists so a person can tell tokens apart.
``organisation_id`` NULL means unrestricted. Revoked rows stay (who revoked what stays explainable in the
audit log); ``tokens_of_user`` serves the profile list and "revoke all of a user's tokens".
"""

from alembic import op

revision = "0022_personal_access_tokens"
down_revision = "0018_memory_review_rules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE personal_access_tokens (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            token_hash text NOT NULL UNIQUE CHECK (length(token_hash) = 64),
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
            prefix text NOT NULL CHECK (length(prefix) BETWEEN 1 AND 32),
            access text NOT NULL CHECK (access IN ('read', 'read_write')),
            organisation_id bigint REFERENCES organisations(id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL,
            last_used_at timestamptz,
            revoked_at timestamptz,
            CHECK (expires_at > created_at)
        );
        CREATE INDEX tokens_of_user ON personal_access_tokens (user_id, created_at DESC, id DESC);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE personal_access_tokens;")
