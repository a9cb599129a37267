"""District accounts' session epoch: signing out ends every session of the account on the server.

A district session cookie is only signed, not stored; it carries the epoch it was opened in, and
signing out moves the account's epoch on, so a copy of the cookie replayed later finds no one (as
a school's sessions, workflow.models.User.session_epoch).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "district_users",
        sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("district_users", "session_epoch")
