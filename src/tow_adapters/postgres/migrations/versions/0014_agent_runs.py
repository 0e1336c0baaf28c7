"""Agent runs (issue 13, SPEC §6 "AI workflows"): the user-visible state of each piece of AI work and its
worker lease, in one row (rules in ``tow_core.agent_runs``).

A run is not a row of ``jobs``: its status, cancel request and attempt are what its owner sees, and the
lease fencing them must live on the same row, so that a claim, a heartbeat or a completion is one
``UPDATE ... WHERE attempts = :claimed`` and never two tables that could disagree.

Revision ID: 0014_agent_runs
Revises: 0013_export_access
"""

from alembic import op

revision = "0014_agent_runs"
down_revision = "0013_export_access"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE agent_runs (
            id bigserial PRIMARY KEY,
            kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
            owner_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            organisation_id bigint NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            -- NULL: all projects. CASCADE, not SET NULL: a deleted project's runs must not widen to all projects.
            project_id bigint REFERENCES projects(id) ON DELETE CASCADE,
            input jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(input) = 'object'),
            output jsonb CHECK (output IS NULL OR jsonb_typeof(output) = 'object'),
            error_code text,
            error text,
            status text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
            cancel_requested boolean NOT NULL DEFAULT false,
            attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            lease_expires_at timestamptz,
            input_tokens bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
            output_tokens bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
            created_at timestamptz NOT NULL,
            started_at timestamptz,
            finished_at timestamptz,
            CHECK ((status = 'running') = (lease_expires_at IS NOT NULL)),
            CHECK ((status IN ('completed', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
        );
        -- Claiming: queued runs oldest first, and running runs by lease expiry.
        CREATE INDEX agent_runs_queued_idx ON agent_runs (created_at, id) WHERE status = 'queued';
        CREATE INDEX agent_runs_leased_idx ON agent_runs (lease_expires_at, id) WHERE status = 'running';
        -- Listing, newest first: the organisation's (owners/admins) and one owner's.
        CREATE INDEX agent_runs_org_idx ON agent_runs (organisation_id, id DESC);
        CREATE INDEX agent_runs_owner_idx ON agent_runs (organisation_id, owner_id, id DESC);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE agent_runs")
