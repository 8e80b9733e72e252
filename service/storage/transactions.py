"""Where transactions run: each one a plain function of a sync `Session`.

A store function is written once, without `await` (`def claim(s: Session, ...) -> T`), and
handed whole to `Transactions.write` or `Transactions.read`, which run it in one transaction
and return what it returned. Code that does I/O of other kinds (Twilio, the clinic's
endpoint) runs between transactions, never inside one.

Writes pass the writer gate first (`writer_gate`): `urgent=True` for a claim or a send's
outcome, else background. How the function reaches the database is this module's business
alone: today through the async session's public `run_sync`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Session

from service.storage import database
from service.storage.writer_gate import WriterGate

T = TypeVar("T")
Work = Callable[[Session], T]


class _OnLoop:
    """Runs a function on an async engine's session, through its public `run_sync`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = database.session_factory(engine)

    async def run(self, work: Work[T], *, write: bool) -> T:
        if write:
            async with self.sessions.begin() as s:
                return await s.run_sync(_with_sqlmodel, work)
        async with self.sessions() as s:
            return await s.run_sync(_with_sqlmodel, work)

    async def close(self) -> None:
        await self.engine.dispose()


class Transactions:
    """Runs store functions in transactions: writes through the gate, reads beside them."""

    def __init__(self, *, writer: _OnLoop, reader: _OnLoop, gate: WriterGate) -> None:
        self._writer = writer
        self._reader = reader
        self.gate = gate

    @classmethod
    def open(cls, url: str) -> Transactions:
        """Transactions on the database of `url` (SQLite: one writer, readers beside it)."""
        engine = database.create_engine(url)
        reader = database.create_reader(url, engine)
        writes = _OnLoop(engine)
        reads = writes if reader is engine else _OnLoop(reader)
        return cls(writer=writes, reader=reads, gate=WriterGate.for_engine(engine))

    @property
    def dialect(self) -> str:
        """The database's kind: `sqlite` or `postgresql`."""
        return self._writer.engine.dialect.name

    @property
    def engine(self) -> sa.Engine:
        """The writer's engine as SQLAlchemy's events see it (for tests and benchmarks)."""
        return self._writer.engine.sync_engine

    async def write(self, work: Work[T], *, urgent: bool = False) -> T:
        """Run `work` in a write transaction (committed when it returns, rolled back when it
        raises) once the gate admits it; its result."""
        turn = self.gate.urgent() if urgent else self.gate.background()
        async with turn:
            return await self._writer.run(work, write=True)

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
