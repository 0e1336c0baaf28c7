"""Single sign-on (issue 15): provider identities linked to accounts, the roles organisation rules granted,
and the ID token of each single sign-on session.

Revision ID: 0023_oidc_identities
Revises: 0017_agent_run_events

- ``oidc_identities``: an account is linked to a provider identity by (issuer, subject) only (SPEC §1); one
  identity names one account, an account may have several identities.
- ``oidc_role_grants``: which membership role an ``auth.oidc.organisations`` rule granted, and the role it
  replaced (NULL: the rule created the membership), so the next login can take back exactly what the rule
  gave when the person leaves the provider's group, and never a role granted by hand (``tow_core.oidc``).
- ``oidc_sessions``: the ID token a session was signed in with, sent back to the provider as
  ``id_token_hint`` at logout (RP-initiated logout). Deleted with the session or the account.
"""

from alembic import op

revision = "0023_oidc_identities"
down_revision = "0017_agent_run_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE oidc_identities (
            issuer text NOT NULL,
            subject text NOT NULL,
            user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            linked_at timestamptz NOT NULL,
            last_login_at timestamptz NOT NULL,
            PRIMARY KEY (issuer, subject)
        );
        CREATE INDEX oidc_identities_user_idx ON oidc_identities (user_id);

        CREATE TABLE oidc_role_grants (
            user_id bigint NOT NULL,
            organisation_id bigint NOT NULL,
            role text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
            previous_role text CHECK (previous_role IN ('owner', 'admin', 'member')),
            PRIMARY KEY (user_id, organisation_id),
            FOREIGN KEY (organisation_id, user_id) REFERENCES memberships (organisation_id, user_id)
                ON DELETE CASCADE
        );

        CREATE TABLE oidc_sessions (
            session_token_hash text PRIMARY KEY REFERENCES sessions(token_hash) ON DELETE CASCADE,
            id_token text NOT NULL
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE oidc_sessions, oidc_role_grants, oidc_identities")
