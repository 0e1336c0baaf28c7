"""Notifications about memory diffs awaiting review (issue 19 item 2: "a memory diff or snapshot awaiting your
review").

Revision ID: 0028_diff_notifications
Revises: 0027_review_notifications

A memory diff is not a record, so a notification about one names it in ``memory_diff_id`` (ids only, as before:
what it shows — the diff's operation count and state — is read at show time, joined under the visibility predicate
for the reader, so a diff whose scope they lost shows as "a memory diff you can no longer see"). Diffs are kept
with their organisation; deleting one (an organisation deleted or restored over) deletes the notifications about it.
"""

from alembic import op

revision = "0028_diff_notifications"
down_revision = "0027_review_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE notifications ADD COLUMN memory_diff_id bigint REFERENCES memory_diffs(id) ON DELETE CASCADE;
        CREATE INDEX notifications_memory_diff_idx ON notifications (memory_diff_id) WHERE memory_diff_id IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX notifications_memory_diff_idx; ALTER TABLE notifications DROP COLUMN memory_diff_id;")
