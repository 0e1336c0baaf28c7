"""The digest setting of notification emails (issue 19 item 1): off, immediate or daily, per person.

Revision ID: 0026_notification_digest
Revises: 0025_notifications

``notification_digests`` holds a person's choice (a missing row is ``immediate``, each notification emailed on
its own) and, for ``daily``, when their last digest was sent (or when they chose daily). The job worker's
housekeeping claims the people whose digest is due with one ``UPDATE ... WHERE last_digest_at <= cutoff
RETURNING``, so several workers never send the same digest twice.
"""

from alembic import op

revision = "0026_notification_digest"
down_revision = "0025_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE notification_digests (
            user_id bigint PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
            digest text NOT NULL CHECK (digest IN ('off', 'immediate', 'daily')),
            last_digest_at timestamptz NOT NULL
        );
        CREATE INDEX notification_digests_due_idx ON notification_digests (last_digest_at) WHERE digest = 'daily';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE notification_digests;")
