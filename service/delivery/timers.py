"""APScheduler wiring: the clock that wakes the dispatcher, never the record (design invariant 2).

Only the near horizon is held as timers: an interval job loads the distinct instants at which
scheduled rows fall due within `scheduler.horizon` and arms one date job per instant; when it
fires, the dispatcher claims everything due. A sweeper reconciles claims whose lease ran out.
After a crash, a restart, or on another replica, the timers are rebuilt from the rows.

Every job runs under the `Supervisor` (nothing dies quietly): a failure is logged and counted
(not left to APScheduler's log); a periodic job that failed sits out its next runs for a
backoff (1 s doubling up to a minute, reset when it runs well), then runs again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from service.clock import Clock
from service.config import SchedulerSettings
from service.observability.metrics import Metrics
from service.observability.supervision import Backoff, Supervisor
from service.storage import store
from service.storage.transactions import Transactions

log = logging.getLogger("aftercare.scheduler")
BATCH = 5000
# A refill reads instants and arms timers a slice at a time, and lets due sends go in between:
# reading a whole batch of instants at once held the event loop, and adding a job to
# APScheduler is not free, with a new instant for every message of a steady load each poll
# (docs/benchmarks.md). Between two slices of new timers it pauses: yielding once only let
# each send go one step (one await) per slice.
READ_SLICE = 500
ARM_SLICE = 20
ARM_PAUSE = 0.002  # seconds
MAX_EARLY = 0.05  # seconds a timer may fire ahead of its instant and wait for it
Job = Callable[[], Coroutine[Any, Any, None]]


class Timers:
    """Arms a wake-up for each instant at which messages fall due soon."""

    def __init__(
        self,
        *,
        settings: SchedulerSettings,
        transactions: Transactions,
        clock: Clock,
        dispatch_due: Callable[[], Awaitable[None]],
        recover: Callable[[str], Awaitable[None]],
        supervisor: Supervisor | None = None,
    ) -> None:
        self.settings = settings
        self.transactions = transactions  # read on the reader, beside the writer
        self.clock = clock
        self.dispatch_due = dispatch_due
        self.recover = recover
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self._jobs: set[asyncio.Task[None]] = set()
        self._armed: set[float] = set()  # instants with a timer; a refill skips them
        self._arming = itertools.count()
        self.supervisor = supervisor or Supervisor(Metrics())
        self._periodic: list[tuple[Job, float, str]] = []
        self._backoff: dict[str, Backoff] = {}
        self._resting: dict[str, float] = {}  # a failed job's next run (time.monotonic())

    def every(self, job: Job, *, seconds: float, task: str | None = None) -> None:
        """Run `job` every `seconds` once started (before `start`): a periodic sweep of the
        rows, such as the escalations' reminders. The job must be safe on every replica at
        once; like the refill, it reads the truth from the rows each time. `task` names it in
        the failures' log line and metric (the function's name by default)."""
        self._periodic.append((job, seconds, task or str(getattr(job, "__qualname__", "job"))))

    def start(self) -> None:
        """Start the clock: load the horizon now and every `poll_interval`, sweep leases."""
        poll = self.settings.poll_interval.total_seconds()
        sweep = max(1.0, self.settings.claim_lease.total_seconds() / 2)
        # First run at once by APScheduler's own clock, which fires the jobs. An injected
        # clock days behind it made APScheduler step through every interval missed since
        # (millions of steps at a short poll interval: seconds of a stalled event loop).
        first = datetime.now(UTC)
        for job, seconds, task in (
            (self.refill, poll, "refill"),
            (self.sweep, sweep, "sweep"),
            *self._periodic,
        ):
            self.scheduler.add_job(
                partial(self._periodically, job, task),
                "interval",
                seconds=seconds,
                id=task,
                next_run_time=first,
                misfire_grace_time=None,
                coalesce=True,
                max_instances=1,
            )
        self.scheduler.start()

    async def stop(self, *, timeout: float) -> None:
        """Stop firing, and let running jobs finish (for at most `timeout` seconds) so that
        none is cut off in the middle of a database transaction."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._jobs:
            await asyncio.wait(set(self._jobs), timeout=timeout)

    async def _tracked(self, job: Job, task: str) -> bool:
        """Run `job` under the supervisor; whether it ended well."""
        # APScheduler cancels the jobs running when it shuts down; a job cut off inside a
        # database transaction can leave its connection stuck. Run the work in a task of its
        # own, which this wrapper's cancellation leaves running, and let `stop` wait for it.
        running = self.supervisor.spawn(job(), task=task)  # reports a failure
        self._jobs.add(running)
        running.add_done_callback(self._jobs.discard)
        try:
            await asyncio.wait({running})
        except asyncio.CancelledError:
            if self.running:
                raise
            return False  # the scheduler's shutdown: `stop` waits for the work, not an error
        return not running.cancelled() and running.exception() is None

    async def _periodically(self, job: Job, task: str) -> None:
        """One run of a periodic job, unless it is sitting out a backoff after failing."""
        if time.monotonic() < self._resting.get(task, 0.0):
            return
        backoff = self._backoff.setdefault(task, Backoff())
        if await self._tracked(job, task):
            backoff.succeeded()
            self._resting.pop(task, None)
        else:
            self._resting[task] = time.monotonic() + backoff.failed()

    @property
    def running(self) -> bool:
        """Whether the scheduler is firing jobs."""
        return bool(self.scheduler.running)

    def arm(self, due_at: datetime) -> None:
        """Wake the dispatcher at `due_at` if that is within the horizon."""
        self.arm_many([due_at])

    def arm_many(self, instants: Iterable[datetime]) -> int:
        """`arm` each instant (an event's plan: dozens, most of them beyond the horizon); how
        many were not armed yet."""
        if not self.running:
            return 0
        horizon = self.clock.now() + self.settings.horizon
        # Beyond the horizon, the refill job arms an instant when it comes near.
        new = [d for d in instants if d <= horizon and d.timestamp() not in self._armed]
        if not new:
            return 0
        # APScheduler wakes up (a trip through the loop's self-pipe and a pass over its due
        # jobs) for every job added while it runs: a refill arming a thousand instants queued
        # a thousand wake-ups, run back to back (a stalled loop). Paused, it
        # takes them all and wakes up once, on resuming.
        self.scheduler.pause()
        try:
            for due_at in new:
                self._arm(due_at)
        finally:
            self.scheduler.resume()
        return len(new)

    def _arm(self, due_at: datetime) -> None:
        key = due_at.timestamp()
        if key in self._armed:
            return
        self._armed.add(key)
        # An id of its own each time: an instant armed again while its first wake-up still
        # runs (a burst's drain) would be the same job, and APScheduler skips a job's second
        # run while its first goes on, with a warning and no wake-up.
        self.scheduler.add_job(
            partial(self._tracked, partial(self._fire, key), "dispatch"),
            "date",
            run_date=due_at,
            id=f"due@{key:.6f}#{next(self._arming)}",
            misfire_grace_time=None,
        )

    async def _fire(self, key: float) -> None:
        self._armed.discard(key)
        early = key - self.clock.now().timestamp()
        if 0 < early < MAX_EARLY:  # never claim a message before its time, by a hair either
            await asyncio.sleep(early)
        await self.dispatch_due()

    async def refill(self) -> None:
        """Arm a wake-up for every instant within the horizon at which messages fall due (the
        first `BATCH` of them: the later ones are armed by the refills after)."""
        until = self.clock.now() + self.settings.horizon
        after: datetime | None = None
        for _ in range(0, BATCH, READ_SLICE):
            instants = await self.transactions.read(
                partial(store.due_instants, until=until, after=after, limit=READ_SLICE)
            )
            for start in range(0, len(instants), ARM_SLICE):
                if self.arm_many(instants[start : start + ARM_SLICE]):
                    await asyncio.sleep(ARM_PAUSE)  # only after new timers: most are armed
            await asyncio.sleep(0)
            if len(instants) < READ_SLICE:
                return
            after = instants[-1]

    async def sweep(self) -> None:
        """Reconcile messages whose claim lease ran out (their claimer died or hung)."""
        now = self.clock.now()
        stale = await self.transactions.read(lambda s: store.stale_claims(s, now, limit=BATCH))
        for message_id in stale:
            log.warning("reconciling an expired claim", extra={"message_id": message_id})
            await self.recover(message_id)
