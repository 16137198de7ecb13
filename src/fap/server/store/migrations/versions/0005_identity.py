"""Identity and access: users of many organisations, memberships with roles, named and expiring
tokens, sign-in sessions with rotating refresh tokens, invitations, joining by email domain,
trusted issuers, plans with quotas, revocable devices, and the audit log.

Expand only. A user was one row per organisation (``users.org_id``, ``users.role``); now a user is
a person (an identity provider's issuer and subject, an email) with a membership per organisation.
Each existing user gets the membership its row described; ``users.org_id`` and ``users.role``
become nullable and are no longer read or written: a later release drops them. Servers of the
previous release read those columns only for users that existed before this migration.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orgs") as batch:
        batch.add_column(sa.Column("plan", sa.String(32), nullable=True))
        batch.add_column(sa.Column("max_bytes_per_month", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("max_concurrent_uploads", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.Float(), nullable=True))

    with op.batch_alter_table("users") as batch:
        batch.alter_column("org_id", existing_type=sa.String(32), nullable=True)
        batch.alter_column("role", existing_type=sa.String(16), nullable=True)
        batch.add_column(sa.Column("email", sa.String(320), nullable=True))
        batch.add_column(sa.Column("issuer", sa.String(500), nullable=True))
        batch.add_column(sa.Column("subject", sa.String(255), nullable=True))
        batch.create_unique_constraint("uq_users_issuer_subject", ["issuer", "subject"])
        batch.create_index("ix_users_email", ["email"])

    op.create_table(
        "memberships",
        sa.Column("org_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name="fk_memberships_org_id_orgs"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_memberships_user_id_users"),
        sa.PrimaryKeyConstraint("org_id", "user_id", name="pk_memberships"),
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    op.execute(
        "INSERT INTO memberships (org_id, user_id, role, created_at) "
        "SELECT org_id, id, role, created_at FROM users WHERE org_id IS NOT NULL"
    )

    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("org_id", existing_type=sa.String(32), nullable=True)
        batch.add_column(sa.Column("id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("name", sa.String(200), nullable=True))
        batch.add_column(sa.Column("role", sa.String(16), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("session_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("created_by", sa.String(32), nullable=True))
        batch.create_index("ix_tokens_id", ["id"], unique=True)
        batch.create_index("ix_tokens_session_id", ["session_id"])
        batch.create_index("ix_tokens_user_id", ["user_id"])
    tokens = sa.table("tokens", sa.column("hash", sa.String), sa.column("id", sa.String))
    connection = op.get_bind()
    for (token_hash,) in connection.execute(sa.select(tokens.c.hash)).all():
        connection.execute(
            tokens.update().where(tokens.c.hash == token_hash).values(id=secrets.token_hex(16))
        )

    op.create_table(
        "sessions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("revoked_reason", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_sessions_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "refresh_tokens",
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_refresh_tokens_session_id_sessions"
        ),
        sa.PrimaryKeyConstraint("hash", name="pk_refresh_tokens"),
    )
    op.create_index("ix_refresh_tokens_session_id", "refresh_tokens", ["session_id"])

    op.create_table(
        "invitations",
        sa.Column("org_id", sa.String(32), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("invited_by", sa.String(32), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name="fk_invitations_org_id_orgs"),
        sa.PrimaryKeyConstraint("org_id", "email", name="pk_invitations"),
    )
    op.create_index("ix_invitations_email", "invitations", ["email"])
    op.create_table(
        "org_domains",
        sa.Column("org_id", sa.String(32), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name="fk_org_domains_org_id_orgs"),
        sa.PrimaryKeyConstraint("org_id", "domain", name="pk_org_domains"),
    )
    op.create_index("ix_org_domains_domain", "org_domains", ["domain"])
    op.create_table(
        "org_issuers",
        sa.Column("org_id", sa.String(32), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name="fk_org_issuers_org_id_orgs"),
        sa.PrimaryKeyConstraint("org_id", "issuer", name="pk_org_issuers"),
    )

    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("revoked_at", sa.Float(), nullable=True))

    op.create_table(
        "audit_events",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("org_id", sa.String(32), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor_id", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(400), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(400), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("remote", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_org_id_at", "audit_events", ["org_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_org_id_at", table_name="audit_events")
    op.drop_table("audit_events")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("revoked_at")
    op.drop_table("org_issuers")
    op.drop_index("ix_org_domains_domain", table_name="org_domains")
    op.drop_table("org_domains")
    op.drop_index("ix_invitations_email", table_name="invitations")
    op.drop_table("invitations")
    op.drop_index("ix_refresh_tokens_session_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_index("ix_sessions_user_id", table_name="sessions")
    op.drop_table("sessions")
    op.execute("DELETE FROM tokens WHERE org_id IS NULL")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_index("ix_tokens_user_id")
        batch.drop_index("ix_tokens_session_id")
        batch.drop_index("ix_tokens_id")
        for column in (
            "created_by",
            "session_id",
            "revoked_at",
            "expires_at",
            "role",
            "name",
            "id",
        ):
            batch.drop_column(column)
        batch.alter_column("org_id", existing_type=sa.String(32), nullable=False)
    op.drop_index("ix_memberships_user_id", table_name="memberships")
    op.drop_table("memberships")
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ix_users_email")
        batch.drop_constraint("uq_users_issuer_subject", type_="unique")
        for column in ("subject", "issuer", "email"):
            batch.drop_column(column)
    with op.batch_alter_table("orgs") as batch:
        for column in ("deleted_at", "max_concurrent_uploads", "max_bytes_per_month", "plan"):
            batch.drop_column(column)
