"""The background job queue and export requests (issue 5, SPEC §5).

Revision ID: 0010
Revises: 0009

- ``jobs``: a PostgreSQL-backed queue. Workers claim with ``FOR UPDATE SKIP LOCKED`` (many workers,
  no double claims) and hold a lease (``lease_expires_at``); a job whose lease expired — its worker
  crashed — is claimable again. ``jobs_claimable_idx`` serves the claim query: queued jobs by due time,
  running jobs by lease expiry.
- ``exports``: one row per requested export; its status is its job's. The file name is set when the
  file is complete (renamed into place); the row is deleted with its file once ``expires_at`` passes
  (``exports_expiry_idx`` serves the sweep).
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE jobs (
            id bigserial PRIMARY KEY,
            kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]{0,63}$'),
            payload jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
            status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'completed', 'failed')),
            attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            run_after timestamptz NOT NULL,
            lease_expires_at timestamptz,
            error text,
            requested_by bigint REFERENCES users(id) ON DELETE SET NULL,
            organisation_id bigint REFERENCES organisations(id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL,
            started_at timestamptz,
            finished_at timestamptz,
            CHECK ((status = 'running') = (lease_expires_at IS NOT NULL))
        );
        CREATE INDEX jobs_claimable_idx ON jobs (status, run_after, id) WHERE status = 'queued';
        CREATE INDEX jobs_leased_idx ON jobs (lease_expires_at) WHERE status = 'running';

        CREATE TABLE exports (
            id bigserial PRIMARY KEY,
            organisation_id bigint NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            requested_by bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            kind text NOT NULL CHECK (kind IN ('member', 'organisation')),
            include_attachment_contents boolean NOT NULL DEFAULT false,
            job_id bigint NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            file_name text CHECK (file_name ~ '^[a-z0-9-]+\\.json$'),
            size_bytes bigint,
            created_at timestamptz NOT NULL,
            completed_at timestamptz,
            expires_at timestamptz NOT NULL,  -- reset to completion + retention when the file is ready
            CHECK ((file_name IS NULL) = (completed_at IS NULL))
        );
        CREATE INDEX exports_requester_idx ON exports (requested_by, created_at DESC, id DESC);
        CREATE INDEX exports_expiry_idx ON exports (expires_at);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE exports, jobs")
