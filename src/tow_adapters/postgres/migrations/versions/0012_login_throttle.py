"""Sign-in throttling a stranger cannot turn into a lockout (issue 11, part 3; SPEC §3).

Revision ID: 0012_login_throttle
Revises: 0011

Throttling now counts failures per (account, client address), per address and per account, and lets an
account's recently successful addresses past the per-account limit (``tow_core.accounts``). So one
failure is one row naming both the email as typed and the address (instead of one row per subject
kind), and the last success per (user, address) is kept in ``login_successes``. The old rows are only
the last 15 minutes' failures: they are dropped, not converted.
"""

from alembic import op

revision = "0012_login_throttle"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        DROP TABLE login_failures;

        -- One row per failed sign-in: the lower-cased email as typed (an account or not) and the client
        -- address (an IPv6 client's /64). Rows older than the throttling window are deleted as new ones
        -- are written.
        CREATE TABLE login_failures (
            id bigserial PRIMARY KEY,
            email text NOT NULL,
            client_ip text NOT NULL,
            failed_at timestamptz NOT NULL
        );
        CREATE INDEX login_failures_email_idx ON login_failures (email, failed_at DESC);
        CREATE INDEX login_failures_client_ip_idx ON login_failures (client_ip, failed_at DESC);
        CREATE INDEX login_failures_failed_at_idx ON login_failures (failed_at);

        -- The last successful sign-in of a user from an address: such an address still gets in when the
        -- account's failures from everywhere reach the per-account limit. Kept 30 days.
        CREATE TABLE login_successes (
            user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            client_ip text NOT NULL,
            last_success_at timestamptz NOT NULL,
            PRIMARY KEY (user_id, client_ip)
        );
        CREATE INDEX login_successes_last_success_at_idx ON login_successes (last_success_at);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE login_successes;
        DROP TABLE login_failures;
        CREATE TABLE login_failures (
            id bigserial PRIMARY KEY,
            subject_kind text NOT NULL CHECK (subject_kind IN ('account', 'ip')),
            subject text NOT NULL,
            failed_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX login_failures_subject_idx ON login_failures (subject_kind, subject, failed_at DESC);
        """
    )
