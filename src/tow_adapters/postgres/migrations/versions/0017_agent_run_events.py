"""What a running agent run has done so far, for its owner to follow live (issue 13 item 4, streaming):
text deltas, tool activity, restarts, the checked answer and the end (rules in ``tow_core.agent_runs``).

A run's row holds only its state; its events are many small rows written by the worker while it runs and
read by the owner's event stream (``GET .../agent-runs/{id}/events``) after a sequence number. They carry
conversation text, so they are short-lived: deleted some minutes after the run finished (housekeeping; the
answer lives in the conversation), with the conversation whose turns name the run, and with the run.
``attempt`` is the claim that wrote the event: readers show only the run's current attempt, so a worker
whose lease was taken over cannot put text in front of the owner.

Revision ID: 0017_agent_run_events
Revises: 0021_inbox
"""

from alembic import op

revision = "0017_agent_run_events"
down_revision = "0021_inbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE agent_run_events (
            seq bigserial PRIMARY KEY,
            run_id bigint NOT NULL REFERENCES agent_runs(id) ON DELETE CASCADE,
            attempt integer NOT NULL CHECK (attempt >= 1),
            kind text NOT NULL CHECK (kind IN ('activity', 'delta', 'restart', 'answer', 'done')),
            data jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(data) = 'object'),
            created_at timestamptz NOT NULL
        );
        -- Reading a run's events after a sequence number, and deleting them with the run's conversation.
        CREATE INDEX agent_run_events_run_idx ON agent_run_events (run_id, seq);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE agent_run_events")
