"""The record's scope on its embedding chunks, kept equal to the record's by the database (issue 16 item 3).

Revision ID: 0029_embedding_chunk_scope
Revises: 0028_diff_notifications

Semantic search filters HNSW candidates by visibility as the index streams them. Until now each candidate's
record row was probed (by primary key) and tested with the visibility sub-select; with ``(organisation_id,
scope_kind, scope_ref)`` on the chunk itself the test is an array lookup on the row the index scan already
holds, against the readable scopes computed once per statement from the one rule table (``PgSemanticIndex``),
and the exact scan and the readable count read the readable chunks straight from the scope index.

0009 kept scope off the chunks so that a move or a revocation takes effect in the transaction that makes it.
That stays true: the copy is written by triggers, in the same transaction as the change, whatever code path
makes it (API, memory diff, import, a hand-written UPDATE):

- ``embedding_chunks_scope`` (BEFORE INSERT, and BEFORE an UPDATE naming these columns) takes the scope from
  the record row, whatever the writer supplied, so a chunk cannot carry any other scope. It reads the row
  ``FOR SHARE``: a concurrent scope move of that record holds a conflicting lock, so the insert waits for it
  and reads the moved scope (without the lock, a chunk inserted beside an uncommitted move would keep the
  old scope: the move's trigger cannot see the uncommitted chunk).
- ``records_scope_to_chunks`` (AFTER UPDATE when the scope changed) rewrites the record's chunks.

Revocations need nothing here: they change what the caller can read, not where a record is. pg_dump scripts
create triggers after the data, so a restore loads the dumped (consistent-snapshot) scope columns as they were.
The scope index serves the capped readable count and the exact scan, which read only readable chunks.
"""

from alembic import op

revision = "0029_embedding_chunk_scope"
down_revision = "0028_diff_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE embedding_chunks ADD COLUMN organisation_id bigint, ADD COLUMN scope_kind text,
            ADD COLUMN scope_ref bigint;
        UPDATE embedding_chunks c SET organisation_id = r.organisation_id, scope_kind = r.scope_kind,
            scope_ref = r.scope_ref FROM records r WHERE r.id = c.record_id;
        ALTER TABLE embedding_chunks ALTER COLUMN organisation_id SET NOT NULL,
            ALTER COLUMN scope_kind SET NOT NULL, ALTER COLUMN scope_ref SET NOT NULL;
        CREATE INDEX embedding_chunks_scope_idx ON embedding_chunks (space_id, organisation_id, scope_kind, scope_ref);

        CREATE FUNCTION embedding_chunk_scope() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            SELECT r.organisation_id, r.scope_kind, r.scope_ref INTO NEW.organisation_id, NEW.scope_kind, NEW.scope_ref
            FROM records r WHERE r.id = NEW.record_id FOR SHARE;
            RETURN NEW;  -- no record: the columns stay NULL and the insert fails, as the foreign key would
        END $$;
        CREATE TRIGGER embedding_chunks_scope BEFORE INSERT OR UPDATE OF record_id, organisation_id, scope_kind,
            scope_ref ON embedding_chunks FOR EACH ROW EXECUTE FUNCTION embedding_chunk_scope();

        CREATE FUNCTION records_scope_to_chunks() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE embedding_chunks SET organisation_id = NEW.organisation_id, scope_kind = NEW.scope_kind,
                scope_ref = NEW.scope_ref WHERE record_id = NEW.id;
            RETURN NULL;
        END $$;
        CREATE TRIGGER records_scope_to_chunks AFTER UPDATE OF organisation_id, scope_kind, scope_ref ON records
            FOR EACH ROW WHEN ((OLD.organisation_id, OLD.scope_kind, OLD.scope_ref)
                IS DISTINCT FROM (NEW.organisation_id, NEW.scope_kind, NEW.scope_ref))
            EXECUTE FUNCTION records_scope_to_chunks();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER records_scope_to_chunks ON records; DROP FUNCTION records_scope_to_chunks();
        DROP TRIGGER embedding_chunks_scope ON embedding_chunks; DROP FUNCTION embedding_chunk_scope();
        DROP INDEX embedding_chunks_scope_idx;
        ALTER TABLE embedding_chunks DROP COLUMN organisation_id, DROP COLUMN scope_kind, DROP COLUMN scope_ref;
        """
    )
