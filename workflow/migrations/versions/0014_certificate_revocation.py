"""A registered CA certificate can be revoked (`cert.revoke`, issue 14); a signed form records
a revocation by the CA after its signing time.

Revision ID: 0014
Revises: 0011
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0011"  # after 0011 (witness cosignatures), the head of main when this landed
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ca_certificates") as table:
        table.add_column(sa.Column("revoked_seq", sa.BigInteger(), nullable=True))
        table.add_column(sa.Column("revoked_at", sa.String(length=20), nullable=True))
        table.add_column(sa.Column("revoked_by", sa.String(length=64), nullable=True))
        table.add_column(sa.Column("revoke_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("signed_forms") as table:
        table.add_column(sa.Column("ca_revoked_at", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signed_forms") as table:
        table.drop_column("ca_revoked_at")
    with op.batch_alter_table("ca_certificates") as table:
        for column in ("revoke_reason", "revoked_by", "revoked_at", "revoked_seq"):
            table.drop_column(column)
