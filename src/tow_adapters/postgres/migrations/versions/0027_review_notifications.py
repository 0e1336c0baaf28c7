"""Notifications about your own agent runs (issue 19 item 2: "your agent run finished or failed"); a snapshot
awaiting your review is a record, so its notification needs no new column.

Revision ID: 0027_review_notifications
Revises: 0026_notification_digest

A run is not a record, so a notification about one names it in ``agent_run_id`` (ids only, as before: the run's
kind is read at show time, joined on the run and its owner being the reader). Deleting a run deletes the
notifications about it. The partial index serves that cascade without weighing on the other notifications.
"""

from alembic import op

revision = "0027_review_notifications"
down_revision = "0026_notification_digest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE notifications ADD COLUMN agent_run_id bigint REFERENCES agent_runs(id) ON DELETE CASCADE;
        CREATE INDEX notifications_agent_run_idx ON notifications (agent_run_id) WHERE agent_run_id IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX notifications_agent_run_idx; ALTER TABLE notifications DROP COLUMN agent_run_id;")
