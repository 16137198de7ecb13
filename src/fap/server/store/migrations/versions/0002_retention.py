"""Retention: when the clean-up deleted an upload's chunks, and when its result expired.

Expand only (two nullable columns, two indexes): servers of the previous release ignore them, so
old and new servers can run side by side during a rolling upgrade.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN of a nullable column needs no table copy, on SQLite or PostgreSQL.
    op.add_column("uploads", sa.Column("chunks_deleted_at", sa.Float(), nullable=True))
    op.add_column("uploads", sa.Column("expired_at", sa.Float(), nullable=True))
    op.create_index(
        "ix_uploads_chunks_deleted_at_finished_at", "uploads", ["chunks_deleted_at", "finished_at"]
    )
    op.create_index("ix_uploads_expired_at_finished_at", "uploads", ["expired_at", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_uploads_expired_at_finished_at", table_name="uploads")
    op.drop_index("ix_uploads_chunks_deleted_at_finished_at", table_name="uploads")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("expired_at")
        batch.drop_column("chunks_deleted_at")
