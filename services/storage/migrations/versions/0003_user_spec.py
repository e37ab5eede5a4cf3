"""The document spec each user chose (``users.spec``), beside the chosen language.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 00:00:00
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
    # A nullable column is added in place on both backends; existing users get None
    # (the generic check). ``batch_alter_table`` keeps SQLite within what it can alter.
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("spec", sa.String(64), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by copying the table (batch mode), PostgreSQL in place.
    with op.batch_alter_table("users") as batch:
        batch.drop_column("spec")
