"""A record of each live verification of the log (time, events verified, result).

Revision ID: 0012
Revises: 0014
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0014"  # after 0014 (certificate revocation), the head of main when this landed
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verifications",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("origin", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("problems", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
    )
    op.create_index("ix_verifications_origin_at", "verifications", ["origin", "at"])


def downgrade() -> None:
    op.drop_index("ix_verifications_origin_at", table_name="verifications")
    op.drop_table("verifications")
