"""What each export file holds, for refusing it once its requester's access shrinks (issue 11, SPEC §2
"immediate revocation", exports included).

Revision ID: 0013_export_access
Revises: 0011

``exports.scopes`` is the JSON array of ``[scope_kind, scope_ref]`` pairs of every record and memory
diff the file holds, written with the file name once the file is complete and read from the same
snapshot as the file's content. A download checks each scope with the read policy against the
requester as they are now. Exports finished before this migration have none (NULL): nothing can show
their requester may still read all of them, so they are refused with "request a new one" — they would
have been deleted within ``exports.retention_hours`` anyway.
"""

from alembic import op

revision = "0013_export_access"
down_revision = "0012_login_throttle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE exports ADD COLUMN scopes jsonb
            CHECK (scopes IS NULL OR jsonb_typeof(scopes) = 'array');
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE exports DROP COLUMN scopes;")
