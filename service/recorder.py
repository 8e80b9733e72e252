"""Send outcomes written by group commit: every outcome finished while a write is under way
is written by the next one, in one transaction. A burst of sends costs a few commits, not
one per message; each caller still returns only once its outcome is durable."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from service import store
from service.clock import Clock
from service.inbound import settle_early_callbacks
from service.store import Move

__all__ = ["Move", "Recorder"]

BATCH = 500


class Recorder:
    """Writes `Move`s by group commit."""

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock
        self._pending: list[tuple[Move, asyncio.Future[bool]]] = []
        self._writing = False

    async def record(self, move: Move) -> bool:
        """Write `move` (with whatever else is pending); whether the message moved."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((move, done))
        if not self._writing:
            await self._write_pending()
        return await done

    async def _write_pending(self) -> None:
        self._writing = True
        batch: list[tuple[Move, asyncio.Future[bool]]] = []
        try:
            while self._pending:
                batch = self._take()
                await self._write(batch)
        finally:
            self._writing = False
            for _, done in batch + self._pending:  # left over only when cancelled mid-write
                if not done.done():
                    done.set_exception(RuntimeError("the recorder was stopped"))
            self._pending = []

    def _take(self) -> list[tuple[Move, asyncio.Future[bool]]]:
        """Up to BATCH pending moves, one per message (a second waits for the next write)."""
        batch: list[tuple[Move, asyncio.Future[bool]]] = []
        rest: list[tuple[Move, asyncio.Future[bool]]] = []
        seen: set[str] = set()
        for item in self._pending:
            if len(batch) < BATCH and item[0].message_id not in seen:
                seen.add(item[0].message_id)
                batch.append(item)
            else:
                rest.append(item)
        self._pending = rest
        return batch

    async def _write(self, batch: Sequence[tuple[Move, asyncio.Future[bool]]]) -> None:
        try:
            async with self.sessions.begin() as s:
                results = await self._apply(s, [move for move, _ in batch])
        except Exception as exc:
            for _, done in batch:
                done.set_exception(exc)
            return
        for (_, done), moved in zip(batch, results, strict=True):
            done.set_result(moved)

    async def _apply(self, s: AsyncSession, moves: Sequence[Move]) -> list[bool]:
        now = self.clock.now()
        moved = await store.move_many(await s.connection(), moves, now=now)
        done = [move for move, ok in zip(moves, moved, strict=True) if ok]
        await settle_early_callbacks(
            s, {m.provider_id: m.message_id for m in done if m.provider_id}, now=now)
        for move in done:
            if move.opt_out:
                await store.opt_out(s, *move.opt_out, now=now, source="twilio-21610")
        return moved
