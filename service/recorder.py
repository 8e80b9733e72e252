"""Send outcomes written by group commit: every outcome finished while a write is under way
is written by the next one, in one transaction. A burst of sends costs a few commits, not
one per message; each caller still returns only once its outcome is durable."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from service import store
from service.clock import Clock
from service.inbound import settle_early_callbacks
from service.models import Status

BATCH = 500


@dataclass(frozen=True)
class Move:
    """One status change of a message, with what must happen alongside it."""

    message_id: str
    to: Status
    detail: str | None = None
    code: int | None = None
    values: dict[str, Any] = field(default_factory=dict)
    allowed_from: tuple[Status, ...] = (Status.SENDING,)
    provider_id: str | None = None  # a send Twilio accepted: apply its early callbacks
    opt_out: tuple[str, str] | None = None  # (clinic, phone) Twilio says unsubscribed


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
                batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
                await self._write(batch)
        finally:
            self._writing = False
            for _, done in batch + self._pending:  # left over only when cancelled mid-write
                if not done.done():
                    done.set_exception(RuntimeError("the recorder was stopped"))
            self._pending = []

    async def _write(self, batch: Sequence[tuple[Move, asyncio.Future[bool]]]) -> None:
        try:
            async with self.sessions.begin() as s:
                results = [await self._apply(s, move) for move, _ in batch]
        except Exception as exc:
            for _, done in batch:
                done.set_exception(exc)
            return
        for (_, done), moved in zip(batch, results, strict=True):
            done.set_result(moved)

    async def _apply(self, s: AsyncSession, move: Move) -> bool:
        now = self.clock.now()
        moved = await store.move(s, move.message_id, to=move.to, now=now,
                                 allowed_from=move.allowed_from, detail=move.detail,
                                 code=move.code, values=move.values)
        if moved and move.provider_id:
            await settle_early_callbacks(s, move.message_id, move.provider_id, now=now)
        if moved and move.opt_out:
            await store.opt_out(s, *move.opt_out, now=now, source="twilio-21610")
        return moved
