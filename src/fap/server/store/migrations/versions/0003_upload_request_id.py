"""Idempotent upload creation: the client's request id, unique per user.

Expand only (a nullable column and an index): servers of the previous release ignore both.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("uploads", sa.Column("request_id", sa.String(64), nullable=True))
    op.create_index(
        "ix_uploads_user_id_request_id", "uploads", ["user_id", "request_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_uploads_user_id_request_id", table_name="uploads")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("request_id")
