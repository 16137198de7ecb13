"""Sealed results kept by the server: those that came with their jobs' completions.

Expand only (a new table): servers of the previous release never read it and store every result
in the blob store, as before; their results keep being served from there.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sealed_results",
        sa.Column("upload_id", sa.String(32), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"], ["uploads.id"], name="fk_sealed_results_upload_id_uploads"
        ),
        sa.PrimaryKeyConstraint("upload_id", name="pk_sealed_results"),
    )


def downgrade() -> None:
    op.drop_table("sealed_results")
