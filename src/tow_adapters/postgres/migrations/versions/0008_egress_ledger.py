"""The data-egress ledger: one row per outbound AI/web provider call (issue 6, SPEC §6).

No foreign keys on purpose: the ledger is an append-only record of what left the deployment, and it
must keep that fact even if the organisation, user or records named in it are deleted later.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE egress_ledger (
            id bigserial PRIMARY KEY,
            created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            organisation_id bigint,          -- NULL: background work for no organisation
            acting_user_id bigint,           -- NULL: work no person started (e.g. re-embedding)
            provider text NOT NULL,
            base_url text NOT NULL,
            model text NOT NULL,
            purpose text NOT NULL,
            record_display_ids text[] NOT NULL DEFAULT '{}',
            request_bytes bigint NOT NULL CHECK (request_bytes >= 0),
            response_bytes bigint NOT NULL CHECK (response_bytes >= 0),
            duration_ms integer NOT NULL CHECK (duration_ms >= 0),
            outcome text NOT NULL            -- 'ok' or the error code the call ended with
        );
        -- The listing's filters (newest first within an organisation): all, by user, by purpose, by record.
        CREATE INDEX egress_ledger_org_idx ON egress_ledger (organisation_id, id DESC);
        CREATE INDEX egress_ledger_org_user_idx ON egress_ledger (organisation_id, acting_user_id, id DESC);
        CREATE INDEX egress_ledger_org_purpose_idx ON egress_ledger (organisation_id, purpose, id DESC);
        CREATE INDEX egress_ledger_records_idx ON egress_ledger USING gin (record_display_ids);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE egress_ledger")
