"""Engines and migrations.

SQLite: sync pysqlite engines (their transactions run whole on threads of their own, see
`transactions`), in WAL mode, the writer's transactions `BEGIN IMMEDIATE` from SQLAlchemy's
documented `begin` event, pysqlite's own transaction handling off. The configuration names
SQLite as `sqlite+aiosqlite:///PATH` (the contract); the engines take the pysqlite form of it.
PostgreSQL: an async asyncpg engine.

Every engine hides statement parameters (`hide_parameters`): SQLAlchemy otherwise puts them in
the text of a `DBAPIError`, and a failing INSERT of a reply would log the patient's words.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from service.storage import checkpoint

# Beside the package in a source checkout (and an editable install); in the working directory
# when the package was installed into site-packages (the container copies it to /app).
_MIGRATION_DIRS = (Path(__file__).resolve().parents[2] / "migrations", Path("migrations"))


# The one writer's page cache (SQLite's default is 2 MB): a batch of plans touches a page of
# every index for each message, and pages kept between batches need not be read again.
WRITER_CACHE_KIB = 32 * 1024
# The key of the PostgreSQL advisory lock that serialises migrations ("Aftercar" in ASCII).
# Beyond 32 bits, so no `hashtext` key of the per-sid locks (callback_rows.py) can be it.
MIGRATION_LOCK = 4712582039149437298
READERS = 2  # SQLite connections (and threads) for reads beside the writer


def migrations_dir() -> Path:
    """Where the Alembic scripts are."""
    for candidate in _MIGRATION_DIRS:
        if (candidate / "env.py").exists():
            return candidate.resolve()
    raise FileNotFoundError("no migrations/ beside the package or in the working directory")


def is_sqlite(url: str) -> bool:
    """Whether `url` names an SQLite database."""
    return url.startswith("sqlite")


def pysqlite_url(url: str) -> sa.URL:
    """The pysqlite form of an SQLite URL (`sqlite+aiosqlite:///x` or `sqlite:///x`)."""
    return make_url(url).set(drivername="sqlite")


def create_engine(url: str) -> AsyncEngine:
    """PostgreSQL's async engine (a pool shared by the writes and the reads)."""
    if is_sqlite(url):
        raise ValueError("SQLite runs on sync engines: sqlite_writer, sqlite_reader")
    return create_async_engine(
        url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True
    )


def sqlite_writer(url: str) -> sa.Engine:
    """SQLite's one writer: WAL, a busy timeout, write-locking transactions (`BEGIN
    IMMEDIATE`); one connection (SQLite has one writer anyway)."""
    memory = checkpoint.database_file(url) is None
    pool: dict[str, Any] = {} if memory else {"pool_size": 1, "max_overflow": 0}
    engine = sa.create_engine(
        pysqlite_url(url),
        # Made on the writer's thread, closed from the loop's at the end.
        connect_args={"timeout": 30, "check_same_thread": False},
        hide_parameters=True,
        **pool,
    )
    _connect(engine, *_WRITER_PRAGMAS)
    _begin(engine, "BEGIN IMMEDIATE")
    return engine


def sqlite_reader(url: str) -> sa.Engine | None:
    """Connections for reads that must not queue behind writes (counts for `/metrics`,
    readiness, the read API, the timer refill): in WAL mode a reader sees the last commit
    while the one writer works. None for an in-memory database (only the writer sees it)."""
    if checkpoint.database_file(url) is None:
        return None
    engine = sa.create_engine(
        pysqlite_url(url),
        connect_args={"timeout": 30, "check_same_thread": False},
        pool_size=READERS,
        max_overflow=0,
        hide_parameters=True,
    )
    _connect(engine, "PRAGMA busy_timeout=30000", "PRAGMA query_only=ON")
    _begin(engine, "BEGIN")  # deferred: a snapshot from the first read, no lock
    return engine


# pysqlite's own transaction handling defers BEGIN and never takes the write lock up front;
# two writers could then deadlock on upgrade. The `begin` event takes the lock at BEGIN.
_WRITER_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    # Checkpoints are `checkpoint`'s, on a thread of their own; this is a backstop.
    f"PRAGMA wal_autocheckpoint={checkpoint.BACKSTOP_PAGES}",
    "PRAGMA busy_timeout=30000",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA cache_size=-{WRITER_CACHE_KIB}",
    # Deleted and overwritten content is zeroed, in its page and on the free list, so that an
    # erasure (contract §19) leaves no older copy of a row behind. Measured on the writer: no
    # difference beyond noise in a burst of inserts, updates and deletes (docs/privacy.md).
    "PRAGMA secure_delete=ON",
)


def _connect(engine: sa.Engine, *pragmas: str) -> None:
    """Each new connection: pysqlite's transaction handling off, then `pragmas`."""

    @event.listens_for(engine, "connect")
    def _connected(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()


def _begin(engine: sa.Engine, begin: str) -> None:
    """Each transaction starts with `begin` (SQLAlchemy's documented pysqlite recipe)."""

    @event.listens_for(engine, "begin")
    def _began(conn: sa.Connection) -> None:
        conn.exec_driver_sql(begin)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Async sessions that keep loaded rows usable after commit."""
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


@contextmanager
def migration_lock(conn: sa.Connection) -> Iterator[None]:
    """Hold, on PostgreSQL, the session-level advisory lock that serialises migrations: many
    replicas migrating on start take turns, and each after the first finds the schema at head.
    SQLite needs none (one file, one replica)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
    conn.commit()  # the lock outlives the transaction; Alembic begins its own
    try:
        yield
    finally:
        conn.rollback()  # a failed migration leaves its transaction aborted
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
        conn.commit()
