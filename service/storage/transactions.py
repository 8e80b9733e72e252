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

from sqlalchemy import orm
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from service.storage.writer_gate import WriterGate

T = TypeVar("T")


class Transactions:
    """Runs store functions in transactions: writes through the gate, reads beside them."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
        gate: WriterGate,
    ) -> None:
        self.sessions = sessions
        self.reads = reads
        self.gate = gate

    async def write(self, work: Callable[[Session], T], *, urgent: bool = False) -> T:
        """Run `work` in a write transaction (committed when it returns, rolled back when it
        raises) once the gate admits it; its result."""
        turn = self.gate.urgent() if urgent else self.gate.background()
        async with turn, self.sessions.begin() as s:
            return await s.run_sync(_with_sqlmodel, work)

    async def read(self, work: Callable[[Session], T]) -> T:
        """Run `work` on the reader (a snapshot beside the writer on SQLite); its result."""
        async with self.reads() as s:
            return await s.run_sync(_with_sqlmodel, work)


def _with_sqlmodel(sync: orm.Session, work: Callable[[Session], T]) -> T:
    """`work` on the async session's own sync session (SQLModel's class, by its
    `sync_session_class`)."""
    assert isinstance(sync, Session)
    return work(sync)
