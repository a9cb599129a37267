"""Running totals of what each budget line holds, filled from the existing request rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_totals",
        sa.Column("school_year", sa.String(length=9), nullable=False),
        sa.Column("line", sa.String(length=32), nullable=False),
        sa.Column("budget_year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("amount_vnd", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("school_year", "line", "budget_year"),
    )
    op.execute(
        "INSERT INTO budget_totals (school_year, line, budget_year, amount_vnd) "
        "SELECT school_year, line, budget_year, "
        "SUM(CASE WHEN state = 'paid' THEN amount_paid_vnd ELSE amount_vnd END) "
        "FROM requests WHERE state IN ('approved', 'paid') AND line IS NOT NULL "
        "GROUP BY school_year, line, budget_year"
    )


def downgrade() -> None:
    op.drop_table("budget_totals")
