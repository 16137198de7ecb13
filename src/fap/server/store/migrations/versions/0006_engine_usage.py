"""What the engine used for a job: CPU seconds, peak memory and wall time of its last attempt,
as the processor measured them.

Expand only (nullable columns): servers of the previous release neither read nor write them, and
a job finished before this migration, or by a processor that reports no usage, keeps them NULL.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("engine_cpu_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("engine_peak_memory_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("engine_wall_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        for column in ("engine_wall_seconds", "engine_peak_memory_bytes", "engine_cpu_seconds"):
            batch.drop_column(column)
