"""Alembic environment: async engines, SQLModel metadata, batch mode on SQLite."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import service.storage.appointments  # noqa: F401  (and the appointments')
import service.storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
import service.storage.outbox  # noqa: F401  (and the outbox's)
from service.storage.database import create_engine, migration_lock

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    # Concurrent upgrades of one PostgreSQL database (replicas migrating on start) take turns.
    async with engine.connect() as connection, migration_lock(connection):
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
