"""Dedup: which devices a job's result is sealed to, and an index to find a user's earlier uploads
of the same content.

Expand only (a nullable column and an index): servers of the previous release neither read nor
write the column, and leave it NULL on the jobs they lease — such a job's result answers no later
upload, which is only a file sent again rather than answered from the earlier analysis.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN of a nullable column needs no table copy, on SQLite or PostgreSQL.
    op.add_column("uploads", sa.Column("recipients_sha256", sa.String(64), nullable=True))
    op.create_index("ix_uploads_user_id_sha256", "uploads", ["user_id", "sha256"])


def downgrade() -> None:
    op.drop_index("ix_uploads_user_id_sha256", table_name="uploads")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("recipients_sha256")
