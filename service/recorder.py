"""Send outcomes written by group commit: every outcome finished while a write is under way
is written by the next one, in one transaction. A burst of sends costs a few commits, not
one per message; each caller still returns only once its outcome is durable."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from service import store
from service.clock import Clock
from service.group_commit import GroupCommit
from service.inbound import settle_early_callbacks
from service.store import Move

__all__ = ["Move", "Recorder"]

BATCH = 500


class Recorder:
    """Writes `Move`s by group commit (one move per message in a batch)."""

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock
        self._group: GroupCommit[Move, bool] = GroupCommit(
            self._write, batch=BATCH, keys=lambda move: (move.message_id,))

    async def record(self, move: Move) -> bool:
        """Write `move` (with whatever else is pending); whether the message moved."""
        return await self._group.submit(move)

    async def _write(self, moves: Sequence[Move]) -> list[bool]:
        async with self.sessions.begin() as s:
            return await self._apply(s, moves)

    async def _apply(self, s: AsyncSession, moves: Sequence[Move]) -> list[bool]:
        now = self.clock.now()
        moved = await store.move_many(await s.connection(), moves, now=now)
        done = [move for move, ok in zip(moves, moved.applied, strict=True) if ok]
        if moved.callbacks:
            await settle_early_callbacks(
                s, {m.provider_id: m.message_id for m in done if m.provider_id}, now=now)
        for move in done:
            if move.opt_out:
                await store.opt_out(s, *move.opt_out, now=now, source="twilio-21610")
        return moved.applied
