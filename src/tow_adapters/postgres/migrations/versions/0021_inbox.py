"""The inbox (issue 14 item 3): a person dismisses a failed agent run of theirs, and the inbox finds open
chat actions without reading every turn.

Revision ID: 0021_inbox
Revises: 0019_snapshot_sources

``agent_runs.dismissed_at``: a failed run stays in its owner's inbox until they dismiss it. No existing
column could say so — ``cancel_requested`` means something else, and deleting the run would take it out of
the run listing and the owners/admins' metadata — so this one column records it; only a failed run can be
dismissed. The partial index serves the inbox's list and count of one owner's failed runs not dismissed.

``conversation_turns_open_actions``: a partial index on the turns holding a pending action nobody applied
(``tool_activity`` entries whose ``pending_action.applied`` is null). The inbox and the navigation's count
read only those turns, so the count costs the same with ten turns or a hundred thousand.
"""

from alembic import op

revision = "0021_inbox"
down_revision = "0019_snapshot_sources"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE agent_runs ADD COLUMN dismissed_at timestamptz,
            ADD CONSTRAINT agent_runs_dismissed_failed CHECK (dismissed_at IS NULL OR status = 'failed');
        CREATE INDEX agent_runs_failed_open_idx ON agent_runs (organisation_id, owner_id, id DESC)
            WHERE status = 'failed' AND dismissed_at IS NULL;
        CREATE INDEX conversation_turns_open_actions ON conversation_turns (conversation_id)
            WHERE jsonb_path_exists(tool_activity, '$[*].pending_action ? (@.applied == null)');
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX conversation_turns_open_actions;
        DROP INDEX agent_runs_failed_open_idx;
        ALTER TABLE agent_runs DROP CONSTRAINT agent_runs_dismissed_failed, DROP COLUMN dismissed_at;
        """
    )
