"""The district's own tables (PostgreSQL schema ``district``): the schools, district accounts, grants.

Nothing of a school lives here: each school's log, users and requests are in its own schema.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DISTRICT_SCHEMA = "district"
# The two district roles (issue 16): both see their granted schools, read-only.
DISTRICT_ROLES = ("district_inspector", "district_finance")


class DistrictBase(DeclarativeBase):
    """Tables of the district schema (migrated by workflow/district_migrations)."""


class SchoolRecord(DistrictBase):
    """A school of the deployment: where its tables, key and definitions are."""

    __tablename__ = "schools"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(200), unique=True)
    schema_name: Mapped[str] = mapped_column(String(63), unique=True)
    keys_dir: Mapped[str] = mapped_column(String(500))
    definitions_dir: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class DistrictUser(DistrictBase):
    """A district account: an inspector or a finance officer of the district office."""

    __tablename__ = "district_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # Sessions carry the epoch they were opened in; signing out moves it on, which ends every
    # session of the account on the server (cookies are only signed, not stored).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Grant(DistrictBase):
    """A district account may see this school (read-only)."""

    __tablename__ = "grants"

    login: Mapped[str] = mapped_column(
        String(64), ForeignKey("district_users.login"), primary_key=True
    )
    school_code: Mapped[str] = mapped_column(
        String(32), ForeignKey("schools.code"), primary_key=True
    )
    granted_at: Mapped[datetime] = mapped_column(DateTime)


class DistrictLoginAttempt(DistrictBase):
    """One district sign-in try: the limits hold across workers and nodes, as a school's do."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_district_login_attempts_login_at", "login", "at"),
        Index("ix_district_login_attempts_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    login: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(45))
    succeeded: Mapped[bool] = mapped_column(Boolean)
