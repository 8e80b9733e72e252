"""Send outcomes written by group commit: every outcome finished while a write is under way
is written by the next one, in one transaction. A burst of sends costs a few commits, not
one per message; each caller still returns only once its outcome is durable."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial

from service.clock import Clock
from service.config import Settings
from service.observability.supervision import Supervisor
from service.storage import notices, outcome_rows
from service.storage.group_commit import GroupCommit
from service.storage.moves import Move
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
        self.audience = notices.Audience(settings)  # who hears of failures (contract §11)
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
        # The batch, the callbacks kept for its sids, STOPs and notifications: storage's one
        # function, as of the write's start.
        return await self.transactions.write(
            lambda s: outcome_rows.record(
                s, moves, now=self.clock.now(), settings=self.settings, audience=self.audience
            ),
            urgent=True,
        )
