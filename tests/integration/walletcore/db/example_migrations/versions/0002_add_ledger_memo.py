"""add a memo, unique per account, to ledger entries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:30:02.118310+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite can add a unique constraint only by rebuilding the table.
    with op.batch_alter_table("ledger_entries") as batch_op:
        batch_op.add_column(sa.Column("memo", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_ledger_entries_account_id_memo"), ["account_id", "memo"]
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_ledger_entries_account_id_memo"), type_="unique")
        batch_op.drop_column("memo")
