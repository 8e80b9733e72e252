"""The queries. Every status change goes through `move`: conditional, and appended to history."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import (
    PENDING,
    Event,
    Message,
    MessageHistory,
    OptOut,
    Patient,
    Status,
    Treatment,
)

SENT_STATES = (Status.SENDING, Status.SENT, Status.DELIVERED, Status.UNDELIVERED)


async def find_event(s: AsyncSession, clinic_id: str, webhook_id: str) -> Event | None:
    """The event stored under this clinic's webhook id, if any."""
    query = select(Event).where(Event.clinic_id == clinic_id, Event.webhook_id == webhook_id)
    return (await s.exec(query)).first()


async def find_treatment(s: AsyncSession, clinic_id: str, external_id: str) -> Treatment | None:
    """The clinic's treatment with this id, if any."""
    query = select(Treatment).where(
        Treatment.clinic_id == clinic_id, Treatment.external_id == external_id
    )
    return (await s.exec(query)).first()


async def find_patient(s: AsyncSession, clinic_id: str, external_id: str) -> Patient | None:
    """The clinic's patient with this id, if any."""
    query = select(Patient).where(
        Patient.clinic_id == clinic_id, Patient.external_id == external_id
    )
    return (await s.exec(query)).first()


async def messages_of(s: AsyncSession, treatment_id: int) -> list[Message]:
    """A treatment's messages in plan order."""
    query = (
        select(Message)
        .where(Message.treatment_id == treatment_id)
        .order_by(col(Message.send_at), col(Message.step), col(Message.seq))
    )
    return list((await s.exec(query)).all())


async def history_of(
    s: AsyncSession, message_ids: Sequence[str]
) -> dict[str, list[MessageHistory]]:
    """Each message's history, oldest first."""
    found: dict[str, list[MessageHistory]] = {m: [] for m in message_ids}
    if not message_ids:
        return found
    query = (
        select(MessageHistory)
        .where(col(MessageHistory.message_id).in_(message_ids))
        .order_by(col(MessageHistory.id))
    )
    for row in (await s.exec(query)).all():
        found[row.message_id].append(row)
    return found


async def is_opted_out(s: AsyncSession, clinic_id: str, phone: str) -> bool:
    """Whether this number said STOP to this clinic (and not START since)."""
    query = select(OptOut).where(OptOut.clinic_id == clinic_id, OptOut.phone == phone)
    return (await s.exec(query)).first() is not None


async def add_messages(s: AsyncSession, messages: Iterable[Message], *, now: datetime) -> None:
    """Insert planned messages, each with its first history entry."""
    for message in messages:
        s.add(message)
        s.add(
            MessageHistory(
                message_id=message.id, at=now, status=message.status, detail=message.reason
            )
        )
    await s.flush()


async def move(
    s: AsyncSession,
    message_id: str,
    *,
    to: Status,
    now: datetime,
    allowed_from: Sequence[Status],
    detail: str | None = None,
    code: int | None = None,
    values: dict[str, Any] | None = None,
) -> bool:
    """Move a message from one of `allowed_from` to `to`; False when it was elsewhere."""
    stmt = (
        sa.update(Message)
        .where(col(Message.id) == message_id, col(Message.status).in_(allowed_from))
        .values(status=to, updated_at=now, **(values or {}))
    )
    if (await s.exec(stmt)).rowcount == 0:
        return False
    s.add(MessageHistory(message_id=message_id, at=now, status=to, detail=detail, error_code=code))
    return True


async def expire_if_late(s: AsyncSession, message_id: str, *, now: datetime) -> bool:
    """Mark a scheduled message `expired` if its expiry has passed; whether it did."""
    reason = "could not be sent before its expiry"
    stmt = (
        sa.update(Message)
        .where(
            col(Message.id) == message_id,
            col(Message.status) == Status.SCHEDULED,
            col(Message.expires_at) <= now,
        )
        .values(status=Status.EXPIRED, reason=reason, updated_at=now)
    )
    if (await s.exec(stmt)).rowcount == 0:
        return False
    s.add(MessageHistory(message_id=message_id, at=now, status=Status.EXPIRED, detail=reason))
    return True


async def claim(
    s: AsyncSession, message_id: str, *, now: datetime, instance: str, lease: timedelta
) -> Message | None:
    """Claim a due, scheduled message for this instance: the one atomic gate before a send."""
    stmt = (
        sa.update(Message)
        .where(
            col(Message.id) == message_id,
            col(Message.status) == Status.SCHEDULED,
            col(Message.due_at) <= now + timedelta(seconds=1),
        )
        .values(
            status=Status.SENDING,
            claimed_by=instance,
            claimed_at=now,
            lease_until=now + lease,
            attempts=col(Message.attempts) + 1,
            updated_at=now,
        )
        .returning(Message)
    )
    row = (await s.exec(stmt)).first()
    if row is None:
        return None
    message: Message = row[0]
    s.add(
        MessageHistory(
            message_id=message_id,
            at=now,
            status=Status.SENDING,
            detail=f"claimed by {instance}, attempt {message.attempts}",
        )
    )
    return message


async def has_reached(s: AsyncSession, clinic_id: str, phone: str, *, besides: str) -> bool:
    """Whether the clinic has already sent (or is sending) this number another message."""
    query = select(Message.id).where(
        Message.clinic_id == clinic_id,
        Message.phone == phone,
        col(Message.id) != besides,
        col(Message.status).in_(SENT_STATES),
    )
    return (await s.exec(query.limit(1))).first() is not None


async def due_before(s: AsyncSession, until: datetime, *, limit: int) -> list[tuple[str, datetime]]:
    """Scheduled messages due before `until`, soonest first, as (id, due_at)."""
    query = (
        select(Message.id, Message.due_at)
        .where(Message.status == Status.SCHEDULED, col(Message.due_at) <= until)
        .order_by(col(Message.due_at))
        .limit(limit)
    )
    return [(mid, due) for mid, due in (await s.exec(query)).all()]


async def stale_claims(s: AsyncSession, now: datetime, *, limit: int) -> list[str]:
    """Messages left in `sending` whose lease ran out (a dead or stuck claimer)."""
    query = (
        select(Message.id)
        .where(Message.status == Status.SENDING, col(Message.lease_until) < now)
        .order_by(col(Message.lease_until))
        .limit(limit)
    )
    return list((await s.exec(query)).all())


async def take_over(
    s: AsyncSession, message_id: str, *, now: datetime, instance: str, lease: timedelta
) -> Message | None:
    """Take over a stale claim so that only one instance reconciles it."""
    stmt = (
        sa.update(Message)
        .where(
            col(Message.id) == message_id,
            col(Message.status) == Status.SENDING,
            col(Message.lease_until) < now,
        )
        .values(claimed_by=instance, lease_until=now + lease, updated_at=now)
        .returning(Message)
    )
    row = (await s.exec(stmt)).first()
    return None if row is None else row[0]


async def pending_count(s: AsyncSession) -> int:
    """How many messages are scheduled or being sent."""
    query = select(sa.func.count()).select_from(Message).where(col(Message.status).in_(PENDING))
    return int((await s.exec(query)).one())


async def opt_out(
    s: AsyncSession, clinic_id: str, phone: str, *, now: datetime, source: str
) -> list[str]:
    """Record a STOP for this clinic's number and cancel its pending messages; their ids."""
    if not await is_opted_out(s, clinic_id, phone):
        s.add(OptOut(clinic_id=clinic_id, phone=phone, at=now, source=source))
    query = select(Message.id).where(
        Message.clinic_id == clinic_id, Message.phone == phone, Message.status == Status.SCHEDULED
    )
    cancelled = []
    for message_id in (await s.exec(query)).all():
        if await move(
            s,
            message_id,
            to=Status.CANCELLED,
            now=now,
            allowed_from=[Status.SCHEDULED],
            detail="number opted out (STOP)",
            values={"reason": "number opted out (STOP)"},
        ):
            cancelled.append(message_id)
    return cancelled
