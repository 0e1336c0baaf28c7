"""In-app notifications, watching and notification preferences (issue 19, items 2 and 4).

Revision ID: 0025_notifications
Revises: 0024_email_outbox

A notification row names who it is for, in which organisation, what kind of event, the record (and comment)
it is about and who caused it — ids only, never a copied title or body, so what it shows is read through the
access policy when it is shown (a record the person can no longer read shows as "a record you can no longer
see"). ``record_watchers`` is who hears about comments on a record (authors, assignees and commenters are
added automatically; anyone may watch or unwatch). ``notification_preferences`` holds, per person and kind,
where a notification goes (in_app, email or off); a missing row is the default (in_app). A notification email
carries ``List-Unsubscribe`` headers (RFC 8058), so ``email_outbox`` gains the extra headers of a message.
"""

from alembic import op

revision = "0025_notifications"
down_revision = "0024_email_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE notifications (
            id bigserial PRIMARY KEY,
            user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            organisation_id bigint NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            kind text NOT NULL,
            record_id bigint REFERENCES records(id) ON DELETE CASCADE,
            comment_id bigint REFERENCES ticket_comments(id) ON DELETE SET NULL,
            actor_id bigint REFERENCES users(id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL,
            read_at timestamptz
        );
        CREATE INDEX notifications_user_idx ON notifications (user_id, organisation_id, id DESC);
        CREATE INDEX notifications_unread_idx ON notifications (user_id, organisation_id) WHERE read_at IS NULL;
        CREATE INDEX notifications_record_idx ON notifications (record_id);

        CREATE TABLE record_watchers (
            record_id bigint NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            PRIMARY KEY (record_id, user_id)
        );
        CREATE INDEX record_watchers_user_idx ON record_watchers (user_id);

        ALTER TABLE email_outbox ADD COLUMN headers jsonb NOT NULL DEFAULT '{}'::jsonb;

        CREATE TABLE notification_preferences (
            user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            kind text NOT NULL,
            delivery text NOT NULL CHECK (delivery IN ('in_app', 'email', 'off')),
            PRIMARY KEY (user_id, kind)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE notification_preferences; DROP TABLE record_watchers; DROP TABLE notifications; "
               "ALTER TABLE email_outbox DROP COLUMN headers;")
