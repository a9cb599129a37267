"""Drafts made on a phone while offline carry the phone's id for them (idempotent sync).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("drafts") as batch:
        batch.add_column(sa.Column("client_id", sa.String(length=36), nullable=True))
        batch.create_unique_constraint("uq_drafts_owner_client_id", ["owner", "client_id"])


def downgrade() -> None:
    with op.batch_alter_table("drafts") as batch:
        batch.drop_constraint("uq_drafts_owner_client_id", type_="unique")
        batch.drop_column("client_id")
