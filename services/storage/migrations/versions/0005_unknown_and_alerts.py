"""Calls of unknown outcome in the usage records; budget alert state per provider.

``usage.unknown``: the request was sent and no outcome came back (a timeout), so the
provider may have billed it. ``provider_budgets.high_water``: the most calls known to
remain since the last top-up; ``provider_budgets.alerted``: the last alert the admins got.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 04:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage") as batch:
        batch.add_column(
            sa.Column("unknown", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("provider_budgets") as batch:
        batch.add_column(sa.Column("high_water", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("alerted", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("provider_budgets") as batch:
        batch.drop_column("alerted")
        batch.drop_column("high_water")
    with op.batch_alter_table("usage") as batch:
        batch.drop_column("unknown")
