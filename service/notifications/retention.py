"""The outbox's retention: a periodic job on the app's scheduler deletes what was delivered
longer ago than `[notifications] keep_delivered` (`outbox_retention`), a batch per
transaction, on every replica (each row is deleted once, whoever gets there first)."""

from __future__ import annotations

import logging

from service.clock import Clock
from service.config import Settings
from service.storage import outbox_retention
from service.storage.transactions import Transactions

log = logging.getLogger("aftercare.notifications")
EVERY_SECONDS = 3600.0  # how often the job runs


class Retention:
    """Deletes delivered notifications older than `keep_delivered`."""

    def __init__(self, *, settings: Settings, transactions: Transactions, clock: Clock) -> None:
        self.keep = settings.notifications.keep_delivered
        self.transactions = transactions
        self.clock = clock

    async def run(self) -> None:
        """One pass: batches until none is left (or a batch comes back short)."""
        before = self.clock.now() - self.keep
        pruned = 0
        while True:
            deleted = await self.transactions.write(
                lambda s: outbox_retention.prune_delivered(s, before=before)
            )
            pruned += deleted
            if deleted < outbox_retention.BATCH:
                break
        if pruned:
            log.info("delivered notifications pruned", extra={"count": pruned})
