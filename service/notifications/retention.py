"""The outbox's retention: a periodic job on the app's scheduler deletes what was delivered
longer ago than `[notifications] keep_delivered` (`outbox_retention`), a batch per
transaction, on every replica (each row is deleted once, whoever gets there first)."""

from __future__ import annotations

import logging

from service.clock import Clock
from service.config import Settings
from service.storage import outbox_retention
from service.storage.pruning import in_batches
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
        pruned = await in_batches(
            self.transactions,
            lambda s, limit: outbox_retention.prune_delivered(s, before=before, limit=limit),
            batch=outbox_retention.BATCH,
        )
        if pruned:
            log.info("delivered notifications pruned", extra={"count": pruned})
