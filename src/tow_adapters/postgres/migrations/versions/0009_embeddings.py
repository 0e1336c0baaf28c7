"""Embeddings of records for semantic search: spaces, chunk vectors and the embedding outbox (issue 6).

Revision ID: 0009
Revises: 0008

- ``embedding_spaces``: the (model, dimension) vectors are made in. One is ``active`` (searched and kept
  current by the workers); during ``tow embeddings migrate`` one more is ``migrating`` (being filled
  while search keeps using the active one). The first space is recorded at first use, so that a later
  start with another ``ai.embedding_dim`` can be refused (SPEC §6).
- ``embedding_chunks``: one row per embedded chunk, keyed to the record row (``ON DELETE CASCADE``:
  deleting a record deletes its vectors in the same transaction). Scope, status and type are *not*
  copied here: search joins ``records`` and applies the one visibility predicate, so a scope move or a
  revoked grant takes effect in the very transaction that makes it. ``embedding`` is an untyped
  ``vector`` so that two spaces of different dimensions can coexist during a migration; each space
  gets its own partial HNSW index over ``embedding::halfvec(N)``, created with the space
  (``PgEmbeddingPipeline``), because the dimension is only known then. ``content_hash`` is the md5 of
  the text the vectors were made from, so stale vectors are recognised.
- ``embedding_outbox``: work to do, written by triggers on ``records`` in the same transaction as the
  change, whichever code path made it (API, memory diff approval, import). One row per record: later
  edits bump ``generation`` instead of queueing twice. Workers claim rows with ``FOR UPDATE SKIP
  LOCKED`` and a lease (``leased_until``); failures wait until ``available_at`` (backoff).
  Existing records are queued here, so the first worker backfills them.
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE embedding_spaces (
            id serial PRIMARY KEY,
            model text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
            dim integer NOT NULL CHECK (dim BETWEEN 1 AND 4000),  -- halfvec HNSW indexes go up to 4000
            state text NOT NULL CHECK (state IN ('active', 'migrating', 'retired')),
            created_at timestamptz NOT NULL DEFAULT now(),
            activated_at timestamptz
        );
        CREATE UNIQUE INDEX embedding_spaces_one_active_idx ON embedding_spaces ((true)) WHERE state = 'active';
        CREATE UNIQUE INDEX embedding_spaces_one_migrating_idx ON embedding_spaces ((true))
            WHERE state = 'migrating';

        CREATE TABLE embedding_chunks (
            space_id integer NOT NULL REFERENCES embedding_spaces(id) ON DELETE CASCADE,
            record_id bigint NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            chunk integer NOT NULL CHECK (chunk >= 0),
            content_hash text NOT NULL,
            embedding vector NOT NULL,
            PRIMARY KEY (space_id, record_id, chunk)
        );
        CREATE INDEX embedding_chunks_record_idx ON embedding_chunks (record_id);

        CREATE TABLE embedding_outbox (
            record_id bigint PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE,
            generation bigint NOT NULL DEFAULT 1,
            enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            available_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            leased_until timestamptz,
            attempts integer NOT NULL DEFAULT 0,
            last_error text
        );
        CREATE INDEX embedding_outbox_due_idx ON embedding_outbox (available_at);

        -- A new text (or a re-queue while a worker holds the lease) is due now and starts its retries
        -- afresh; the lease is kept, so no second worker embeds the record while the first one still
        -- works on it. The holder sees the bumped generation and releases the row instead of deleting it.
        CREATE FUNCTION embedding_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO embedding_outbox AS o (record_id) VALUES (NEW.id)
            ON CONFLICT (record_id) DO UPDATE SET generation = o.generation + 1, enqueued_at = clock_timestamp(),
                available_at = clock_timestamp(), attempts = 0, last_error = NULL;
            RETURN NULL;
        END $$;
        CREATE TRIGGER records_embedding_insert AFTER INSERT ON records
            FOR EACH ROW EXECUTE FUNCTION embedding_enqueue();
        CREATE TRIGGER records_embedding_update AFTER UPDATE OF title, body ON records
            FOR EACH ROW WHEN (OLD.title IS DISTINCT FROM NEW.title OR OLD.body IS DISTINCT FROM NEW.body)
            EXECUTE FUNCTION embedding_enqueue();

        INSERT INTO embedding_outbox (record_id) SELECT id FROM records ORDER BY id;
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER records_embedding_update ON records; DROP TRIGGER records_embedding_insert ON records; "
        "DROP FUNCTION embedding_enqueue(); DROP TABLE embedding_outbox, embedding_chunks, embedding_spaces"
    )
