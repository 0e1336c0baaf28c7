"""Conversations with the assistant and their turns (issue 13, SPEC §6 grounded chat).

Revision ID: 0015_conversations
Revises: 0014_agent_runs

A conversation belongs to its owner in one organisation; ``project_id`` NULL means "all projects", else the
project (of the same organisation: a composite key) it is scoped to. ``updated_at`` is the last activity,
which retention (``ai.chat_retention_days``) counts from; the index on it serves the purge.

A turn's lists are JSON arrays whose shape the tool loop defines (``tool_activity``, ``citations``, the
``dropped_citations`` with their reasons, ``web_sources``); ``agent_run_id`` names the run that produced an
answer, and is cleared if that run's row is ever deleted. ``position`` is unique per conversation, so two
concurrent appends cannot both take the same place.
"""

from alembic import op

revision = "0015_conversations"
down_revision = "0014_agent_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE conversations (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            organisation_id bigint NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            owner_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            project_id bigint,
            title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
            memory_extraction boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            CHECK (updated_at >= created_at),
            FOREIGN KEY (organisation_id, project_id) REFERENCES projects (organisation_id, id) ON DELETE CASCADE
        );
        CREATE INDEX conversations_of_owner ON conversations (owner_id, organisation_id, updated_at DESC, id DESC);
        CREATE INDEX conversations_last_activity ON conversations (updated_at);

        CREATE TABLE conversation_turns (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            conversation_id bigint NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            position integer NOT NULL CHECK (position >= 1),
            role text NOT NULL CHECK (role IN ('user', 'assistant')),
            text text NOT NULL CHECK (length(text) <= 200000),
            tool_activity jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(tool_activity) = 'array'),
            citations jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(citations) = 'array'),
            dropped_citations jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(dropped_citations) = 'array'),
            web_sources jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(web_sources) = 'array'),
            agent_run_id bigint REFERENCES agent_runs(id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL,
            UNIQUE (conversation_id, position)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE conversation_turns; DROP TABLE conversations;")
