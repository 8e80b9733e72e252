"""Send outcomes written by group commit: every outcome finished while a write is under way
is written by the next one, in one transaction. A burst of sends costs a few commits, not
one per message; each caller still returns only once its outcome is durable."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from functools import partial

from sqlalchemy import Connection
from sqlmodel import Session

from service.clock import Clock
from service.config import Settings
from service.delivery import callbacks
from service.observability.supervision import Supervisor
from service.storage import notices, store
from service.storage.group_commit import GroupCommit
from service.storage.moves import Move, move_many
from service.storage.transactions import Transactions

__all__ = ["Move", "Recorder"]

BATCH = 500


class Recorder:
    """Writes `Move`s by group commit (one move per message in a batch)."""

    def __init__(
        self,
        *,
        settings: Settings,
        transactions: Transactions,
        clock: Clock,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.settings = settings
        self.audience = notices.Audience(settings)  # who hears of failures (SPEC §11)
        self.transactions = transactions
        self.clock = clock
        self._group: GroupCommit[Move, bool] = GroupCommit(
            self._write,
            batch=BATCH,
            keys=lambda move: (move.message_id, *(m.message_id for m in move.also)),
            spawn=partial(supervisor.spawn, task="recorder") if supervisor else asyncio.create_task,
        )

    async def record(self, move: Move) -> bool:
        """Write `move` (with whatever else is pending); whether the message moved."""
        return await self._group.submit(move)

    @property
    def waiting(self) -> int:
        """Outcomes waiting for the next write."""
        return self._group.waiting

    async def _write(self, moves: Sequence[Move]) -> list[bool]:
        return await self.transactions.write(lambda s: self._apply(s, moves), urgent=True)

    def _apply(self, s: Session, moves: Sequence[Move]) -> list[bool]:
        now = self.clock.now()
        conn = s.connection()
        # Before the rows: a callback batch for these sids waits for this one (callbacks).
        callbacks.lock_sids(conn, [m.provider_id for m in moves if m.provider_id])
        # A merged text's parts (`Move.also`) move with their lead, each by its own status.
        every = [*moves, *(part for m in moves for part in m.also)]
        moved = move_many(conn, every, now=now)
        done = [move for move, ok in zip(every, moved.applied, strict=True) if ok]
        if moved.callbacks:
            callbacks.settle(conn, [m.provider_id for m in done if m.provider_id], now=now)
        for move in done:
            if move.opt_out:
                store.opt_out(s, *move.opt_out, now=now, source="twilio-21610")
                clinic_id, phone = move.opt_out
                notices.opted_out(conn, self.settings, clinic_id=clinic_id, phone=phone, now=now)
        self._notify(conn, done, settled=moved.callbacks, now=now)
        return moved.applied[: len(moves)]

    def _notify(
        self, conn: Connection, done: Sequence[Move], *, settled: bool, now: datetime
    ) -> None:
        """The notifications of the messages that moved to a status a clinic listens for:
        failed or expired, or (callbacks kept for an accepted send applied) beyond sent."""
        if not self.audience.statuses:
            return
        # A merged text's parts (`Move.also`) move with the callbacks of their lead's sid.
        parts = {p.message_id for m in done if m.provider_id for p in m.also} if settled else set()
        ids = [
            m.message_id
            for m in done
            if m.to in self.audience.statuses
            or (settled and (m.provider_id or m.message_id in parts))
        ]
        if ids:
            notices.messages_changed(conn, self.settings, self.audience, ids=ids, now=now)
