"""Who made the change an embedding is for (issue 13, data controls): the egress ledger row of an
embedding call names the person whose edit it embeds.

Revision ID: 0016_embedding_actor
Revises: 0015_conversations

``embedding_outbox.acting_user_id`` is filled by the same trigger that queues the record, from the
transaction-local setting ``tow.acting_user_id`` that a unit of work acting as a person sets
(``PgRecordStore.attribute_changes_to``, called by ``Transactions.acting_as``). The trigger sees every
code path that writes records, so no path can queue an edit without its author. A later edit replaces
the author with its own: the worker embeds the latest text, on behalf of whoever wrote it. Work nobody
started (the backfill, an import run by an operator, a migration's re-queue) has none (NULL), as before.
``ON DELETE SET NULL``: deleting an account must not delete queued work.
"""

from alembic import op

revision = "0016_embedding_actor"
down_revision = "0015_conversations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE embedding_outbox ADD COLUMN acting_user_id bigint REFERENCES users(id) ON DELETE SET NULL;

        -- current_setting(..., true) is NULL when the setting was never made in this session and ''
        -- after a transaction that made it locally has ended: both mean "nobody".
        CREATE OR REPLACE FUNCTION embedding_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            actor bigint := CAST(NULLIF(current_setting('tow.acting_user_id', true), '') AS bigint);
        BEGIN
            INSERT INTO embedding_outbox AS o (record_id, acting_user_id) VALUES (NEW.id, actor)
            ON CONFLICT (record_id) DO UPDATE SET generation = o.generation + 1, enqueued_at = clock_timestamp(),
                available_at = clock_timestamp(), attempts = 0, last_error = NULL,
                acting_user_id = EXCLUDED.acting_user_id;
            RETURN NULL;
        END $$;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION embedding_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO embedding_outbox AS o (record_id) VALUES (NEW.id)
            ON CONFLICT (record_id) DO UPDATE SET generation = o.generation + 1, enqueued_at = clock_timestamp(),
                available_at = clock_timestamp(), attempts = 0, last_error = NULL;
            RETURN NULL;
        END $$;
        ALTER TABLE embedding_outbox DROP COLUMN acting_user_id;
        """
    )
