"""The claim protocol's queries, in batches (DESIGN invariant 3).

A claim is one conditional UPDATE … RETURNING over the due rows: on PostgreSQL the rows are
picked with FOR UPDATE SKIP LOCKED, so replicas claiming at once split them; on SQLite the
write lock taken at BEGIN makes the claimer the only writer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.models import Message, MessageHistory, OptOut, Patient, Status, Treatment

EXPIRED_REASON = "could not be sent before its expiry"
REACHED = (Status.SENDING, Status.SENT, Status.DELIVERED, Status.UNDELIVERED)
# A timer may fire a hair before its instant; rows due within this are claimed with it.
EARLY = timedelta(milliseconds=5)

Pair = tuple[str, str]


async def expire_due(s: AsyncSession, *, now: datetime) -> list[str]:
    """Mark every due scheduled message past its expiry `expired`; their ids."""
    stmt = (
        sa.update(Message)
        # due_at <= now keeps this an index range scan however many rows are pending.
        .where(col(Message.status) == Status.SCHEDULED, col(Message.due_at) <= now,
               col(Message.expires_at) <= now)
        .values(status=Status.EXPIRED, reason=EXPIRED_REASON, updated_at=now)
        .returning(col(Message.id))
    )
    ids = [row[0] for row in (await s.exec(stmt)).all()]
    await _history(s, ids, status=Status.EXPIRED, now=now, detail=EXPIRED_REASON)
    return ids


async def claim_due(
    s: AsyncSession, *, now: datetime, instance: str, lease: timedelta, limit: int
) -> list[Message]:
    """Claim up to `limit` due scheduled messages for `instance`, soonest first."""
    due = (
        select(Message.id)
        .where(col(Message.status) == Status.SCHEDULED, col(Message.due_at) <= now + EARLY)
        .order_by(col(Message.due_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    # The subquery picks (and on PostgreSQL locks) rows still scheduled; checking the status
    # again outside it would only lead SQLite to walk every scheduled row by that index.
    stmt = (
        sa.update(Message)
        .where(col(Message.id).in_(due.scalar_subquery()))
        .values(status=Status.SENDING, claimed_by=instance, claimed_at=now,
                lease_until=now + lease, attempts=col(Message.attempts) + 1, updated_at=now)
        .returning(Message)
        .execution_options(synchronize_session=False)
    )
    claimed = sorted((row[0] for row in (await s.exec(stmt)).all()),
                     key=lambda m: (m.due_at, m.id))
    for message in claimed:
        s.add(MessageHistory(message_id=message.id, at=now, status=Status.SENDING,
                             detail=f"claimed by {instance}, attempt {message.attempts}"))
    return claimed


async def opted_out_among(s: AsyncSession, pairs: Iterable[Pair]) -> set[Pair]:
    """Which (clinic, phone) pairs said STOP."""
    wanted = set(pairs)
    if not wanted:
        return set()
    query = select(OptOut.clinic_id, OptOut.phone).where(
        col(OptOut.phone).in_({phone for _, phone in wanted}))
    return {(c, p) for c, p in (await s.exec(query)).all()} & wanted


async def reached_among(s: AsyncSession, pairs: Iterable[Pair], *,
                        besides: Sequence[str]) -> set[Pair]:
    """Which (clinic, phone) pairs the clinic has already texted (or is texting)."""
    wanted = set(pairs)
    if not wanted:
        return set()
    query = (
        select(Message.clinic_id, Message.phone)
        .where(col(Message.clinic_id).in_({clinic for clinic, _ in wanted}),
               col(Message.phone).in_({phone for _, phone in wanted}),
               col(Message.status).in_(REACHED), col(Message.id).not_in(besides))
        .distinct()
    )
    return {(c, p) for c, p in (await s.exec(query)).all()} & wanted


async def mark_footer(s: AsyncSession, ids: Sequence[str]) -> None:
    """Record that these messages carry the opt-out footer (it is part of what was sent)."""
    if ids:
        await s.exec(sa.update(Message).where(col(Message.id).in_(ids)).values(footer=True)
                     .execution_options(synchronize_session=False))


async def _history(s: AsyncSession, ids: Sequence[str], *, status: Status, now: datetime,
                   detail: str) -> None:
    if ids:
        rows = [{"message_id": i, "at": now, "status": status, "detail": detail} for i in ids]
        await s.exec(sa.insert(MessageHistory), params=rows)


async def standing(s: AsyncSession, ids: Sequence[str]) -> dict[str, tuple[bool, bool, str]]:
    """For each message: whether its treatment is cancelled, whether its patient consents,
    and the patient's phone now — what a correction made while it was in flight changed."""
    if not ids:
        return {}
    query = (
        select(Message.id, Treatment.cancelled_at, Patient.sms_consent, Patient.phone)
        .join(Treatment, col(Treatment.id) == col(Message.treatment_id))
        .join(Patient, col(Patient.id) == col(Message.patient_id))
        .where(col(Message.id).in_(ids))
    )
    return {i: (cancelled is not None, bool(consent), phone)
            for i, cancelled, consent, phone in (await s.exec(query)).all()}
