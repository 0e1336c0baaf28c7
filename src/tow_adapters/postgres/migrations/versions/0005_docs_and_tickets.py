"""Doc revisions and tree, ticket comments, activity and links (SPEC §4).

Revision ID: 0005
Revises: 0004

Everything here hangs off ``records`` and goes with it (``ON DELETE CASCADE``): deleting a doc removes
its revisions; the tables name users with ``ON DELETE SET NULL`` like ``records.author_id``.

- The page tree is ``records.fields ->> 'parent_id'`` (docs and tickets); ``records_parent_idx`` serves
  "children of X" (sub-page moves, "has sub-pages?", the recursive ancestor/descendant walks).
- ``ticket_links``: one row per link, read from both ends (``ticket_links_target_idx`` for the incoming
  side). ``relates_to`` is symmetric, so A relates_to B and B relates_to A are the same link.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE INDEX records_parent_idx ON records (organisation_id, (CAST(fields ->> 'parent_id' AS bigint)))
            WHERE fields ->> 'parent_id' IS NOT NULL;

        -- The title and body a doc had at ``version``, kept when a save replaced them.
        CREATE TABLE doc_revisions (
            id bigserial PRIMARY KEY,
            record_id bigint NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            version integer NOT NULL,
            title text NOT NULL,
            body text NOT NULL,
            saved_at timestamptz NOT NULL,
            replaced_by bigint REFERENCES users(id) ON DELETE SET NULL,
            replaced_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (record_id, version)
        );

        CREATE TABLE ticket_comments (
            id bigserial PRIMARY KEY,
            record_id bigint NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            author_id bigint REFERENCES users(id) ON DELETE SET NULL,
            body text NOT NULL CHECK (length(body) BETWEEN 1 AND 100000),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX ticket_comments_record_idx ON ticket_comments (record_id, id);

        -- field: 'created' for the creation, else the changed field (title, body, status, scope, priority, ...).
        CREATE TABLE ticket_activity (
            id bigserial PRIMARY KEY,
            record_id bigint NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            actor_id bigint REFERENCES users(id) ON DELETE SET NULL,
            at timestamptz NOT NULL DEFAULT now(),
            field text NOT NULL,
            old_value jsonb,
            new_value jsonb,
            ai_applied boolean NOT NULL DEFAULT false
        );
        CREATE INDEX ticket_activity_record_idx ON ticket_activity (record_id, id);

        CREATE TABLE ticket_links (
            id bigserial PRIMARY KEY,
            organisation_id bigint NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            source_id bigint NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            target_id bigint NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            kind text NOT NULL CHECK (kind IN ('relates_to', 'blocks', 'duplicates')),
            created_by bigint REFERENCES users(id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CHECK (source_id <> target_id),
            UNIQUE (source_id, target_id, kind)
        );
        CREATE INDEX ticket_links_target_idx ON ticket_links (target_id);
        CREATE UNIQUE INDEX ticket_links_symmetric_idx ON ticket_links
            (LEAST(source_id, target_id), GREATEST(source_id, target_id)) WHERE kind = 'relates_to';
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE ticket_links, ticket_activity, ticket_comments, doc_revisions; DROP INDEX records_parent_idx"
    )
