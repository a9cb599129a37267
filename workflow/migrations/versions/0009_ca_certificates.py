"""CA certificates bound to people, their registration challenges, and PAdES-signed forms.

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"  # after 0007 (paperwork fields), the current head
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ca_certificates",
        sa.Column("sha256", sa.String(length=64), primary_key=True),
        sa.Column("login", sa.String(length=64), sa.ForeignKey("users.login"), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("serial", sa.String(length=80), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("not_before", sa.String(length=20), nullable=False),
        sa.Column("not_after", sa.String(length=20), nullable=False),
        sa.Column("registered_by", sa.String(length=64), nullable=False),
        sa.Column("registered_seq", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_ca_certificates_login", "ca_certificates", ["login"])
    op.create_table(
        "certificate_challenges",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False, unique=True),
        sa.Column("issued_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_certificate_challenges_login", "certificate_challenges", ["login"])
    op.create_table(
        "signed_forms",
        sa.Column("pdf_sha256", sa.String(length=64), primary_key=True),
        sa.Column("number", sa.String(length=32), sa.ForeignKey("requests.number"), nullable=False),
        sa.Column("login", sa.String(length=64), sa.ForeignKey("users.login"), nullable=False),
        sa.Column(
            "cert_sha256",
            sa.String(length=64),
            sa.ForeignKey("ca_certificates.sha256"),
            nullable=False,
        ),
        sa.Column("form_sha256", sa.String(length=64), nullable=False),
        sa.Column("signing_time", sa.String(length=20), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_signed_forms_number", "signed_forms", ["number"])


def downgrade() -> None:
    op.drop_table("signed_forms")
    op.drop_table("certificate_challenges")
    op.drop_table("ca_certificates")
