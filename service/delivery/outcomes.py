"""What each answer of the provider does to a claimed message: the move recorded for it.

Accepted: `sent` (or `delivered`). Refused: `failed`, and an unsubscribed number opted out.
Throttled or refused for now: back to `scheduled` after a backoff, or `expired` when no retry
fits before the message's expiry. Ambiguous (a timeout, a 5xx): the claim is held one more
lease, then reconciled against the provider's records (`Dispatcher.recover`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from service.clock import Clock
from service.config import Settings
from service.delivery.recorder import Recorder
from service.delivery.sms.base import (
    Accepted,
    OptedOutError,
    PermanentError,
    RetryableError,
    SendError,
)
from service.delivery.wire import Wire
from service.observability.metrics import Metrics
from service.storage import reasons
from service.storage.claims import Claim
from service.storage.models import Status
from service.storage.moves import Move

log = logging.getLogger("aftercare.dispatch")


class Outcomes:
    """Records the provider's answers for the claims of one dispatcher."""

    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        recorder: Recorder,
        metrics: Metrics,
        rearm: Callable[[datetime], None],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.recorder = recorder
        self.metrics = metrics
        self.rearm = rearm

    async def failed(self, message: Claim, error: SendError) -> None:
        """A refusal or an error: failed, retried later, or held for reconciliation."""
        detail, code = error.detail, error.code
        match error:
            case OptedOutError():
                await self.record(
                    Move(
                        message.id,
                        Status.FAILED,
                        detail[:255],
                        code,
                        {"error_code": code, "reason": reasons.RECIPIENT_UNSUBSCRIBED},
                        opt_out=(message.clinic_id, message.phone),
                    )
                )
            case PermanentError():
                await self.record(
                    Move(
                        message.id,
                        Status.FAILED,
                        detail[:255],
                        code,
                        {"error_code": code, "reason": detail[:255]},
                    )
                )
            case RetryableError():
                await self.retry(message, detail=detail, code=code)
            case _:  # AmbiguousError: it may have been sent
                await self.hold(message, detail=detail, code=code)

    async def record(self, move: Move) -> bool:
        """Write `move`; whether the message moved (False too when the write failed)."""
        try:
            return await self.recorder.record(move)
        except Exception:
            # The claim stays; when its lease runs out the sweeper reconciles it.
            log.exception("could not record a send outcome", extra={"message_id": move.message_id})
            return False

    async def sent(self, message: Claim, accepted: Accepted, *, sent: Wire) -> None:
        """Accepted by the provider: sent (or delivered), with the body, encoding and segments
        as `sent`, its lateness observed."""
        status = Status.DELIVERED if accepted.status == "delivered" else Status.SENT
        now = self.clock.now()
        await self.record(
            Move(
                message.id,
                status,
                f"accepted as {accepted.status}",
                values={
                    "provider_id": accepted.provider_id,
                    "sent_at": now,
                    "lease_until": None,
                    "body": sent.body,
                    "encoding": sent.segments.encoding,
                    "segments": sent.segments.count,
                },
                provider_id=accepted.provider_id,
            )
        )
        self.metrics.lateness.observe(max(0.0, (now - message.send_at).total_seconds()))
        log.info(
            "message sent", extra={"message_id": message.id, "late_ms": _ms(now - message.send_at)}
        )

    async def retry(self, message: Claim, *, detail: str, code: int | None) -> None:
        """Scheduled again after a backoff, or expired when the retry would come too late."""
        due = self.clock.now() + self.backoff(message.attempts)
        if due >= message.expires_at:
            await self.record(
                Move(
                    message.id,
                    Status.EXPIRED,
                    f"{detail[:180]}; no retry before expiry",
                    code,
                    {"reason": reasons.EXPIRED_WHILE_RETRYING, "lease_until": None},
                )
            )
            return
        moved = await self.record(
            Move(
                message.id,
                Status.SCHEDULED,
                f"{detail[:180]}; retry at {due.isoformat()}",
                code,
                {"due_at": due, "lease_until": None},
            )
        )
        if moved:
            self.rearm(due)

    async def hold(self, message: Claim, *, detail: str, code: int | None) -> None:
        """Maybe sent: the claim kept one more lease, then reconciled."""
        # The provider may still be creating the message: keep the claim for one more lease,
        # then the sweeper reconciles against the provider's records before any retry.
        until = self.clock.now() + self.settings.scheduler.claim_lease
        await self.record(
            Move(
                message.id,
                Status.SENDING,
                f"{detail[:160]}; reconcile after {until.isoformat()}",
                code,
                {"lease_until": until},
            )
        )
        log.warning(
            "ambiguous send held for reconciliation",
            extra={"message_id": message.id, "error_code": code},
        )

    def backoff(self, attempts: int) -> timedelta:
        """Exponential backoff with jitter: between half the initial delay and initial * 2^(n-1)."""
        first = self.settings.scheduler.retry_initial_delay
        cap = self.settings.scheduler.retry_max_delay
        ceiling = min(cap, first * (2 ** max(0, min(attempts - 1, 30))))
        jitter: timedelta = (ceiling - first / 2) * random.random()
        return first / 2 + jitter


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)
