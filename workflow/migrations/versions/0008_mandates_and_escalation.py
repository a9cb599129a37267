"""Mandates (KT. / TUQ.) granted in the log; reminder counts and escalation.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"  # after 0006 (drafts.client_id, issue 17)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mandates",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("delegator", sa.String(length=64), sa.ForeignKey("users.login"), nullable=False),
        sa.Column("delegate", sa.String(length=64), sa.ForeignKey("users.login"), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("valid_from", sa.String(length=10), nullable=False),
        sa.Column("valid_to", sa.String(length=10), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("max_amount_vnd", sa.BigInteger(), nullable=True),
        sa.Column("revoked_seq", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_mandates_delegate", "mandates", ["delegate"])
    with op.batch_alter_table("reminders") as batch:
        batch.add_column(sa.Column("count", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("escalated_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reminders") as batch:
        batch.drop_column("escalated_at")
        batch.drop_column("count")
    op.drop_index("ix_mandates_delegate", table_name="mandates")
    op.drop_table("mandates")
