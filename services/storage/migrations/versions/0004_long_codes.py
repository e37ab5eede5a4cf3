"""Provider codes up to ``CODE_LENGTH`` (255) characters in usage records and budgets.

Huawei's ``error_code`` and JD's ``status`` are free text: a code over the former 32
characters made PostgreSQL refuse the commit and left the reservation hanging until its
expiry, where SQLite kept it silently.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column): every provider code the books keep.
_CODES = (
    ("usage", "code"),
    ("provider_budgets", "spent_code"),
    ("provider_budgets", "backoff_code"),
)


def upgrade() -> None:
    # Widening a varchar is in place on PostgreSQL; SQLite copies the table (batch mode).
    for table, column in _CODES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.String(255), existing_type=sa.String(32))


def downgrade() -> None:
    # Codes longer than 32 characters are cut to fit the narrower column again.
    for table, column in _CODES:
        op.execute(
            sa.text(
                f"UPDATE {table} SET {column} = substr({column}, 1, 32) WHERE length({column}) > 32"
            )
        )
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.String(32), existing_type=sa.String(255))
