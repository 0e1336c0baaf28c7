"""The email outbox and password reset by email (issue 19, item 1).

Revision ID: 0024_email_outbox
Revises: 0022_personal_access_tokens

Email is queued in ``email_outbox`` in the same transaction as the change that causes it (an invite, a
password reset) and sent by workers, so a request never waits for the mail server and a committed change
never loses its email. A message is stored rendered (recipient, subject, text, HTML) until it is sent;
then only its recipient and subject are kept. ``password_reset_tokens`` keeps only the SHA-256 of each
emailed link's token; ``password_reset_attempts`` counts requests and failed uses of links per address
and per client, to throttle them.
"""

from alembic import op

revision = "0024_email_outbox"
down_revision = "0022_personal_access_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE email_outbox (
            id bigserial PRIMARY KEY,
            recipient text NOT NULL,
            subject text NOT NULL,
            text_body text NOT NULL,
            html_body text NOT NULL,
            status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sending', 'sent', 'dead')),
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL,
            lease_expires_at timestamptz,
            last_error text,
            created_at timestamptz NOT NULL,
            finished_at timestamptz
        );
        CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE status = 'queued';
        CREATE INDEX email_outbox_lease_idx ON email_outbox (lease_expires_at) WHERE status = 'sending';
        CREATE INDEX email_outbox_finished_idx ON email_outbox (status, finished_at) WHERE status IN ('sent', 'dead');

        CREATE TABLE password_reset_tokens (
            id bigserial PRIMARY KEY,
            user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            token_hash text NOT NULL UNIQUE,
            created_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL,
            used_at timestamptz
        );
        CREATE INDEX password_reset_tokens_user_idx ON password_reset_tokens (user_id) WHERE used_at IS NULL;
        CREATE INDEX password_reset_tokens_expires_idx ON password_reset_tokens (expires_at);

        -- One row per reset request (the lower-cased address asked for) or failed use of a link (email '');
        -- rows older than the throttling window are deleted as new ones are written.
        CREATE TABLE password_reset_attempts (
            id bigserial PRIMARY KEY,
            email text NOT NULL,
            client_ip text NOT NULL,
            attempted_at timestamptz NOT NULL
        );
        CREATE INDEX password_reset_attempts_email_idx ON password_reset_attempts (email, attempted_at DESC);
        CREATE INDEX password_reset_attempts_client_idx ON password_reset_attempts (client_ip, attempted_at DESC);
        CREATE INDEX password_reset_attempts_at_idx ON password_reset_attempts (attempted_at);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE password_reset_attempts; DROP TABLE password_reset_tokens; DROP TABLE email_outbox;")
