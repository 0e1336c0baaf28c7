"""Memory review rules (issue 14 items 1 and 4): an organisation can require a second reviewer, a diff
an extraction run proposed names that run, and extraction runs are found by the record they read.

Revision ID: 0018_memory_review_rules
Revises: 0023_oidc_identities

- ``organisations.require_second_reviewer`` (default off): when on, nobody approves a memory diff they
  proposed or that an agent run of theirs proposed (``tow_core.memory_review``).
- ``memory_diffs.agent_run_id``: the run that proposed the diff (its ``author_id`` is the run's owner).
  ``ON DELETE SET NULL``: deleting a run's history must not delete the proposal under review.
- ``agent_runs_subject_idx``: saving a doc looks up the newest extraction run of that doc (debounce),
  by ``input->>'record_id'``, once per save.
"""

from alembic import op

revision = "0018_memory_review_rules"
down_revision = "0023_oidc_identities"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE organisations ADD COLUMN require_second_reviewer boolean NOT NULL DEFAULT false;
        ALTER TABLE memory_diffs ADD COLUMN agent_run_id bigint REFERENCES agent_runs(id) ON DELETE SET NULL;
        CREATE INDEX agent_runs_subject_idx ON agent_runs (organisation_id, kind, (input->>'record_id'), id DESC);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX agent_runs_subject_idx;
        ALTER TABLE memory_diffs DROP COLUMN agent_run_id;
        ALTER TABLE organisations DROP COLUMN require_second_reviewer;
        """
    )
