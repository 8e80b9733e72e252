"""Claim → send → record. Retries, reconciliation and expiry (DESIGN invariants 3 and 4).

Only the holder of a claim calls the provider. An ambiguous answer (timeout, 5xx) is
reconciled against the provider's records before any retry; a certain refusal is final.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from service import store
from service.clock import Clock
from service.config import Settings
from service.inbound import settle_early_callbacks
from service.masking import mask_phone
from service.models import Message, Status
from service.sms.base import (
    Accepted,
    AmbiguousError,
    OptedOutError,
    OutgoingSms,
    PermanentError,
    RetryableError,
    SmsSender,
)

log = logging.getLogger("aftercare.dispatch")
RECONCILE_SLACK = timedelta(minutes=1)


class Dispatcher:
    """Sends due messages, each at most once, with bounded concurrency."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        sender: SmsSender,
        clock: Clock,
        instance: str,
        rearm: Callable[[str, datetime], None] = lambda _id, _due: None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.sender = sender
        self.clock = clock
        self.instance = instance
        self.rearm = rearm
        self._slots = asyncio.Semaphore(settings.scheduler.max_concurrent_sends)

    async def dispatch(self, message_id: str) -> None:
        """Send one message if it is still due and this instance wins its claim."""
        async with self._slots:
            message = await self._claim(message_id)
            if message is not None:
                await self._send(message)

    async def _claim(self, message_id: str) -> Message | None:
        now = self.clock.now()
        lease = self.settings.scheduler.claim_lease
        async with self.sessions.begin() as s:
            if await store.expire_if_late(s, message_id, now=now):
                return None
            message = await store.claim(s, message_id, now=now, instance=self.instance,
                                        lease=lease)
            if message is None:
                return None
            if await _cancel_if_opted_out(s, message, now=now):
                return None
            message.footer = not await store.has_reached(s, message.clinic_id, message.phone,
                                                         besides=message.id)
            s.add(message)
            return message

    def outgoing(self, message: Message) -> OutgoingSms:
        """What to hand the provider for `message` (footer on a patient's first message)."""
        clinic = self.settings.clinics[message.clinic_id]
        footer = self.settings.sms.opt_out_footer
        body = f"{message.body}\n{footer}" if message.footer and footer else message.body
        base = self.settings.server.public_base_url
        return OutgoingSms(
            message_id=message.id, to=message.phone, body=body,
            from_number=clinic.from_number or None,
            messaging_service_sid=(clinic.messaging_service_sid
                                   or self.settings.twilio.messaging_service_sid or None),
            status_callback=f"{base}/v1/twilio/status")

    async def _send(self, message: Message) -> None:
        sms = self.outgoing(message)
        try:
            accepted = await self.sender.send(sms)
        except OptedOutError as exc:
            await self._opted_out(message, code=exc.code, detail=exc.detail)
        except PermanentError as exc:
            await self._finish(message, Status.FAILED, detail=exc.detail, code=exc.code)
        except RetryableError as exc:
            await self._retry(message, detail=exc.detail, code=exc.code)
        except AmbiguousError as exc:
            await self._hold(message, detail=exc.detail, code=exc.code)
        else:
            await self._sent(message, accepted)

    async def _sent(self, message: Message, accepted: Accepted) -> None:
        now = self.clock.now()
        status = Status.DELIVERED if accepted.status == "delivered" else Status.SENT
        async with self.sessions.begin() as s:
            moved = await store.move(s, message.id, to=status, now=now,
                                     allowed_from=[Status.SENDING],
                                     detail=f"accepted as {accepted.status}",
                                     values={"provider_id": accepted.provider_id,
                                             "sent_at": now, "lease_until": None})
            if moved:
                await settle_early_callbacks(s, message.id, accepted.provider_id, now=now)
        log.info("message sent", extra={"message_id": message.id, "to": mask_phone(message.phone),
                                        "late_ms": _ms(now - message.send_at)})

    async def _finish(self, message: Message, status: Status, *, detail: str,
                      code: int | None) -> None:
        async with self.sessions.begin() as s:
            await store.move(s, message.id, to=status, now=self.clock.now(),
                             allowed_from=[Status.SENDING], detail=detail[:255], code=code,
                             values={"error_code": code, "reason": detail[:255],
                                     "lease_until": None})
        log.warning("message not sent", extra={"message_id": message.id, "status": status,
                                               "error_code": code})

    async def _opted_out(self, message: Message, *, code: int | None, detail: str) -> None:
        await self._finish(message, Status.FAILED, detail=detail, code=code)
        now = self.clock.now()
        async with self.sessions.begin() as s:
            await store.opt_out(s, message.clinic_id, message.phone, now=now, source="twilio-21610")

    async def _retry(self, message: Message, *, detail: str, code: int | None) -> None:
        now = self.clock.now()
        due = now + self.backoff(message.attempts)
        async with self.sessions.begin() as s:
            if due >= message.expires_at:
                moved = await store.move(s, message.id, to=Status.EXPIRED, now=now,
                                         allowed_from=[Status.SENDING], code=code,
                                         detail=f"{detail[:180]}; no retry before expiry",
                                         values={"reason": "expired while retrying",
                                                 "lease_until": None})
            else:
                moved = await store.move(s, message.id, to=Status.SCHEDULED, now=now,
                                         allowed_from=[Status.SENDING], code=code,
                                         detail=f"{detail[:180]}; retry at {due.isoformat()}",
                                         values={"due_at": due, "lease_until": None})
        if moved and due < message.expires_at:
            self.rearm(message.id, due)

    async def _hold(self, message: Message, *, detail: str, code: int | None) -> None:
        # The provider may still be creating the message: keep the claim for one more lease,
        # then the sweeper reconciles against the provider's records before any retry.
        now = self.clock.now()
        until = now + self.settings.scheduler.claim_lease
        async with self.sessions.begin() as s:
            await store.move(s, message.id, to=Status.SENDING, now=now,
                             allowed_from=[Status.SENDING], code=code,
                             detail=f"{detail[:160]}; reconcile after {until.isoformat()}",
                             values={"lease_until": until})
        log.warning("ambiguous send held for reconciliation",
                    extra={"message_id": message.id, "error_code": code})

    async def _reconcile(self, message: Message, sms: OutgoingSms, *, detail: str,
                         code: int | None) -> None:
        since = (message.claimed_at or self.clock.now()) - RECONCILE_SLACK
        try:
            found = await self.sender.find(sms, since=since)
        except AmbiguousError:
            # Leave the claim to run out; the lease sweeper reconciles it later.
            log.warning("reconciliation failed", extra={"message_id": message.id})
            return
        if found is not None:
            await self._sent(message, found)
        else:
            await self._retry(message, detail=f"{detail} (not found at provider)", code=code)

    async def recover(self, message_id: str) -> None:
        """Reconcile a claim whose lease ran out: record it as sent if the provider has it."""
        now = self.clock.now()
        async with self.sessions.begin() as s:
            message = await store.take_over(s, message_id, now=now, instance=self.instance,
                                            lease=self.settings.scheduler.claim_lease)
        if message is not None:
            async with self._slots:
                await self._reconcile(message, self.outgoing(message),
                                      detail="claim lease ran out", code=None)

    def backoff(self, attempts: int) -> timedelta:
        """Exponential backoff with jitter: between half the initial delay and initial * 2^(n-1)."""
        first = self.settings.scheduler.retry_initial_delay
        cap = self.settings.scheduler.retry_max_delay
        ceiling = min(cap, first * (2 ** max(0, min(attempts - 1, 30))))
        jitter: timedelta = (ceiling - first / 2) * random.random()
        return first / 2 + jitter


async def _cancel_if_opted_out(s: AsyncSession, message: Message, *, now: datetime) -> bool:
    if not await store.is_opted_out(s, message.clinic_id, message.phone):
        return False
    return await store.move(s, message.id, to=Status.CANCELLED, now=now,
                            allowed_from=[Status.SENDING], detail="number opted out (STOP)",
                            values={"reason": "number opted out (STOP)", "lease_until": None})


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)
