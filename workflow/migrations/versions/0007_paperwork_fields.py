"""The accountant's paperwork (issue 13): payee, tax code, bank and invoice on drafts and requests.

Request rows are a projection of the log: events written before this revision lack the fields,
so the new columns start empty and stay empty for those requests.

Revision ID: 0007
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0008"  # after 0008 (mandates, escalation): the ids were handed out in advance
branch_labels = None
depends_on = None

COLUMNS = (
    ("payee", 200),
    ("payee_kind", 16),
    ("tax_code", 14),
    ("bank_account", 30),
    ("bank", 120),
    ("invoice_number", 20),
    ("invoice_series", 12),
    ("invoice_date", 10),
)


def upgrade() -> None:
    for table in ("drafts", "requests"):
        with op.batch_alter_table(table) as batch:
            for name, size in COLUMNS:
                batch.add_column(sa.Column(name, sa.String(size), nullable=True))


def downgrade() -> None:
    for table in ("requests", "drafts"):
        with op.batch_alter_table(table) as batch:
            for name, _size in reversed(COLUMNS):
                batch.drop_column(name)
