"""Composite indexes: budget guards sum commitments per line and state; queues list a state
oldest first.

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
    op.create_index("ix_requests_state_updated", "requests", ["state", "updated_at", "number"])


def downgrade() -> None:
    op.drop_index("ix_requests_state_updated", table_name="requests")
    op.drop_index("ix_requests_line_state", table_name="requests")
