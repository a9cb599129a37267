"""Alembic environment of the district schema (schools, district accounts, grants)."""

from __future__ import annotations

from alembic import context

from workflow.district_models import DistrictBase

config = context.config


def run_migrations() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=DistrictBase.metadata,
        version_table_schema=config.attributes.get("schema"),
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
