"""Users, quota counters, reservations, usage records and provider budgets.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("locale", sa.String(16), nullable=True),
        sa.Column("created", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
    )
    op.create_table(
        "quota_counters",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "operation", "day", name="pk_quota_counters"),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("created", When, nullable=False),
        sa.Column("expires_at", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reservations"),
    )
    op.create_index(
        "ix_reservations_user_id_operation_state",
        "reservations",
        ["user_id", "operation", "state"],
    )
    op.create_table(
        "usage",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("code", sa.String(32), nullable=True),
        sa.Column("charged", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("at", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_usage"),
    )
    op.create_table(
        "provider_budgets",
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("remain", sa.Integer(), nullable=True),
        sa.Column("remain_times", sa.Integer(), nullable=True),
        sa.Column("resets_at", When, nullable=True),
        sa.Column("spent", sa.Boolean(), nullable=False),
        sa.Column("spent_code", sa.String(32), nullable=True),
        sa.Column("backoff_until", When, nullable=True),
        sa.Column("backoff_code", sa.String(32), nullable=True),
        sa.Column("updated", When, nullable=False),
        sa.PrimaryKeyConstraint("provider", name="pk_provider_budgets"),
    )


def downgrade() -> None:
    op.drop_table("provider_budgets")
    op.drop_table("usage")
    op.drop_index("ix_reservations_user_id_operation_state", table_name="reservations")
    op.drop_table("reservations")
    op.drop_table("quota_counters")
    op.drop_table("users")
