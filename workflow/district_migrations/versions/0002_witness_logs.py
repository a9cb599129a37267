"""The district's witness: per school log, its institution key and the last checkpoint cosigned.

The same table as the single-school witness service keeps (workflow.models.WitnessLog), here in
the district schema, so the district's witness runs in the deployment's own database.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "witness_logs",
        sa.Column("origin", sa.String(length=255), primary_key=True),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("registered_at", sa.DateTime(), nullable=False),
        sa.Column("cosigned_at", sa.DateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("witness_logs")
