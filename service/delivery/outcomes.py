"""What each answer of the provider does to a claimed message: the move recorded for it.

Accepted: `sent` (or `delivered`). Refused: `failed`, and an unsubscribed number opted out.
Throttled or refused for now: back to `scheduled` after a backoff, or `expired` when no retry
fits before the message's expiry. Ambiguous (a timeout, a 5xx): the claim is held one more
lease, then reconciled against the provider's records (`Dispatcher.recover`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

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
        """A refusal or an error: failed, retried later, or held for reconciliation. A merged
        text's parts follow its lead (docs/merging.md)."""
        detail, code = error.detail, error.code
        match error:
            case OptedOutError():
                reason = reasons.RECIPIENT_UNSUBSCRIBED
                await self.record(
                    Move(
                        message.id,
                        Status.FAILED,
                        detail[:255],
                        code,
                        {"error_code": code, "reason": reason},
                        opt_out=(message.clinic_id, message.phone),
                        also=_parts(message, Status.FAILED, detail, code, {"reason": reason}),
                    )
                )
            case PermanentError():
                values = {"error_code": code, "reason": detail[:255]}
                await self.record(
                    Move(
                        message.id,
                        Status.FAILED,
                        detail[:255],
                        code,
                        values,
                        also=_parts(message, Status.FAILED, detail, code, values),
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
        # A merged text's parts (docs/merging.md): sent with it, each its own body; the lead
        # records what the text cost, the parts 0 segments, so a sum over messages is the bill.
        parts = _parts(
            message,
            status,
            f"accepted as {accepted.status}",
            None,
            {"sent_at": now, "lease_until": None, "encoding": sent.segments.encoding},
        )
        parts = tuple(
            replace(m, values={**m.values, "body": sent.parts[m.message_id], "segments": 0})
            for m in parts
        )
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
                also=parts,
            )
        )
        self.metrics.lateness.observe(max(0.0, (now - message.send_at).total_seconds()))
        log.info(
            "message sent", extra={"message_id": message.id, "late_ms": _ms(now - message.send_at)}
        )

    async def retry(self, message: Claim, *, detail: str, code: int | None) -> None:
        """Scheduled again after a backoff, or expired when the retry would come too late. A
        merged text's parts are retried with it, each due again at the same time (merged
        again then), or expired by its own expiry."""
        due = self.clock.now() + self.backoff(message.attempts)
        moves = [self._retry_move(m, due, detail, code) for m in (message, *message.parts)]
        lead, parts = (
            moves[0],
            tuple(
                replace(m, detail=f"merged into {message.id}: {m.detail}"[:255]) for m in moves[1:]
            ),
        )
        moved = await self.record(replace(lead, also=parts))
        if moved and any(m.to == Status.SCHEDULED for m in moves):
            self.rearm(due)

    @staticmethod
    def _retry_move(message: Claim, due: datetime, detail: str, code: int | None) -> Move:
        if due >= message.expires_at:
            return Move(
                message.id,
                Status.EXPIRED,
                f"{detail[:180]}; no retry before expiry",
                code,
                {"reason": reasons.EXPIRED_WHILE_RETRYING, "lease_until": None},
            )
        return Move(
            message.id,
            Status.SCHEDULED,
            f"{detail[:180]}; retry at {due.isoformat()}",
            code,
            {"due_at": due, "lease_until": None, "merged_into": None},
        )

    async def hold(self, message: Claim, *, detail: str, code: int | None) -> None:
        """Maybe sent: the claim kept one more lease, then reconciled (a merged text's parts
        held with it, and reconciled with it)."""
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
                also=_parts(message, Status.SENDING, detail[:160], code, {"lease_until": until}),
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


def _parts(
    message: Claim, to: Status, detail: str, code: int | None, values: Mapping[str, Any]
) -> tuple[Move, ...]:
    """The same move for each message merged into `message`, its history naming the lead."""
    return tuple(
        Move(part.id, to, f"merged into {message.id}: {detail}"[:255], code, dict(values))
        for part in message.parts
    )


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)
