"""The timers (design invariant 2): APScheduler wakes the dispatcher at each instant at which
messages fall due, never before it, and holds only the near horizon."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.base import STATE_RUNNING

from service.config import SchedulerSettings
from service.delivery.timers import Timers
from service.storage.transactions import Transactions


@dataclass
class LaggingClock:
    """The system clock, `lag` behind: to it, a timer that fires on time fires early."""

    lag: timedelta

    def now(self) -> datetime:
        return datetime.now(UTC) - self.lag


@dataclass
class Wakeups:
    clock: LaggingClock
    seen: list[datetime] = field(default_factory=list)

    async def dispatch_due(self) -> None:
        self.seen.append(self.clock.now())

    async def recover(self, _message_id: str) -> None:
        raise AssertionError("nothing to recover")


@contextlib.asynccontextmanager
async def started(db_path: Path, lag: timedelta) -> AsyncIterator[tuple[Timers, Wakeups]]:
    """Timers started on `db_path` with a clock `lag` behind the system's."""
    transactions = Transactions.open(f"sqlite+aiosqlite:///{db_path}")
    wakeups = Wakeups(LaggingClock(lag))
    armed = Timers(
        settings=SchedulerSettings(),
        transactions=transactions,
        clock=wakeups.clock,
        dispatch_due=wakeups.dispatch_due,
        recover=wakeups.recover,
    )
    armed.start()
    try:
        yield armed, wakeups
    finally:
        await armed.stop(timeout=5)
        await transactions.close()


@pytest.fixture
async def timers(db_path: Path) -> AsyncIterator[tuple[Timers, Wakeups]]:
    async with started(db_path, timedelta(milliseconds=30)) as pair:
        yield pair


async def test_a_timer_that_fires_early_waits_for_its_instant(
    timers: tuple[Timers, Wakeups],
) -> None:
    """Nothing is claimed before its time, not by the few milliseconds a timer can be early."""
    armed, wakeups = timers
    due = wakeups.clock.now() + timedelta(milliseconds=200)
    armed.arm(due)
    async with asyncio.timeout(5):
        while not wakeups.seen:
            await asyncio.sleep(0.01)
    assert wakeups.seen[0] >= due


async def test_each_instant_is_armed_once_and_only_within_the_horizon(
    timers: tuple[Timers, Wakeups],
) -> None:
    """Many messages due at one instant share a timer; one past the horizon waits for a
    later refill instead of being held in memory."""
    armed, wakeups = timers
    before = len(armed.scheduler.get_jobs())
    soon = wakeups.clock.now() + timedelta(seconds=30)
    for _ in range(3):
        armed.arm(soon)
    armed.arm(wakeups.clock.now() + armed.settings.horizon + timedelta(seconds=1))
    assert len(armed.scheduler.get_jobs()) == before + 1


async def test_a_clock_far_from_the_schedulers_own_does_not_stall_the_start(
    db_path: Path,
) -> None:
    """APScheduler fires by its own clock. A clock a year behind it (a test's, or one set
    wrong) must not make it step through every poll interval in between on the event loop:
    the loop keeps answering from the start."""
    async with started(db_path, timedelta(days=365)):
        began = time.monotonic()
        await asyncio.sleep(0.2)  # the scheduler's first wake-up runs meanwhile
        assert time.monotonic() - began < 1.5  # stepping through a year took > 20 s


async def test_arming_many_instants_wakes_the_scheduler_once(
    timers: tuple[Timers, Wakeups],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plan or a refill arming hundreds of instants wakes APScheduler once, not once per
    timer: each wake-up is a pass over its jobs, and hundreds queued back to back stalled the
    event loop for as long as they took (sends due meanwhile went out late)."""
    armed, wakeups = timers
    woken: list[int] = []
    real = armed.scheduler.wakeup

    def wakeup() -> None:
        woken.append(1)
        real()

    monkeypatch.setattr(armed.scheduler, "wakeup", wakeup)
    start = wakeups.clock.now() + timedelta(seconds=10)
    instants = [start + timedelta(milliseconds=5 * i) for i in range(500)]
    before = len(armed.scheduler.get_jobs())
    armed.arm_many(instants)
    assert len(armed.scheduler.get_jobs()) == before + 500
    assert len(woken) == 1
    assert armed.scheduler.state == STATE_RUNNING  # firing jobs again


@dataclass
class HeldWakeups(Wakeups):
    """Wake-ups whose first one is held (a drain still sending) until `release` is set."""

    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def dispatch_due(self) -> None:
        self.seen.append(self.clock.now())
        if len(self.seen) == 1:
            await self.release.wait()


async def test_an_instant_armed_again_while_its_wake_up_runs_wakes_again(db_path: Path) -> None:
    """A message due at an instant whose timer is still running (a long drain) is armed again
    and wakes the dispatcher again, not skipped as a second run of the same job."""
    transactions = Transactions.open(f"sqlite+aiosqlite:///{db_path}")
    wakeups = HeldWakeups(LaggingClock(timedelta(0)))
    armed = Timers(
        settings=SchedulerSettings(),
        transactions=transactions,
        clock=wakeups.clock,
        dispatch_due=wakeups.dispatch_due,
        recover=wakeups.recover,
    )
    armed.start()
    try:
        due = wakeups.clock.now() + timedelta(milliseconds=100)
        armed.arm(due)
        async with asyncio.timeout(5):
            while not wakeups.seen:
                await asyncio.sleep(0.01)
            armed.arm(due)  # a message planned for that instant meanwhile
            await asyncio.sleep(0.2)
            wakeups.release.set()
            while len(wakeups.seen) < 2:
                await asyncio.sleep(0.01)
    finally:
        wakeups.release.set()
        await armed.stop(timeout=5)
        await transactions.close()
