"""The district as a witness: cosignatures kept by the school, the witness's state per log.

Revision ID: 0011
Revises: 0009
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkpoint_cosignatures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("witness", sa.String(length=255), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index(
        "ix_checkpoint_cosignatures_size", "checkpoint_cosignatures", ["size"], unique=False
    )
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
    op.drop_index("ix_checkpoint_cosignatures_size", table_name="checkpoint_cosignatures")
    op.drop_table("checkpoint_cosignatures")
