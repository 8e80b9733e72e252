"""Pruning beside the writer: deletes in small batches, each its own short transaction.

`in_batches` is the loop every pruner shares (`[retention]`'s here, the outbox's
`keep_delivered` in service.notifications.retention): a batch is a background write, so the
writer gate lets every claim and send outcome waiting go first, and other background writes
(events, callbacks, replies) take their turns between two batches; the loop ends when a
batch comes back short.

`Pruner` is `[retention]`'s periodic job (service.web.app runs it hourly on every replica,
like the outbox's): each rule of `storage.retention.RULES` against its period, in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlmodel import Session

from service.clock import Clock
from service.config import RetentionSettings
from service.observability.metrics import Metrics
from service.storage.retention import RULES, Rule
from service.storage.transactions import Transactions

log = logging.getLogger("aftercare.retention")
BATCH = 200  # rows a transaction: ~6 ms of the SQLite writer for messages (docs/retention.md)
EVERY_SECONDS = 3600.0  # how often the job runs
MAX_REST = 1.0  # s between two batches at most


async def in_batches(
    transactions: Transactions, work: Callable[[Session, int], int], *, batch: int
) -> int:
    """Run `work(session, batch)` (a delete of at most `batch` rows that says how many it
    deleted) in one background transaction after another, resting between two, until a batch
    is short; the total."""
    pruned = 0
    while True:
        started = time.monotonic()
        deleted = await transactions.write(lambda s: work(s, batch))
        pruned += deleted
        if deleted < batch:
            return pruned
        # Rest as long as the batch took, its wait for the writer included: the pruner holds
        # at most half the writer's time, and less the busier the writer is.
        await asyncio.sleep(min(time.monotonic() - started, MAX_REST))


class Pruner:
    """Deletes what `[retention]` no longer keeps, table by table, a batch at a time."""

    def __init__(
        self,
        *,
        retention: RetentionSettings,
        transactions: Transactions,
        clock: Clock,
        metrics: Metrics | None = None,
        batch: int = BATCH,
        rules: Sequence[Rule] = RULES,
    ) -> None:
        self.retention = retention
        self.transactions = transactions
        self.clock = clock
        self.metrics = metrics
        self.batch = batch
        self.rules = rules

    async def run(self) -> None:
        """One pass over every rule (the periodic job)."""
        await self.prune()

    async def prune(self) -> dict[str, int]:
        """One pass over every rule; the rows deleted by table (logged: counts only)."""
        now = self.clock.now()
        pruned: dict[str, int] = {}
        for rule in self.rules:
            count = await self._prune(rule, before=now - getattr(self.retention, rule.period))
            if count:
                pruned[rule.name] = pruned.get(rule.name, 0) + count
        if pruned:
            log.info("retention pruned", extra={"pruned": pruned})
        return pruned

    async def _prune(self, rule: Rule, *, before: datetime) -> int:
        count = await in_batches(
            self.transactions,
            lambda s, limit: rule.prune(s, before=before, limit=limit),
            batch=self.batch,
        )
        if count and self.metrics is not None:
            self.metrics.pruned.labels(table=rule.name).inc(count)
        return count
