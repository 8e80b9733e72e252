"""The escalations' reminder: a periodic job on the app's scheduler (contract §10).

Every run reads whether an escalation waits for its reminder (a read beside the writes) and
only then writes: the reminders taken by a conditional update (`escalations.remind`), so two
replicas running it at once send each reminder once. Their alerts are armed like an event's
messages."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from service.clock import Clock
from service.config import Settings
from service.conversations import escalations
from service.storage.transactions import Transactions

log = logging.getLogger("aftercare.escalations")


class Reminders:
    """Alerts the on-call numbers once more for escalations nobody acknowledged in time."""

    def __init__(
        self,
        *,
        settings: Settings,
        transactions: Transactions,
        clock: Clock,
        arm: Callable[[Iterable[datetime]], object],
    ) -> None:
        self.settings = settings
        self.transactions = transactions
        self.clock = clock
        self.arm = arm

    async def run(self) -> None:
        """One pass: remind what is due, arm the alerts."""
        now = self.clock.now()
        if not await self.transactions.read(
            lambda s: escalations.reminder_due(s, self.settings, now=now)
        ):
            return
        due = await self.transactions.write(
            lambda s: escalations.remind(s, self.settings, now=self.clock.now())
        )
        if due:
            log.info("escalation reminders", extra={"alerts": len(due)})
            self.arm(due)
