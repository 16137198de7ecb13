"""Packs: many small files' chunks PUT as one object, and where in it each chunk lies.

Expand only (a new table, nullable columns, indexes): servers of the previous release never make
a pack, nor read the columns; the chunks they record keep them NULL, objects of their own.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "packs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("org_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("deleted_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name="fk_packs_org_id_orgs"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_packs_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_packs"),
    )
    op.create_index("ix_packs_deleted_at_created_at", "packs", ["deleted_at", "created_at"])
    # ADD COLUMN of a nullable column needs no table copy, on SQLite or PostgreSQL.
    op.add_column("chunks", sa.Column("pack_id", sa.String(32), nullable=True))
    op.add_column("chunks", sa.Column("pack_offset", sa.BigInteger(), nullable=True))
    op.create_index("ix_chunks_pack_id", "chunks", ["pack_id"])


def downgrade() -> None:
    op.drop_index("ix_chunks_pack_id", table_name="chunks")
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("pack_offset")
        batch.drop_column("pack_id")
    op.drop_index("ix_packs_deleted_at_created_at", table_name="packs")
    op.drop_table("packs")
