"""Alembic environment: SQLModel metadata, batch mode on SQLite; SQLite through the service's
sync writer engine, PostgreSQL through its async engine."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import service.storage.appointments
import service.storage.audit
import service.storage.conversation_tables
import service.storage.heartbeat
import service.storage.inbox_tables
import service.storage.media_tables
import service.storage.models
import service.storage.outbox
import service.storage.staff_tables
import service.storage.staff_text_requests  # noqa: F401  (and the outbox's, the console's)
from service.storage.database import create_engine, is_sqlite, migration_lock, sqlite_writer

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
    # Concurrent upgrades of one PostgreSQL database (replicas migrating on start) take turns.
    with migration_lock(connection):
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


async def _on_postgresql(url: str) -> None:
    engine = create_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or ""
    if not is_sqlite(url):
        asyncio.run(_on_postgresql(url))
        return
    engine = sqlite_writer(url)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
