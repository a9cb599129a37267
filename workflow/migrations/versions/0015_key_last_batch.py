"""A passkey's last batch: the challenge of the bulk approval its last assertion signed.

One assertion signs a whole batch of approvals, each committed in its own transaction with the
same counter. A repeat of the counter is accepted only for the batch that counter was spent on,
as the verifier does (expense_audit.webauthn.SignCounters); before, any signature claiming a
batch could repeat the last counter, so a cloned authenticator could sign without raising it.

Revision ID: 0015
Revises: 0012
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("signing_keys", sa.Column("last_batch", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("signing_keys", "last_batch")
