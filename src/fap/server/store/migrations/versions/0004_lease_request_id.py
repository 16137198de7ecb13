"""Idempotent leases: the worker's request id of the current lease.

Expand only (a nullable column and an index): servers of the previous release ignore both.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("uploads", sa.Column("lease_request_id", sa.String(64), nullable=True))
    op.create_index("ix_uploads_lease_request_id", "uploads", ["lease_request_id"])


def downgrade() -> None:
    op.drop_index("ix_uploads_lease_request_id", table_name="uploads")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("lease_request_id")
