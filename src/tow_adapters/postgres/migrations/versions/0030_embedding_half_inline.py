"""Each chunk's vector also as half precision, stored in the row itself (issue 16: the exact scan).

Revision ID: 0030_embedding_half_inline
Revises: 0029_embedding_chunk_scope

The exact scan (``PgSemanticIndex``, below the threshold) reads every readable chunk's vector. A 1,536-dim
``vector`` is 6 KB: PostgreSQL moves it out of line into the TOAST table, and reading it back costs a TOAST
index lookup and three or four TOAST tuples per chunk — about 8 µs per chunk at 1M chunks, nearly all of the
scan. ``embedding_half`` is the same vector as ``halfvec`` (3 KB at 1,536 dims), ``STORAGE MAIN`` so it stays
in the row (it leaves it only if the row could not fit a page): the scan ranks the readable records on it and
re-ranks the nearest hundred on the full-precision vectors, about 3 µs per chunk (measured at 1M ×
1536: 1 % readable, 10,000 chunks, 94 → 31 ms p50; BENCHMARKS.md).

A generated column: the database derives it from ``embedding`` on every write, so it can never disagree.
Adding it rewrites the table and rebuilds its indexes (the HNSW indexes included): at 1M chunks about
2.5 minutes for the rewrite plus the HNSW rebuild (13 minutes on 2 cores); smaller deployments take seconds.
"""

from alembic import op

revision = "0030_embedding_half_inline"
down_revision = "0029_embedding_chunk_scope"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE embedding_chunks ADD COLUMN embedding_half halfvec STORAGE MAIN "
        "GENERATED ALWAYS AS (CAST(embedding AS halfvec)) STORED"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE embedding_chunks DROP COLUMN embedding_half")
