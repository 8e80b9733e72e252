"""The queries. Every status change goes through `move`: conditional, and appended to history."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from itertools import groupby
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.storage import reasons
from service.storage.models import (
    Event,
    Message,
    MessageHistory,
    OptOut,
    Patient,
    Status,
    Treatment,
    sqlite_text,
)
from service.storage.sqlite_driver import insert_rows
from service.storage.tables import HISTORY, MESSAGE
from service.storage.tables import PROVIDER_STATUS as CALLBACKS


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


@dataclass(frozen=True)
class Move:
    """One status change of a message, with what must happen alongside it."""

    message_id: str
    to: Status
    detail: str | None = None
    code: int | None = None
    values: dict[str, Any] = field(default_factory=dict)
    allowed_from: tuple[Status, ...] = (Status.SENDING,)
    provider_id: str | None = None  # a send Twilio accepted: apply its early callbacks
    opt_out: tuple[str, str] | None = None  # (clinic, phone) Twilio says unsubscribed


class Moves(NamedTuple):
    """What `move_many` did."""

    applied: list[bool]  # whether each move applied, in order
    callbacks: bool  # status callbacks may be stored already for a sid a move recorded


async def move_many(conn: AsyncConnection, moves: Sequence[Move], *, now: datetime) -> Moves:
    """`move` for many messages (each at most once) in a few round trips.

    One move is one conditional UPDATE … RETURNING. Many: the rows are read and locked first
    (SQLite: the transaction holds the write lock), so the updates need no condition of their
    own and run as one executemany per set of columns changed."""
    ids = sorted({m.message_id for m in moves})
    assert len(ids) == len(moves), "one move per message in a batch"
    if len(moves) == 1:
        return await _move_one(conn, moves[0], now=now)
    if not moves:
        return Moves([], callbacks=False)
    found = (await conn.execute(_LOCK, {"ids": ids})).all()
    current: dict[str, str] = {i: st for i, st in found}
    applied = [m for m in moves if current.get(m.message_id, "") in m.allowed_from]
    for keys, group in groupby(sorted(applied, key=_columns), key=_columns):
        rows = [{"m_id": m.message_id, "m_to": m.to, "m_now": now,
                 **{f"v_{k}": m.values[k] for k in keys}} for m in group]
        await conn.execute(_update(keys), rows)
    await add_history(conn, [(m.message_id, m.to, m.detail, m.code) for m in applied], now=now)
    moved = {id(m) for m in applied}
    return Moves([id(m) in moved for m in moves],
                 callbacks=any(m.provider_id for m in applied))


async def _move_one(conn: AsyncConnection, move: Move, *, now: datetime) -> Moves:
    params = {"m_id": move.message_id, "m_to": move.to, "m_now": now,
              "m_from": list(move.allowed_from), "m_sid": move.provider_id,
              **{f"v_{k}": v for k, v in move.values.items()}}
    row = (await conn.execute(_update_one(_columns(move), move.provider_id is not None),
                              params)).first()
    if row is None:
        return Moves([False], callbacks=False)
    await add_history(conn, [(move.message_id, move.to, move.detail, move.code)], now=now)
    return Moves([True], callbacks=bool(row[-1]))


def _columns(move: Move) -> tuple[str, ...]:
    return tuple(sorted(move.values))


_LOCK = (select(MESSAGE.c.id, MESSAGE.c.status)
         .where(MESSAGE.c.id.in_(sa.bindparam("ids", expanding=True)))
         .order_by(MESSAGE.c.id).with_for_update())
_ADD_HISTORY = sa.insert(HISTORY)
_HISTORY_COLUMNS = ("message_id", "at", "status", "detail", "error_code")


@cache
def _update(keys: tuple[str, ...]) -> sa.Update:
    """The UPDATE for moves that set these columns, built once (see `claims`)."""
    values = {k: sa.bindparam(f"v_{k}", type_=MESSAGE.c[k].type) for k in keys}
    return (sa.update(MESSAGE).where(MESSAGE.c.id == sa.bindparam("m_id"))
            .values(status=sa.bindparam("m_to"),
                    updated_at=sa.bindparam("m_now", type_=MESSAGE.c.updated_at.type),
                    **values))


@cache
def _update_one(keys: tuple[str, ...], sid: bool) -> sa.Update:
    """The conditional UPDATE for one move that sets these columns; it answers whether status
    callbacks are stored for the sid it records, if it records one (`sid`)."""
    waiting = (sa.exists().where(CALLBACKS.c.provider_id == sa.bindparam("m_sid"))
               if sid else sa.false())
    return (_update(keys)
            .where(MESSAGE.c.status.in_(sa.bindparam("m_from", expanding=True)))
            .returning(MESSAGE.c.id, waiting))


async def add_history(conn: AsyncConnection,
                      entries: Sequence[tuple[str, str, str | None, int | None]], *,
                      now: datetime) -> None:
    """Append (message id, status, detail, error code) entries to history, one round trip."""
    if not entries:
        return
    if conn.dialect.name == "sqlite":
        at = sqlite_text(now)
        await insert_rows(conn, HISTORY.name, _HISTORY_COLUMNS,
                          [(i, at, str(st), d, c) for i, st, d, c in entries])
        return
    await conn.execute(_ADD_HISTORY, [
        {"message_id": i, "at": now, "status": st, "detail": d, "error_code": c}
        for i, st, d, c in entries])


async def due_instants(s: AsyncSession, until: datetime, *, after: datetime | None = None,
                       limit: int) -> list[datetime]:
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
        .where(Message.patient_id == patient_id, Message.status == Status.SCHEDULED)
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
