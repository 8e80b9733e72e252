"""Engines and migrations. SQLite runs in WAL mode with `BEGIN IMMEDIATE` transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel.ext.asyncio.session import AsyncSession

from service.storage import checkpoint, sqlite_driver

# Beside the package in a source checkout (and an editable install); in the working directory
# when the package was installed into site-packages (the container copies it to /app).
_MIGRATION_DIRS = (Path(__file__).resolve().parents[2] / "migrations", Path("migrations"))


# The one writer's page cache (SQLite's default is 2 MB): a batch of plans touches a page of
# every index for each message, and pages kept between batches need not be read again.
WRITER_CACHE_KIB = 32 * 1024
# The key of the PostgreSQL advisory lock that serialises migrations ("Aftercar" in ASCII).
# Beyond 32 bits, so no `hashtext` key of the per-sid locks (callbacks.py) can be it.
MIGRATION_LOCK = 4712582039149437298


def migrations_dir() -> Path:
    """Where the Alembic scripts are."""
    for candidate in _MIGRATION_DIRS:
        if (candidate / "env.py").exists():
            return candidate.resolve()
    raise FileNotFoundError("no migrations/ beside the package or in the working directory")


def is_sqlite(url: str) -> bool:
    """Whether `url` names an SQLite database."""
    return url.startswith("sqlite")


def create_engine(url: str) -> AsyncEngine:
    """An async engine; for SQLite, WAL, a busy timeout and write-locking transactions."""
    if not is_sqlite(url):
        return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    # One connection: SQLite has one writer anyway, and writers queueing for the pool (FIFO,
    # no sleeping) beat writers polling SQLite's busy handler, which backs off up to 100 ms.
    engine = create_async_engine(
        url,
        connect_args={"timeout": 30},
        pool_size=1,
        max_overflow=0,
        pool_timeout=60,
        module=sqlite_driver.dbapi(),
    )
    _tune_sqlite(engine)
    return engine


def create_reader(url: str, writer: AsyncEngine) -> AsyncEngine:
    """An engine for reads that must not queue behind writes (counts for `/metrics`,
    readiness, the read API, the timer refill). On SQLite, connections of their own: in WAL
    mode a reader sees the last commit while the one writer works. Elsewhere, `writer`."""
    if checkpoint.database_file(url) is None:  # PostgreSQL, or SQLite in memory
        return writer
    engine = create_async_engine(
        url,
        connect_args={"timeout": 30},
        pool_size=2,
        max_overflow=2,
        pool_timeout=60,
        module=sqlite_driver.dbapi(),
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        # Deferred: a snapshot from the first read, no lock.
        sqlite_driver.begin_with_next_statement(conn.connection.dbapi_connection, "BEGIN")

    return engine


def _tune_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling defers BEGIN and never takes the write lock up
    # front; two writers could then deadlock on upgrade. Take the lock at BEGIN instead.
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints are `checkpoint`'s, on a thread of their own; this is a backstop.
        cursor.execute(f"PRAGMA wal_autocheckpoint={checkpoint.BACKSTOP_PAGES}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        # Taken with the transaction's first statement, in its trip to SQLite's thread.
        sqlite_driver.begin_with_next_statement(conn.connection.dbapi_connection, "BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded rows usable after commit."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """An Alembic config for `url` that needs no alembic.ini."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def migrate(url: str) -> None:
    """Apply every migration up to head. Call outside a running event loop."""
    command.upgrade(alembic_config(url), "head")


@asynccontextmanager
async def migration_lock(conn: AsyncConnection) -> AsyncIterator[None]:
    """Hold, on PostgreSQL, the session-level advisory lock that serialises migrations: many
    replicas migrating on start take turns, and each after the first finds the schema at head.
    SQLite needs none (one file, one replica)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
    await conn.commit()  # the lock outlives the transaction; Alembic begins its own
    try:
        yield
    finally:
        await conn.rollback()  # a failed migration leaves its transaction aborted
        await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
        await conn.commit()
