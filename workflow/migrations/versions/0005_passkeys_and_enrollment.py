"""Passkeys and server-held keys side by side; one-time enrollment codes; failed signatures.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("must_change_password", sa.Boolean(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("signing_keys") as batch:
        batch.alter_column("public_key", type_=sa.Text(), existing_type=sa.String(length=64))
        batch.alter_column("encrypted_private", nullable=True, existing_type=sa.LargeBinary())
        batch.alter_column("kdf", nullable=True, existing_type=sa.JSON())
        batch.add_column(
            sa.Column("kind", sa.String(length=16), server_default="server-held", nullable=False)
        )
        batch.add_column(
            sa.Column("method", sa.String(length=16), server_default="legacy", nullable=False)
        )
        batch.add_column(sa.Column("enrolled_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("alg", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("credential_id", sa.String(length=1400), nullable=True))
        batch.add_column(sa.Column("rp_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("origins", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("confirmed_seq", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("sign_count", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_index("ix_signing_keys_credential_id", "signing_keys", ["credential_id"])
    op.create_table(
        "enrollment_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=255), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("issued_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_enrollment_codes_login", "enrollment_codes", ["login"])
    op.create_table(
        "signing_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_signing_failures_login_at", "signing_failures", ["login", "at"])


def downgrade() -> None:
    op.drop_table("signing_failures")
    op.drop_table("enrollment_codes")
    op.drop_index("ix_signing_keys_credential_id", "signing_keys")
    with op.batch_alter_table("signing_keys") as batch:
        for column in (
            "failed_attempts",
            "sign_count",
            "confirmed_seq",
            "origins",
            "rp_id",
            "credential_id",
            "alg",
            "enrolled_by",
            "method",
            "kind",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("users") as batch:
        batch.drop_column("must_change_password")
