"""The queries. A status change is conditional and appended to history: `move` for one message
on the ORM paths, `moves.move_many` for the batched ones."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.storage import reasons
from service.storage.models import (
    ALERT,
    Event,
    Message,
    MessageHistory,
    OptOut,
    Patient,
    Status,
    Treatment,
)


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


async def due_instants(
    s: AsyncSession, until: datetime, *, after: datetime | None = None, limit: int
) -> list[datetime]:
    """The distinct instants before `until` (and after `after`) at which scheduled messages
    fall due, soonest first (a single wake-up claims every message due at or before it)."""
    query = (
        select(Message.due_at)
        .where(Message.status == Status.SCHEDULED, col(Message.due_at) <= until)
        .distinct()
        .order_by(col(Message.due_at))
        .limit(limit)
    )
    if after is not None:
        query = query.where(col(Message.due_at) > after)
    return list((await s.exec(query)).all())


async def stale_claims(s: AsyncSession, now: datetime, *, limit: int) -> list[str]:
    """Messages left in `sending` whose lease ran out (a dead or stuck claimer)."""
    query = (
        select(Message.id)
        .where(Message.status == Status.SENDING, col(Message.lease_until) < now)
        .order_by(col(Message.lease_until))
        .limit(limit)
    )
    return list((await s.exec(query)).all())


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
            detail=reasons.OPTED_OUT,
            values={"reason": reasons.OPTED_OUT},
        ):
            cancelled.append(message_id)
    return cancelled


# Clinic corrections and the read API's lists (SPEC §5, §8): every query names its clinic.


async def scheduled_of_patient(s: AsyncSession, patient_id: int) -> list[Message]:
    """A patient's messages still waiting to be sent, by treatment then plan order."""
    query = (
        select(Message)
        .where(
            Message.patient_id == patient_id,
            Message.status == Status.SCHEDULED,
            Message.kind != ALERT,  # to the on-call number: corrections of the patient skip it
        )
        .order_by(col(Message.treatment_id), col(Message.send_at), col(Message.id))
    )
    return list((await s.exec(query)).all())


async def messages_by_id(s: AsyncSession, message_ids: Sequence[str]) -> list[Message]:
    """These messages as stored now, in plan order."""
    if not message_ids:
        return []
    query = (
        select(Message)
        .where(col(Message.id).in_(message_ids))
        .order_by(col(Message.send_at), col(Message.step), col(Message.seq))
        .execution_options(populate_existing=True)
    )
    return list((await s.exec(query)).all())


async def count_by_status(s: AsyncSession) -> dict[str, int]:
    """How many messages are in each status."""
    query = select(Message.status, sa.func.count()).group_by(col(Message.status))
    return {status: int(n) for status, n in (await s.exec(query)).all()}


# One seek into the claim's index on (status, due_at). `due_at`, not `send_at`: a message
# waiting for its retry is not overdue before the retry's time (the failure-ratio alert is
# the one for an outage), and a second index would cost every message insert.
OLDEST_SCHEDULED = select(sa.func.min(Message.due_at)).where(Message.status == Status.SCHEDULED)


async def oldest_scheduled(s: AsyncSession) -> datetime | None:
    """The earliest `due_at` of a scheduled message, or None."""
    return (await s.exec(OLDEST_SCHEDULED)).one()
