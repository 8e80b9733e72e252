"""Claim → send → record. Retries, reconciliation and expiry (design invariants 3 and 4).

Due messages are claimed in batches (one conditional UPDATE … RETURNING) and sent with
bounded concurrency; outcomes are written by group commit. Only the holder of a claim calls
the provider. An ambiguous answer (timeout, 5xx) keeps the claim until its lease runs out and
is then reconciled against the provider's records before any retry; a refusal is final.
A clinic with `mps` has its sends paced at its sender's rate, outside the slots
(docs/pacing.md).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta

from service.clock import Clock
from service.config import Settings
from service.delivery import pacing
from service.delivery.outcomes import Outcomes
from service.delivery.pacing import Pace
from service.delivery.recorder import Recorder
from service.delivery.sms.base import (
    AmbiguousError,
    OutgoingSms,
    SendError,
    SmsSender,
)
from service.delivery.wire import wire
from service.observability.metrics import Metrics
from service.observability.supervision import Supervisor
from service.storage import claims, notices, reasons, vetting
from service.storage.claims import Claim
from service.storage.models import ALERT, Status
from service.storage.moves import Move, move_many
from service.storage.transactions import Connection, Session, Transactions

log = logging.getLogger("aftercare.dispatch")
RECONCILE_SLACK = timedelta(minutes=1)
CLAIM_BATCH = 200
PACE_LATE = "could not leave before its expiry at its sender's pace (mps)"
PACE_OVER = "released unsent: its sender's pace (mps) holds enough claims"
PACE_CLOSED = "released unsent: the dispatcher stopped while it waited for its pace (mps)"


class Dispatcher:
    """Sends due messages, each at most once, with bounded concurrency."""

    def __init__(
        self,
        *,
        settings: Settings,
        transactions: Transactions,
        sender: SmsSender,
        clock: Clock,
        instance: str,
        rearm: Callable[[datetime], None] = lambda _due: None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.transactions = transactions
        self.sender = sender
        self.clock = clock
        self.instance = instance
        self.rearm = rearm
        self.metrics = metrics or Metrics()
        self.supervisor = Supervisor(self.metrics)
        self.recorder = Recorder(
            settings=settings, transactions=transactions, clock=clock, supervisor=self.supervisor
        )
        self.outcomes = Outcomes(
            settings=settings,
            clock=clock,
            recorder=self.recorder,
            metrics=self.metrics,
            rearm=lambda due: self.rearm(due),
        )
        self._room = settings.scheduler.max_concurrent_sends
        self._ahead = self._room  # claims held ready for the next free slots
        self._ready: collections.deque[Claim] = collections.deque()
        self._inflight: set[asyncio.Task[None]] = set()
        # Claims this process holds while it sends them, and their lease's end: the sweeper
        # leaves these alone, however late Twilio answers.
        self._holding: dict[str, datetime] = {}
        self._wake = asyncio.Event()
        self._draining = False
        # Clinics with `mps`: each sender's claims wait for their turn outside the slots;
        # a pace whose turn has come waits in `_turns` for the next free slot, ahead of `_ready`.
        self._paces = pacing.paces(settings)
        self._turns: collections.deque[tuple[Pace, asyncio.Future[None]]] = collections.deque()

    async def dispatch_due(self) -> None:
        """Claim and send everything due now; return when it is all sent or settled.

        Single-flight: a call while a drain runs only wakes that drain up again."""
        self._wake.set()
        if self._draining:
            return
        self._draining = True
        try:
            while self._wake.is_set():
                self._wake.clear()
                while await self._claim_and_start():  # it stopped for want of room
                    await self._room_for_a_batch()
                await self._woken_or_settled()
        finally:
            self._draining = False

    async def _claim_and_start(self) -> bool:
        """Claim while there is room, ahead of the sends too (`_ahead`), and start what the
        slots take; whether more may be due (it stopped for want of room, not of due rows)."""
        while (want := self._room + self._ahead - len(self._inflight) - len(self._ready)) > 0:
            lease_until = self.clock.now() + self.settings.scheduler.claim_lease
            batch, taken = await self._claim(limit=min(want, CLAIM_BATCH))
            for message in batch:
                self._holding[message.id] = lease_until
            self._ready.extend(batch)
            self._start_ready()
            if taken < min(want, CLAIM_BATCH):  # not the ones sent: some may be cancelled
                return False
        return True

    def _start_ready(self) -> None:
        """Start claimed messages while a slot is free: a paced sender whose turn has come
        first, then the ready ones, soonest first."""
        while (self._turns or self._ready) and len(self._inflight) < self._room:
            if self._turns:
                send = self._take_turn(*self._turns.popleft())
                if send is None:
                    continue
            else:
                send = self._send(self._ready.popleft())
            # A send that raises what no provider answer explains (a bug, a sender's surprise)
            # is reported by the supervisor; its claim stays and is reconciled when its lease
            # runs out, like an interrupted send.
            task = self.supervisor.spawn(send, task="send")
            self._inflight.add(task)
            task.add_done_callback(self._slot_freed)

    def _take_turn(
        self, pace: Pace, turn: asyncio.Future[None]
    ) -> Coroutine[None, None, None] | None:
        """The send of `pace`'s next message, which leaves now; its next turn a gap later."""
        if not turn.done():
            turn.set_result(None)
        if not pace.queue:
            return None
        message = pace.pop()
        pace.left(time.monotonic())
        self._count_paced()
        if len(pace.queue) == pace.low:
            self._refill()
        return self._send_paced(message)

    def _slot_freed(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._start_ready()  # at once: a slot waits for no claim

    async def _room_for_a_batch(self) -> None:
        # Claim again once half the slots' worth of claims ahead is used, not as each send
        # ends: a claim is a transaction, and one per message would be most of what a burst
        # costs. The claims ahead keep every slot busy meanwhile: when Twilio is slow to answer,
        # waiting for half the slots to come free left slots idle (docs/benchmarks.md).
        wanted = max(1, self._room // 2)
        while (
            self._inflight
            and self._room + self._ahead - len(self._inflight) - len(self._ready) < wanted
        ):
            await asyncio.wait(set(self._inflight), return_when=asyncio.FIRST_COMPLETED)

    async def _woken_or_settled(self) -> None:
        """Wait until more may be due (a timer fired, a pace has room) or every send in flight
        and every paced claim is settled."""
        woken = asyncio.create_task(self._wake.wait())
        try:
            while (busy := self._inflight | self._pacing()) and not self._wake.is_set():
                await asyncio.wait({*busy, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()

    def _pacing(self) -> set[asyncio.Task[None]]:
        return {p.task for p in set(self._paces.values()) if p.task is not None}

    def _refill(self) -> None:
        """A pace's queue is down to half: claim again (a drain runs while any pace waits)."""
        self._wake.set()
        if not self._draining:
            self.supervisor.spawn(self.dispatch_due(), task="dispatch")

    async def claim(self, *, limit: int) -> list[Claim]:
        """Claim up to `limit` due messages for this instance, in one transaction of a few
        statements however many there are, and vet them (`vetting.vet`): the ones to send now."""
        return (await self._claim(limit=limit))[0]

    async def _claim(self, *, limit: int) -> tuple[list[Claim], int]:
        """`claim`, and how many due rows it took (expired and cancelled ones too). Paced
        messages are not among the ones returned: they wait for their sender's turn."""
        lease = self.settings.scheduler.claim_lease
        paces = set(self._paces.values())
        mono = time.monotonic()
        held = {p: pacing.held(p, mono) for p in paces}
        skip = [clinic for clinic, pace in self._paces.items() if pace.full]

        def claim(s: Session) -> tuple[pacing.Sorted, int]:
            now = self.clock.now()  # after the wait: the claim is as of now
            conn = s.connection()
            batch = claims.claim_due(
                conn,
                now=now,
                instance=self.instance,
                lease=lease,
                limit=limit,
                window=self.settings.sms.merge_window,
                skip=skip,
            )
            if batch.expired and Status.EXPIRED in self.recorder.audience.statuses:
                self._expired(conn, batch.expired, now=now)
            kept = vetting.vet(conn, batch, now=now, instance=self.instance)
            if not self._paces:
                return pacing.Sorted(unpaced=kept), batch.taken
            order = pacing.sort(kept, self._paces, held, now=now, mono=time.monotonic())
            self._unpace(conn, order, now=now)
            return order, batch.taken

        lease_until = self.clock.now() + lease
        order, taken = await self.transactions.write(claim, urgent=True)
        if order.late:
            self.metrics.paced_expired.inc(len(order.late))
        for pace, message in order.queued:
            self._holding[message.id] = lease_until
            pace.add(message)
            if pace.task is None:
                pace.task = self.supervisor.spawn(self._pace(pace), task="pace")
        self._count_paced()
        return order.unpaced, taken

    def _unpace(self, conn: Connection, order: pacing.Sorted, *, now: datetime) -> None:
        """Expire the paced messages that could not leave before their expiry, and release
        unsent the ones more than their pace holds (claimed again when it has room). The
        opt-out footer one of them was to carry goes to the number's next one that is sent."""
        unfooted = {(m.clinic_id, m.phone) for m in order.late + order.over if m.footer}
        footed = []
        for _, m in order.queued:
            if (m.clinic_id, m.phone) in unfooted and m.kind != ALERT:
                unfooted.discard((m.clinic_id, m.phone))
                m.footer = True
                footed.append(m.id)
        claims.mark_footer(conn, footed)
        moves = [
            Move(
                m.id,
                Status.EXPIRED,
                PACE_LATE,
                values={
                    "reason": reasons.EXPIRED_BEFORE_SENT,
                    "lease_until": None,
                    "footer": False,
                },
            )
            for m in order.late
        ] + [
            Move(
                m.id,
                Status.SCHEDULED,
                PACE_OVER,
                values={"lease_until": None, "attempts": m.attempts - 1, "footer": False},
            )
            for m in order.over
        ]
        moves += [_unmerged(p) for m in order.late + order.over for p in m.parts]
        if not moves:
            return
        move_many(conn, moves, now=now)
        if order.late and Status.EXPIRED in self.recorder.audience.statuses:
            self._expired(conn, [m.id for m in order.late], now=now)

    async def _pace(self, pace: Pace) -> None:
        """Hand `pace`'s claims their turns, one a gap, while any wait; expire the ones whose
        expiry comes before their turn."""
        try:
            while pace.queue:
                if (wait := pace.wait(time.monotonic())) > 0:
                    await asyncio.sleep(wait)
                while pace.queue and self.clock.now() >= pace.queue[0].expires_at:
                    await self._expire_paced(pace.pop())
                if pace.queue:
                    turn = asyncio.get_running_loop().create_future()
                    self._turns.append((pace, turn))
                    self._start_ready()
                    await turn
        finally:
            pace.task = None
            self._count_paced()

    async def _expire_paced(self, message: Claim) -> None:
        """Expired, not sent: its expiry came before its turn (or a free slot)."""
        self._holding.pop(message.id, None)
        self.metrics.paced_expired.inc()
        self._count_paced()
        await self.outcomes.record(
            Move(
                message.id,
                Status.EXPIRED,
                PACE_LATE,
                values={"reason": reasons.EXPIRED_BEFORE_SENT, "lease_until": None},
                also=tuple(_unmerged(p) for p in message.parts),
            )
        )

    async def _send_paced(self, message: Claim) -> None:
        if self.clock.now() >= message.expires_at:  # it waited for a slot past its expiry
            await self._expire_paced(message)
            return
        await self._send(message)

    def _count_paced(self) -> None:
        self.metrics.paced_waiting.set(sum(len(p.queue) for p in set(self._paces.values())))

    def _expired(self, conn: Connection, ids: list[str], *, now: datetime) -> None:
        """Notify the messages the claim found past their expiry (contract §11)."""
        notices.messages_changed(conn, self.settings, self.recorder.audience, ids=ids, now=now)

    async def close(self, *, timeout: float) -> None:
        """Let in-flight sends, and the claims held ready behind them, finish, for at most
        `timeout` seconds (what is left is reconciled when its lease runs out). Paced claims
        still waiting for their turn are released unsent at once."""
        deadline = asyncio.get_running_loop().time() + timeout
        await self._release_paced()
        while self._inflight and (left := deadline - asyncio.get_running_loop().time()) > 0:
            await asyncio.wait(set(self._inflight), timeout=left)

    async def _release_paced(self) -> None:
        """Stop handing out turns; the claims that waited for one go back to `scheduled`:
        never handed to the provider, they need no reconciliation."""
        for pace in set(self._paces.values()):
            if pace.task is not None:
                pace.task.cancel()
        for _, turn in self._turns:
            turn.cancel()
        self._turns.clear()
        waiting = [m for p in set(self._paces.values()) for m in p.queue]
        for pace in set(self._paces.values()):
            pace.queue.clear()
            pace.first = 0
        self._count_paced()
        if not waiting:
            return
        moves = [
            Move(
                m.id,
                Status.SCHEDULED,
                PACE_CLOSED,
                values={"lease_until": None, "attempts": m.attempts - 1},
            )
            for m in waiting
        ] + [_unmerged(p) for m in waiting for p in m.parts]
        try:
            await self.transactions.write(
                lambda s: move_many(s.connection(), moves, now=self.clock.now()), urgent=True
            )
        except Exception:  # their leases run out; the sweeper reconciles them
            log.exception("could not release paced claims")
        for m in waiting:
            self._holding.pop(m.id, None)

    def outgoing(self, message: Claim) -> OutgoingSms:
        """What to hand the provider for `message` now (`wire.wire`)."""
        return wire(message, self.settings, now=self.clock.now()).sms

    async def _send(self, message: Claim) -> None:
        try:
            if await self._lease_lasts(message):
                await self._send_held(message)
        finally:
            self._holding.pop(message.id, None)

    async def _lease_lasts(self, message: Claim) -> bool:
        """Whether the claim will outlast one request: extended first if it would not (a slow
        claim transaction or a busy loop ate into it); False when the claim is no longer ours."""
        now, timeout = self.clock.now(), self.settings.twilio.request_timeout
        if self._holding.get(message.id, now) - now >= timeout:
            return True
        lease = self.settings.scheduler.claim_lease
        kept = await self.transactions.write(
            lambda s: claims.extend(
                s.connection(), message.id, now=now, instance=self.instance, lease=lease
            ),
            urgent=True,
        )
        if kept:
            self._holding[message.id] = now + lease
        return kept

    async def _send_held(self, message: Claim) -> None:
        try:
            sent = wire(message, self.settings, now=self.clock.now())
            with self.metrics.send_seconds.time():
                accepted = await self.sender.send(sent.sms)
        except SendError as exc:
            self.metrics.sends.labels(type(exc).__name__).inc()
            self.metrics.twilio_errors.labels(str(exc.code or "none")).inc()
            await self.outcomes.failed(message, exc)
        else:
            self.metrics.sends.labels("accepted").inc()
            self.metrics.segments.labels(message.kind).inc(sent.segments.count)
            await self.outcomes.sent(message, accepted, sent=sent)

    async def recover(self, message_id: str) -> None:
        """Reconcile a claim whose lease ran out: record it as sent if the provider has it.

        Not while this process is still sending it: Twilio may yet accept it."""
        if message_id in self._holding:
            return
        now = self.clock.now()
        lease = self.settings.scheduler.claim_lease
        message = await self.transactions.write(
            lambda s: claims.take_over(
                s.connection(), message_id, now=now, instance=self.instance, lease=lease
            ),
            urgent=True,
        )
        if message is None:
            return
        since = (message.claimed_at or now) - RECONCILE_SLACK
        try:
            sent = wire(message, self.settings, now=self.clock.now())
            found = await self.sender.find(sent.sms, since=since)
        except AmbiguousError:
            log.warning("reconciliation failed; retried later", extra={"message_id": message_id})
            return
        self.metrics.recoveries.labels("found" if found else "not_found").inc()
        if found is not None:
            self.metrics.segments.labels(message.kind).inc(sent.segments.count)
            await self.outcomes.sent(message, found, sent=sent)
        else:
            await self.outcomes.retry(
                message, detail="claim lease ran out (not found at provider)", code=None
            )


def _unmerged(part: Claim) -> Move:
    """A merged text's part put back when its lead does not go (expired or released at the
    pace): scheduled again, at its own time, merged into nothing (docs/merging.md)."""
    return Move(
        part.id,
        Status.SCHEDULED,
        "its merged text did not go: scheduled again",
        values={"lease_until": None, "merged_into": None, "footer": False},
    )
