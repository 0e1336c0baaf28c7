"""A generated snapshot's sources pinned to record versions (issue 14 item 2, SPEC §4 Snapshot).

Revision ID: 0019_snapshot_sources
Revises: 0016_embedding_actor

One row per record a generated snapshot cites, with the version of that record the draft was written from,
so the snapshot can show "sources changed since" when a source has moved on. The pin goes with its snapshot
(``ON DELETE CASCADE``); the source has no foreign key on purpose: deleting a cited doc must not erase the
fact that the snapshot rested on it (a gone source counts as changed). Record ids are never reused.
"""

from alembic import op

revision = "0019_snapshot_sources"
down_revision = "0016_embedding_actor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE snapshot_sources (
            snapshot_record_id bigint NOT NULL REFERENCES records(id) ON DELETE CASCADE,
            organisation_id bigint NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            source_record_id bigint NOT NULL,
            source_version integer NOT NULL CHECK (source_version >= 1),
            PRIMARY KEY (snapshot_record_id, source_record_id)
        );
        CREATE INDEX snapshot_sources_by_source ON snapshot_sources (source_record_id);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE snapshot_sources")
