"""Claim → send → record. Retries, reconciliation and expiry (DESIGN invariants 3 and 4).

Due messages are claimed in batches (one conditional UPDATE … RETURNING) and sent with
bounded concurrency; outcomes are written by group commit. Only the holder of a claim calls
the provider. An ambiguous answer (timeout, 5xx) keeps the claim until its lease runs out and
is then reconciled against the provider's records before any retry; a refusal is final.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from service import claims, store
from service.clock import Clock
from service.config import Settings
from service.metrics import Metrics
from service.models import Message, Status
from service.recorder import Move, Recorder
from service.sms.base import (
    Accepted,
    AmbiguousError,
    OptedOutError,
    OutgoingSms,
    PermanentError,
    RetryableError,
    SendError,
    SmsSender,
)

log = logging.getLogger("aftercare.dispatch")
RECONCILE_SLACK = timedelta(minutes=1)
CLAIM_BATCH = 200
OPTED_OUT = "number opted out (STOP)"


class Dispatcher:
    """Sends due messages, each at most once, with bounded concurrency."""

    def __init__(
        self, *, settings: Settings, sessions: async_sessionmaker[AsyncSession],
        sender: SmsSender, clock: Clock, instance: str,
        rearm: Callable[[datetime], None] = lambda _due: None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.sender = sender
        self.clock = clock
        self.instance = instance
        self.rearm = rearm
        self.metrics = metrics or Metrics()
        self.recorder = Recorder(sessions=sessions, clock=clock)
        self._room = settings.scheduler.max_concurrent_sends
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._draining = False

    async def dispatch_due(self) -> None:
        """Claim and send everything due now; return when it is all sent or settled.

        Single-flight: a call while a drain runs only wakes that drain up again."""
        self._wake.set()
        if self._draining:
            return
        self._draining = True
        try:
            more = True
            while more or self._wake.is_set() or self._inflight:
                self._wake.clear()
                more = await self._claim_and_start()
                if self._inflight:
                    await self._wait_for_room_or_wake()
        finally:
            self._draining = False

    async def _claim_and_start(self) -> bool:
        """Claim and start sends while there is room; whether more may be due (it stopped for
        want of room, not of due rows)."""
        while (room := self._room - len(self._inflight)) > 0:
            batch = await self._claim(limit=min(room, CLAIM_BATCH))
            for message in batch:
                task = asyncio.create_task(self._send(message))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            if len(batch) < min(room, CLAIM_BATCH):
                return False
        return True

    async def _wait_for_room_or_wake(self) -> None:
        woken = asyncio.create_task(self._wake.wait())
        await asyncio.wait({*self._inflight, woken}, return_when=asyncio.FIRST_COMPLETED)
        woken.cancel()

    async def _claim(self, *, limit: int) -> list[Message]:
        now = self.clock.now()
        async with self.sessions.begin() as s:
            await claims.expire_due(s, now=now)
            batch = await claims.claim_due(s, now=now, instance=self.instance,
                                           lease=self.settings.scheduler.claim_lease,
                                           limit=limit)
            batch = await _follow_corrections(s, batch, now=now)
            batch = await _drop_opted_out(s, batch, now=now)
            footers = await _mark_footers(s, batch)
        for message in batch:  # after the transaction, so the session writes nothing more
            message.footer = message.id in footers
        return batch

    async def close(self, *, timeout: float) -> None:
        """Let in-flight sends finish, for at most `timeout` seconds."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=timeout)

    def outgoing(self, message: Message) -> OutgoingSms:
        """What to hand the provider for `message` (footer on a patient's first message)."""
        clinic = self.settings.clinics[message.clinic_id]
        footer = self.settings.sms.opt_out_footer
        body = f"{message.body}\n{footer}" if message.footer and footer else message.body
        return OutgoingSms(
            message_id=message.id, to=message.phone, body=body,
            from_number=clinic.from_number or None,
            messaging_service_sid=(clinic.messaging_service_sid
                                   or self.settings.twilio.messaging_service_sid or None),
            status_callback=f"{self.settings.server.public_base_url}/v1/twilio/status")

    async def _send(self, message: Message) -> None:
        try:
            with self.metrics.send_seconds.time():
                accepted = await self.sender.send(self.outgoing(message))
        except SendError as exc:
            self.metrics.sends.labels(type(exc).__name__).inc()
            self.metrics.twilio_errors.labels(str(exc.code or "none")).inc()
            await self._failed(message, exc)
        else:
            self.metrics.sends.labels("accepted").inc()
            await self._sent(message, accepted)

    async def _failed(self, message: Message, error: SendError) -> None:
        detail, code = error.detail, error.code
        match error:
            case OptedOutError():
                await self._record(Move(message.id, Status.FAILED, detail[:255], code,
                                        {"error_code": code, "reason": "recipient unsubscribed"},
                                        opt_out=(message.clinic_id, message.phone)))
            case PermanentError():
                await self._record(Move(message.id, Status.FAILED, detail[:255], code,
                                        {"error_code": code, "reason": detail[:255]}))
            case RetryableError():
                await self._retry(message, detail=detail, code=code)
            case _:  # AmbiguousError: it may have been sent
                await self._hold(message, detail=detail, code=code)

    async def _record(self, move: Move) -> bool:
        try:
            return await self.recorder.record(move)
        except Exception:
            # The claim stays; when its lease runs out the sweeper reconciles it.
            log.exception("could not record a send outcome", extra={"message_id": move.message_id})
            return False

    async def _sent(self, message: Message, accepted: Accepted) -> None:
        status = Status.DELIVERED if accepted.status == "delivered" else Status.SENT
        now = self.clock.now()
        await self._record(Move(message.id, status, f"accepted as {accepted.status}",
                                values={"provider_id": accepted.provider_id, "sent_at": now,
                                        "lease_until": None},
                                provider_id=accepted.provider_id))
        self.metrics.lateness.observe(max(0.0, (now - message.send_at).total_seconds()))
        log.info("message sent", extra={"message_id": message.id,
                                        "late_ms": _ms(now - message.send_at)})

    async def _retry(self, message: Message, *, detail: str, code: int | None) -> None:
        due = self.clock.now() + self.backoff(message.attempts)
        if due >= message.expires_at:
            await self._record(Move(message.id, Status.EXPIRED,
                                    f"{detail[:180]}; no retry before expiry", code,
                                    {"reason": "expired while retrying", "lease_until": None}))
            return
        moved = await self._record(Move(message.id, Status.SCHEDULED,
                                        f"{detail[:180]}; retry at {due.isoformat()}", code,
                                        {"due_at": due, "lease_until": None}))
        if moved:
            self.rearm(due)

    async def _hold(self, message: Message, *, detail: str, code: int | None) -> None:
        # The provider may still be creating the message: keep the claim for one more lease,
        # then the sweeper reconciles against the provider's records before any retry.
        until = self.clock.now() + self.settings.scheduler.claim_lease
        await self._record(Move(message.id, Status.SENDING,
                                f"{detail[:160]}; reconcile after {until.isoformat()}", code,
                                {"lease_until": until}))
        log.warning("ambiguous send held for reconciliation",
                    extra={"message_id": message.id, "error_code": code})

    async def recover(self, message_id: str) -> None:
        """Reconcile a claim whose lease ran out: record it as sent if the provider has it."""
        now = self.clock.now()
        async with self.sessions.begin() as s:
            message = await store.take_over(s, message_id, now=now, instance=self.instance,
                                            lease=self.settings.scheduler.claim_lease)
        if message is None:
            return
        since = (message.claimed_at or now) - RECONCILE_SLACK
        try:
            found = await self.sender.find(self.outgoing(message), since=since)
        except AmbiguousError:
            log.warning("reconciliation failed; retried later", extra={"message_id": message_id})
            return
        self.metrics.recoveries.labels("found" if found else "not_found").inc()
        if found is not None:
            await self._sent(message, found)
        else:
            await self._retry(message, detail="claim lease ran out (not found at provider)",
                              code=None)

    def backoff(self, attempts: int) -> timedelta:
        """Exponential backoff with jitter: between half the initial delay and initial * 2^(n-1)."""
        first = self.settings.scheduler.retry_initial_delay
        cap = self.settings.scheduler.retry_max_delay
        ceiling = min(cap, first * (2 ** max(0, min(attempts - 1, 30))))
        jitter: timedelta = (ceiling - first / 2) * random.random()
        return first / 2 + jitter


async def _follow_corrections(s: AsyncSession, batch: Sequence[Message], *,
                              now: datetime) -> list[Message]:
    """Apply corrections made while a message was in flight and then put back for a retry:
    a cancelled treatment or withdrawn consent cancels it; a new phone number is used."""
    standing = await claims.standing(s, [m.id for m in batch])
    keep = []
    for message in batch:
        cancelled, consents, phone = standing[message.id]
        reason = ("treatment cancelled" if cancelled
                  else None if consents else "consent withdrawn")
        if reason is not None:
            await store.move(s, message.id, to=Status.CANCELLED, now=now,
                             allowed_from=[Status.SENDING], detail=reason,
                             values={"reason": reason, "lease_until": None})
            continue
        if phone != message.phone:
            await store.move(s, message.id, to=Status.SENDING, now=now,
                             allowed_from=[Status.SENDING], detail="patient's new phone",
                             values={"phone": phone})
            message.phone = phone
        keep.append(message)
    return keep


async def _drop_opted_out(s: AsyncSession, batch: Sequence[Message], *,
                          now: datetime) -> list[Message]:
    """Cancel claimed messages to numbers that said STOP (a STOP just before the send wins)."""
    stopped = await claims.opted_out_among(s, ((m.clinic_id, m.phone) for m in batch))
    keep = []
    for message in batch:
        if (message.clinic_id, message.phone) in stopped:
            await store.move(s, message.id, to=Status.CANCELLED, now=now,
                             allowed_from=[Status.SENDING], detail=OPTED_OUT,
                             values={"reason": OPTED_OUT, "lease_until": None})
        else:
            keep.append(message)
    return keep


async def _mark_footers(s: AsyncSession, batch: Sequence[Message]) -> set[str]:
    """The footer goes on the first message a clinic sends a number, and on no other."""
    reached = await claims.reached_among(s, ((m.clinic_id, m.phone) for m in batch),
                                         besides=[m.id for m in batch])
    first: list[str] = []
    for message in batch:  # soonest first
        pair = (message.clinic_id, message.phone)
        if pair not in reached:
            reached.add(pair)
            first.append(message.id)
    await claims.mark_footer(s, first)
    return set(first)


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)
