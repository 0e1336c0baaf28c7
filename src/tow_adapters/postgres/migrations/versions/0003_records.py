"""Records, their per-organisation display-ID sequences and the references between them (SPEC §4, §7).

Revision ID: 0003
Revises: 0002

One table holds every record type: the common columns are typed, the type-specific ones live in
``fields`` (validated by ``tow_core.records``). Indexes follow the queries:
- ``(organisation_id, scope_kind, scope_ref)``: the visibility filter probes records by the scopes the
  principal can read, so its cost grows with what the principal sees;
- GIN on the generated ``search`` tsvector (title weighted A over body B) for keyword search;
- ``(organisation_id, updated_at DESC, id DESC)``: "newest first" keyset pagination;
- ``(organisation_id, lower(title) text_pattern_ops)``: title-prefix lookup (``LIKE 'abc%'``) under any
  collation.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE records (
            id bigserial PRIMARY KEY,
            organisation_id bigint NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            type text NOT NULL CHECK (type IN ('memory', 'doc', 'ticket', 'decision', 'risk', 'snapshot')),
            -- fixed type prefixes and project keys (projects.key allows a leading digit)
            prefix text NOT NULL CHECK (prefix ~ '^[A-Z0-9]{2,10}$'),
            number bigint NOT NULL CHECK (number >= 1),
            scope_kind text NOT NULL CHECK (scope_kind IN ('organisation', 'group', 'project', 'user')),
            scope_ref bigint NOT NULL,
            title text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
            body text NOT NULL DEFAULT '',
            status text NOT NULL,
            author_id bigint REFERENCES users(id) ON DELETE SET NULL,
            fields jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            version integer NOT NULL DEFAULT 1,
            search tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', body), 'B')
            ) STORED,
            UNIQUE (organisation_id, prefix, number),
            -- an organisation scope names its own organisation (tow_core.access.Scope)
            CHECK (scope_kind <> 'organisation' OR scope_ref = organisation_id)
        );
        CREATE INDEX records_scope_idx ON records (organisation_id, scope_kind, scope_ref);
        CREATE INDEX records_search_idx ON records USING gin (search);
        CREATE INDEX records_recent_idx ON records (organisation_id, updated_at DESC, id DESC);
        CREATE INDEX records_title_prefix_idx ON records (organisation_id, lower(title) text_pattern_ops);

        -- The last number handed out per (organisation, prefix). Allocation updates the row, whose lock
        -- is held to commit: numbers are gap-free and duplicate-free even when raced.
        CREATE TABLE record_sequences (
            organisation_id bigint NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            prefix text NOT NULL,
            last_number bigint NOT NULL,
            PRIMARY KEY (organisation_id, prefix)
        );

        CREATE TABLE record_references (
            source_id bigint NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            target_id bigint NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            PRIMARY KEY (source_id, target_id),
            CHECK (source_id <> target_id)
        );
        CREATE INDEX record_references_target_idx ON record_references (target_id);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE record_references, record_sequences, records")
