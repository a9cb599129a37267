"""Composite index for the budget guards: commitments are summed per line and state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_requests_line_state", "requests", ["line", "state"])


def downgrade() -> None:
    op.drop_index("ix_requests_line_state", table_name="requests")
