"""Who writes next: sends before the return path and ingest (design invariant 9).

SQLite has one writer (one pooled connection, `BEGIN IMMEDIATE`); the pool hands it out first
come, first served, so a claim arriving behind a queued callback batch and an ingest batch
would wait for both. The gate sits in front of it: a write is `urgent` (a claim, a send's
outcome) or `background` (status callbacks, replies, events), and when the writer is free an
urgent write waiting goes first. So that the return path still gets its turn during a long
burst of sends, a background write waiting goes next after `URGENT_RUN` urgent writes in a
row; each background write is kept short by its batch cap.

On PostgreSQL writes run side by side on pooled connections and touch other rows than claims
do, so the gate lets every write through at once (`exclusive=False`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

URGENT_RUN = 4


class WriterGate:
    """Admits writes to the database one at a time (exclusive) or all at once."""

    def __init__(self, *, exclusive: bool) -> None:
        self.exclusive = exclusive
        self._busy = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._background: deque[asyncio.Future[None]] = deque()
        self._run = 0  # urgent writes admitted in a row while background ones waited

    @property
    def waiting(self) -> int:
        """How many writes wait for their turn."""
        return len(self._urgent) + len(self._background)

    def urgent(self) -> AbstractAsyncContextManager[None]:
        """Hold the writer for a claim or a send's outcome (goes first)."""
        return self._hold(self._urgent)

    def background(self) -> AbstractAsyncContextManager[None]:
        """Hold the writer for a callback, reply or ingest batch (goes after urgent ones)."""
        return self._hold(self._background)

    @asynccontextmanager
    async def _hold(self, queue: deque[asyncio.Future[None]]) -> AsyncIterator[None]:
        if self.exclusive:
            await self._enter(queue)
        try:
            yield
        finally:
            if self.exclusive:
                self._leave()

    async def _enter(self, queue: deque[asyncio.Future[None]]) -> None:
        if not self._busy and not self.waiting:
            self._busy = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._leave()  # the turn was handed over as the waiter gave up: pass it on
            else:
                queue.remove(turn)
            raise

    def _leave(self) -> None:
        """Hand the writer to the next waiter (urgent first, within `URGENT_RUN`), or free it."""
        take_background = self._background and (not self._urgent or self._run >= URGENT_RUN)
        if take_background:
            self._run = 0
            self._background.popleft().set_result(None)
        elif self._urgent:
            self._run += 1 if self._background else 0
            self._urgent.popleft().set_result(None)
        else:
            self._run = 0
            self._busy = False
