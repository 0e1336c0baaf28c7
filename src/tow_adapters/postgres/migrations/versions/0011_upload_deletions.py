"""The outbox of upload files to delete (follow-up of issue 5, SPEC §5 "deleted means deleted").

Revision ID: 0011
Revises: 0010

Deleting an upload row — directly, or through a cascade from its record, a deleted doc subtree or its
organisation — must also remove its file, but a file cannot be deleted inside a transaction: deleting it
before the commit loses the file of a deletion that rolls back; deleting it after leaves the file behind
when the process dies in between. So the trigger ``uploads_queue_file_deletion`` writes the file's
storage name into ``upload_deletions`` in the *same* transaction as the row deletion (row-level
triggers fire for ``ON DELETE CASCADE`` deletions too), and the job worker's periodic sweep deletes the
file, then the outbox row, after the commit. A rolled-back deletion takes its outbox row with it; a
crash between the file and the outbox row only repeats an idempotent file deletion.
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE upload_deletions (
            storage_name text PRIMARY KEY CHECK (storage_name ~ '^[0-9a-f]{32}$'),
            queued_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE FUNCTION uploads_queue_file_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO upload_deletions (storage_name) VALUES (OLD.storage_name) ON CONFLICT DO NOTHING;
            RETURN OLD;
        END;
        $$;

        CREATE TRIGGER uploads_queue_file_deletion AFTER DELETE ON uploads
            FOR EACH ROW EXECUTE FUNCTION uploads_queue_file_deletion();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER uploads_queue_file_deletion ON uploads;
        DROP FUNCTION uploads_queue_file_deletion();
        DROP TABLE upload_deletions;
        """
    )
