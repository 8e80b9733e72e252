"""The deliverer: claims due notifications like sends, posts each, records every attempt.

The rows are the truth (design invariants 1 and 9): a notification is pending until an
attempt is answered 2xx, retried with exponential backoff and jitter (`[notifications]
retry_initial_delay` doubling up to `retry_max_delay`) until `give_up_after` since it was
written, then failed. A claim holds a row for a lease of three timeouts and some slack; a
process that dies holding it leaves it due again when the lease ends, for any replica.

It wakes every `POLL_SECONDS` to read when the soonest pending row is due (one indexed read
on the reader, no write) and sleeps until then or the next poll, whichever is first, so a
notification leaves within about half a second of its commit.

Names are resolved by `resolver` (the system's, through a thread, unless a test injects
one); a clinic that does not allow private networks is posted to through a session whose
resolver refuses them (`resolving`). The loop and each attempt run under the `Supervisor`:
a failure is logged and counted, the loop started again after a backoff, and an attempt that
fails leaves its claim to be due again when the lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import datetime, timedelta

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

from service.clock import Clock
from service.config import ClinicNotifications, Settings
from service.notifications.posting import Answer, client_session, post
from service.observability.metrics import Metrics
from service.observability.supervision import Supervisor
from service.storage import outbox_claims
from service.storage.outbox_claims import Claimed, Finished
from service.storage.transactions import Transactions

log = logging.getLogger("aftercare.notifications")
POLL_SECONDS = 0.5
CONCURRENCY = 16  # attempts in flight per process
LEASE_SLACK = timedelta(seconds=5)


class Deliverer:
    """Posts the outbox's due notifications, each attempt claimed once across replicas."""

    def __init__(
        self,
        *,
        settings: Settings,
        transactions: Transactions,
        clock: Clock,
        instance: str,
        metrics: Metrics,
        poll: float = POLL_SECONDS,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.settings = settings
        self.policy = settings.notifications
        self.transactions = transactions
        self.clock = clock
        self.instance = instance
        self.metrics = metrics
        self.poll = poll
        self.lease = self.policy.timeout * 3 + LEASE_SLACK
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self.supervisor = Supervisor(metrics)
        self._resolver = resolver
        self._http: dict[bool, aiohttp.ClientSession] = {}  # by allow_private_network
        self._loop: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop = asyncio.Event()

    def start(self) -> None:
        """Open the HTTP sessions and start polling (inside the running loop)."""
        self._resolver = self._resolver or ThreadedResolver()
        for allow in (False, True):
            self._http[allow] = client_session(
                self._resolver, allow_private_network=allow, limit=CONCURRENCY
            )
        looping = self.supervisor.forever(self._run, task="notifications", stop=self._stop)
        self._loop = self.supervisor.spawn(looping, task="notifications")

    def wake(self) -> None:
        """Look for due notifications now rather than at the next poll."""
        self._wake.set()

    async def stop(self, *, timeout: float) -> None:
        """Stop claiming; let the loop's transaction and the attempts in flight finish, for at
        most `timeout` s. Nothing is cancelled inside a transaction (on asyncpg that breaks the
        connection) unless it outlasts `timeout`; a claim left unfinished is due again when its
        lease ends."""
        self._stopping = True
        self._stop.set()
        self._wake.set()
        deadline = asyncio.get_running_loop().time() + timeout
        for tasks in ({self._loop} if self._loop else set(), self._inflight):
            left = deadline - asyncio.get_running_loop().time()
            if tasks and left > 0:
                await asyncio.wait(set(tasks), timeout=left)
            for task in set(tasks):
                task.cancel()  # only what outlasted the timeout
        for session in self._http.values():
            await session.close()
        if self._resolver is not None:
            await self._resolver.close()

    async def _run(self) -> None:
        """Claim what is due, sleep until more is; a failure (the database away for a while)
        ends the loop, which the supervisor starts again after a backoff."""
        while not self._stopping:
            delay = self.poll  # all slots busy: a slot freed wakes it sooner
            if len(self._inflight) < CONCURRENCY:
                delay = await self._due_in()
                if delay <= 0 and not self._stopping:
                    await self._claim_and_start()
                    continue
            await self._sleep(delay)

    async def _due_in(self) -> float:
        """Seconds until the soonest pending notification is due (the poll when none is)."""
        due = await self.transactions.read(outbox_claims.next_due)
        if due is None:
            return self.poll
        return min(self.poll, (due - self.clock.now()).total_seconds())

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()

    async def _claim_and_start(self) -> None:
        now = self.clock.now()
        claimed = await self.transactions.write(
            lambda s: outbox_claims.claim_due(
                s,
                now=now,
                instance=self.instance,
                lease=self.lease,
                limit=CONCURRENCY - len(self._inflight),
            )
        )
        for notification in claimed:
            task = self.supervisor.spawn(self._deliver(notification), task="notification")
            self._inflight.add(task)
            task.add_done_callback(self._done)
        if not claimed and not self._stopping:  # due, yet taken by another replica
            await self._sleep(self.poll)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()  # a slot is free: more may be due

    async def _deliver(self, notification: Claimed) -> None:
        """One attempt, recorded; what follows it decided by `after`. Should it raise, the
        supervisor reports it and the claim stays: it is due again when its lease ends."""
        result = await self._attempt(notification)
        await self.transactions.write(
            lambda s: outbox_claims.finish(s, [result], instance=self.instance)
        )
        outcome = {"delivered": "delivered", "retry": "retried"}.get(result.next, result.outcome)
        self.metrics.notifications.labels(notification.type, outcome or "failed").inc()
        if result.next != "delivered":
            log.warning(
                "notification attempt failed",
                extra={
                    "id": notification.id,
                    "clinic": notification.clinic_id,
                    "attempt": notification.attempts + 1,
                    "error": result.error,
                    "next": result.next,
                },
            )

    async def _attempt(self, notification: Claimed) -> Finished:
        clinic = self.settings.clinics.get(notification.clinic_id)
        target = clinic.notifications if clinic is not None else None
        if target is None:  # the endpoint was removed from the configuration since
            error = "the clinic has no notifications endpoint configured"
            return Finished(
                notification.id, self.clock.now(), None, error, "failed", None, "no_endpoint"
            )
        answer = await post(
            self._session(target),
            target,
            notification_id=notification.id,
            body=notification.body,
            timeout=self.policy.timeout,
        )
        return self.after(notification, answer, at=self.clock.now())

    def after(self, notification: Claimed, answer: Answer, *, at: datetime) -> Finished:
        """What follows an attempt answered `answer` at `at`: delivered, a retry after a
        backoff (never later than the notification's give-up time), or given up."""
        if answer.delivered:
            return Finished(notification.id, at, answer.http_status, None, "delivered")
        if at >= notification.give_up_at:
            return Finished(
                notification.id, at, answer.http_status, answer.error, "failed", None, "gave_up"
            )
        due = min(at + self.backoff(notification.attempts + 1), notification.give_up_at)
        return Finished(notification.id, at, answer.http_status, answer.error, "retry", due)

    def backoff(self, attempts: int) -> timedelta:
        """Exponential backoff with jitter: between half the initial delay and initial ·
        2^(attempts-1), capped at retry_max_delay."""
        first, cap = self.policy.retry_initial_delay, self.policy.retry_max_delay
        ceiling = min(cap, first * (2 ** max(0, min(attempts - 1, 30))))
        jitter: timedelta = (ceiling - first / 2) * random.random()
        return first / 2 + jitter

    def _session(self, target: ClinicNotifications) -> aiohttp.ClientSession:
        assert self._http, "started"
        return self._http[target.allow_private_network]
