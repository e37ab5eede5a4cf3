"""Indexes for /stats (usage by time), /forget (usage by user) and the expiry sweep.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_usage_at", "usage", ["at"])
    op.create_index("ix_usage_user_id", "usage", ["user_id"])
    op.create_index("ix_reservations_state_expires_at", "reservations", ["state", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_reservations_state_expires_at", table_name="reservations")
    op.drop_index("ix_usage_user_id", table_name="usage")
    op.drop_index("ix_usage_at", table_name="usage")
