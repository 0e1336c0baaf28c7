"""The audit log of access and record changes (issue 4, SPEC §2).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE audit_log (
            id bigserial PRIMARY KEY,
            organisation_id bigint REFERENCES organisations(id) ON DELETE CASCADE,  -- NULL: server level
            actor_id bigint REFERENCES users(id) ON DELETE SET NULL,
            action text NOT NULL,
            target text NOT NULL,
            details jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX audit_log_org_idx ON audit_log (organisation_id, created_at DESC, id DESC);
        CREATE INDEX audit_log_org_action_idx ON audit_log (organisation_id, action, created_at DESC);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE audit_log")
