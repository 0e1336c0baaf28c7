"""Doc revisions and tree, ticket comments, activity and links (SPEC §4).

Revision ID: 0005
Revises: 0004
"""

from alembic import op  # noqa: F401 (used once the tables are written)

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
