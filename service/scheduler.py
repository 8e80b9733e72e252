"""APScheduler wiring: the clock that wakes the dispatcher, never the record (DESIGN inv. 2).

Only the near horizon is held as timers: an interval job loads the rows due within
`scheduler.horizon` and arms one date job per row; a sweeper reconciles expired claims.
After a crash, a restart, or on another replica, the timers are rebuilt from the rows.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from service import store
from service.clock import Clock
from service.config import SchedulerSettings

log = logging.getLogger("aftercare.scheduler")
BATCH = 5000


class Timers:
    """Arms date jobs for messages falling due soon; the database holds the truth."""

    def __init__(
        self,
        *,
        settings: SchedulerSettings,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        dispatch: Callable[[str], Awaitable[None]],
        recover: Callable[[str], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock
        self.dispatch = dispatch
        self.recover = recover
        self.scheduler = AsyncIOScheduler(timezone="UTC")

    def start(self) -> None:
        """Start the clock: load the horizon now and every `poll_interval`, sweep leases."""
        poll = self.settings.poll_interval.total_seconds()
        self.scheduler.add_job(self.refill, "interval", seconds=poll, id="refill",
                               next_run_time=self.clock.now(), misfire_grace_time=None,
                               coalesce=True, max_instances=1)
        sweep = max(1.0, self.settings.claim_lease.total_seconds() / 2)
        self.scheduler.add_job(self.sweep, "interval", seconds=sweep, id="sweep",
                               next_run_time=self.clock.now(), misfire_grace_time=None,
                               coalesce=True, max_instances=1)
        self.scheduler.start()

    def shutdown(self) -> None:
        """Stop firing; jobs already running finish on their own."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    @property
    def running(self) -> bool:
        """Whether the scheduler is firing jobs."""
        return bool(self.scheduler.running)

    def arm(self, message_id: str, due_at: datetime) -> None:
        """Fire `dispatch(message_id)` at `due_at` if that is within the horizon."""
        if due_at > self.clock.now() + self.settings.horizon:
            return  # the refill job will arm it when it comes near
        self.scheduler.add_job(self.dispatch, "date", run_date=due_at, args=[message_id],
                               id=message_id, replace_existing=True, misfire_grace_time=None)

    async def refill(self) -> None:
        """Arm every scheduled message due within the horizon that has no timer yet."""
        until = self.clock.now() + self.settings.horizon
        async with self.sessions() as s:
            due = await store.due_before(s, until, limit=BATCH)
        for message_id, due_at in due:
            if self.scheduler.get_job(message_id) is None:
                self.arm(message_id, due_at)

    async def sweep(self) -> None:
        """Reconcile messages whose claim lease ran out (their claimer died or hung)."""
        async with self.sessions() as s:
            stale = await store.stale_claims(s, self.clock.now(), limit=BATCH)
        for message_id in stale:
            log.warning("reconciling an expired claim", extra={"message_id": message_id})
            await self.recover(message_id)
