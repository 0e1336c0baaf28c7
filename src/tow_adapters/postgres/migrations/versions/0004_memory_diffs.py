"""Memory diffs: proposed changes to memory, reviewed before they apply (SPEC §4).

Revision ID: 0004
Revises: 0003

One row per diff; its operations and, once decided, the per-operation outcomes are jsonb arrays
(written and read only by ``tow_adapters.postgres.memory_diffs``; their shapes are documented there).
The scope columns match ``records`` so that the one visibility predicate applies unchanged. Indexes
follow the queries:
- ``(organisation_id, scope_kind, scope_ref)``: the visibility filter probes diffs by readable scope;
- ``(organisation_id, status, created_at DESC)``: the review queue (pending first, newest first) and
  the status filter.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE memory_diffs (
            id bigserial PRIMARY KEY,
            organisation_id bigint NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            scope_kind text NOT NULL CHECK (scope_kind IN ('organisation', 'group', 'project', 'user')),
            scope_ref bigint NOT NULL,
            source text NOT NULL CHECK (source IN ('doc', 'chat', 'checkin', 'manual')),
            source_display_id text CHECK (source_display_id ~ '^[A-Z0-9]{2,10}-[1-9][0-9]*$'),
            rationale text NOT NULL DEFAULT '',
            author_id bigint REFERENCES users(id) ON DELETE SET NULL,
            operations jsonb NOT NULL
                CHECK (jsonb_typeof(operations) = 'array' AND jsonb_array_length(operations) >= 1),
            status text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'approved', 'rejected', 'partially_applied')),
            reviewer_id bigint REFERENCES users(id) ON DELETE SET NULL,
            decided_at timestamptz,
            review_note text NOT NULL DEFAULT '',
            outcomes jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(outcomes) = 'array'),
            created_at timestamptz NOT NULL DEFAULT now(),
            CHECK (scope_kind <> 'organisation' OR scope_ref = organisation_id),
            -- decided exactly when no longer pending
            CHECK ((status = 'pending') = (decided_at IS NULL))
        );
        CREATE INDEX memory_diffs_scope_idx ON memory_diffs (organisation_id, scope_kind, scope_ref);
        CREATE INDEX memory_diffs_queue_idx ON memory_diffs (organisation_id, status, created_at DESC);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE memory_diffs")
