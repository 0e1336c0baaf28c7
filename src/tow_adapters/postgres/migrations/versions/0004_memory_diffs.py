"""Memory diffs: proposed changes to memory, reviewed before they apply (SPEC §4).

Revision ID: 0004
Revises: 0003
"""

from alembic import op  # noqa: F401 (used once the tables are written)

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
