"""Where transactions run: each one a plain function of a sync `Session`.

A store function is written once, without `await` (`def claim(s: Session, ...) -> T`), and
handed whole to `Transactions.write` or `Transactions.read`, which run it in one transaction
and return what it returned. Code that does I/O of other kinds (Twilio, the clinic's
endpoint) runs between transactions, never inside one.

Writes pass the writer gate first (`writer_gate`): `urgent=True` for a claim or a send's
outcome, else background. How the function reaches the database is this module's business
alone, through public APIs only:
- SQLite: on a sync pysqlite engine, the whole function on a thread of its own (one for the
  writer, `database.READERS` for the reads), one hop from the event loop and back per
  transaction (`loop.run_in_executor`);
- PostgreSQL: on the async engine, through the async session's `run_sync`, in a task of its
  own so that no caller's cancellation cuts a statement off.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection as Connection  # a transaction's connection, by its name here
from sqlalchemy import orm
from sqlalchemy.exc import IntegrityError as IntegrityError  # a unique key met by a write
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Session as Session  # the layers above name a transaction by it

from service.storage import checkpoint, database
from service.storage.writer_gate import WriterGate
from service.storage.writer_lock import WriterLock

T = TypeVar("T")
Work = Callable[[Session], T]
CLOSE_TIMEOUT = 10.0  # s a transaction left running by its caller may take to end at close


class _Runner(Protocol):
    engine: sa.Engine  # as SQLAlchemy's events see it

    async def run(self, work: Work[T], *, write: bool) -> T: ...

    async def close(self) -> None: ...


class _OnThreads:
    """Runs a function whole on a sync engine's session, on this runner's own threads."""

    def __init__(
        self, engine: sa.Engine, *, threads: int, name: str, lock: WriterLock | None = None
    ) -> None:
        self.engine = engine
        self._sessions = orm.sessionmaker(engine, class_=Session, expire_on_commit=False)
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._lock = lock  # the writer's, across processes (writer_lock)

    def _held(self) -> contextlib.AbstractContextManager[None]:
        return self._lock.held() if self._lock is not None else contextlib.nullcontext()

    async def run(self, work: Work[T], *, write: bool) -> T:
        done = asyncio.get_running_loop().run_in_executor(self._threads, self._run, work, write)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # A thread cannot be stopped: the caller gives up once the transaction has ended,
            # so that it holds the writer gate for as long as the writer is busy with it.
            await asyncio.wait({done})
            raise

    def _run(self, work: Work[T], write: bool) -> T:
        with self._sessions() as s:
            if not write:
                return work(s)  # the reader's deferred BEGIN, rolled back when it closes
            with self._held(), s.begin():
                return work(s)

    async def on_connection(self, work: Callable[[Any], T]) -> T:
        """Run `work` on a thread of this runner with its DBAPI connection, outside any
        transaction (an SQLite checkpoint cannot run inside one)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._raw, work)

    def _raw(self, work: Callable[[Any], T]) -> T:
        connection = self.engine.raw_connection()
        try:
            with self._held():
                return work(connection.driver_connection)
        finally:
            connection.close()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._threads, self.engine.dispose)
        self._threads.shutdown()
        if self._lock is not None:
            self._lock.close()


class _OnLoop:
    """Runs a function on an async engine's session, through its public `run_sync`.

    Each transaction runs in a task of its own: a caller that gives up (a timeout, a
    shutdown) leaves it to end by itself instead of cancelling it in the middle of a
    statement, which breaks asyncpg's connection and can leave the task pending for good
    (MagicStack/asyncpg#873)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self._async_engine = engine
        self._sessions = database.session_factory(engine)
        self._running: set[asyncio.Task[Any]] = set()

    async def run(self, work: Work[T], *, write: bool) -> T:
        task = asyncio.ensure_future(self._transaction(work, write))
        self._running.add(task)
        task.add_done_callback(self._ended)
        return await asyncio.shield(task)

    async def _transaction(self, work: Work[T], write: bool) -> T:
        if write:
            async with self._sessions.begin() as s:
                return await s.run_sync(_with_sqlmodel, work)
        async with self._sessions() as s:
            return await s.run_sync(_with_sqlmodel, work)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that gave up has no use for it

    async def close(self) -> None:
        if self._running:  # those whose callers gave up: let them end, for a while
            await asyncio.wait(set(self._running), timeout=CLOSE_TIMEOUT)
        await self._async_engine.dispose()


class Transactions:
    """Runs store functions in transactions: writes through the gate, reads beside them."""

    def __init__(self, *, writer: _Runner, reader: _Runner, gate: WriterGate) -> None:
        self._writer = writer
        self._reader = reader
        self.gate = gate

    @classmethod
    def open(cls, url: str) -> Transactions:
        """Transactions on the database of `url`: on SQLite one writer, readers beside it."""
        if not database.is_sqlite(url):
            pooled = _OnLoop(database.create_engine(url))
            return cls(writer=pooled, reader=pooled, gate=WriterGate(exclusive=False))
        file = checkpoint.database_file(url)
        writer = _OnThreads(
            database.sqlite_writer(url),
            threads=1,
            name="sqlite-writer",
            lock=None if file is None else WriterLock(file),
        )
        engine = database.sqlite_reader(url)
        reader = (
            writer
            if engine is None
            else _OnThreads(engine, threads=database.READERS, name="sqlite-reader")
        )
        return cls(writer=writer, reader=reader, gate=WriterGate(exclusive=True))

    @property
    def dialect(self) -> str:
        """The database's kind: `sqlite` or `postgresql`."""
        return self._writer.engine.dialect.name

    @property
    def engine(self) -> sa.Engine:
        """The writer's engine as SQLAlchemy's events see it (for tests and benchmarks)."""
        return self._writer.engine

    async def write(self, work: Work[T], *, urgent: bool = False) -> T:
        """Run `work` in a write transaction (committed when it returns, rolled back when it
        raises) once the gate admits it; its result."""
        turn = self.gate.urgent() if urgent else self.gate.background()
        async with turn:
            return await self._writer.run(work, write=True)

    async def purge_log(self) -> bool:
        """SQLite: the write-ahead log copied into the database file and truncated, by the
        writer in its turn (`checkpoint.truncate`); whether it was. PostgreSQL: nothing to do
        here (its WAL and dead rows are the operator's, docs/privacy.md): True."""
        if not isinstance(self._writer, _OnThreads):
            return True
        async with self.gate.background():
            return await self._writer.on_connection(checkpoint.truncate)

    async def read(self, work: Work[T]) -> T:
        """Run `work` on the reader (a snapshot beside the writer on SQLite); its result."""
        return await self._reader.run(work, write=False)

    async def close(self) -> None:
        """Release the engines (after the last transaction)."""
        if self._reader is not self._writer:
            await self._reader.close()
        await self._writer.close()


def _with_sqlmodel(sync: orm.Session, work: Work[T]) -> T:
    """`work` on the async session's own sync session (SQLModel's class, by its
    `sync_session_class`)."""
    assert isinstance(sync, Session)
    return work(sync)
