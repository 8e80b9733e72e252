"""The queries of `store` the series' events need, as plain functions of a sync `Session`.

`store` is being converted to sync functions run through `transactions.Transactions`; until
it is, the appointment events (written that way from the start) read and move rows through
these, which say the same in the same SQL. Once `store` is sync they go, for its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from service.storage.models import (
    Event,
    Message,
    MessageHistory,
    OptOut,
    Patient,
    Status,
    Treatment,
)


def find_event(s: Session, clinic_id: str, webhook_id: str) -> Event | None:
    """The event stored under this clinic's webhook id, if any."""
    query = select(Event).where(Event.clinic_id == clinic_id, Event.webhook_id == webhook_id)
    return s.exec(query).first()


def find_patient(s: Session, clinic_id: str, external_id: str) -> Patient | None:
    """The clinic's patient with this id, if any."""
    query = select(Patient).where(
        Patient.clinic_id == clinic_id, Patient.external_id == external_id
    )
    return s.exec(query).first()


def find_treatment(s: Session, clinic_id: str, external_id: str) -> Treatment | None:
    """The clinic's treatment with this id, if any."""
    query = select(Treatment).where(
        Treatment.clinic_id == clinic_id, Treatment.external_id == external_id
    )
    return s.exec(query).first()


def is_opted_out(s: Session, clinic_id: str, phone: str) -> bool:
    """Whether this number said STOP to this clinic (and not START since)."""
    query = select(OptOut).where(OptOut.clinic_id == clinic_id, OptOut.phone == phone)
    return s.exec(query).first() is not None


def messages_of(s: Session, treatment_id: int) -> list[Message]:
    """A treatment's messages in plan order."""
    query = (
        select(Message)
        .where(Message.treatment_id == treatment_id)
        .order_by(col(Message.send_at), col(Message.step), col(Message.seq))
        .execution_options(populate_existing=True)
    )
    return list(s.exec(query).all())


def messages_by_id(s: Session, message_ids: Sequence[str]) -> list[Message]:
    """These messages as stored now, in plan order."""
    if not message_ids:
        return []
    query = (
        select(Message)
        .where(col(Message.id).in_(message_ids))
        .order_by(col(Message.send_at), col(Message.step), col(Message.seq))
        .execution_options(populate_existing=True)
    )
    return list(s.exec(query).all())


def history_of(s: Session, message_ids: Sequence[str]) -> dict[str, list[MessageHistory]]:
    """Each message's history, oldest first."""
    found: dict[str, list[MessageHistory]] = {m: [] for m in message_ids}
    if not message_ids:
        return found
    query = (
        select(MessageHistory)
        .where(col(MessageHistory.message_id).in_(message_ids))
        .order_by(col(MessageHistory.id))
    )
    for row in s.exec(query).all():
        found[row.message_id].append(row)
    return found


def add_messages(s: Session, messages: Iterable[Message], *, now: datetime) -> None:
    """Insert planned messages, each with its first history entry."""
    for message in messages:
        s.add(message)
        s.add(
            MessageHistory(
                message_id=message.id, at=now, status=message.status, detail=message.reason
            )
        )
    s.flush()


def move(
    s: Session,
    message_id: str,
    *,
    to: Status,
    now: datetime,
    allowed_from: Sequence[Status],
    detail: str | None = None,
    values: dict[str, Any] | None = None,
) -> bool:
    """Move a message from one of `allowed_from` to `to`; False when it was elsewhere."""
    stmt = (
        sa.update(Message)
        .where(col(Message.id) == message_id, col(Message.status).in_(allowed_from))
        .values(status=to, updated_at=now, **(values or {}))
    )
    if s.exec(stmt).rowcount == 0:
        return False
    s.add(MessageHistory(message_id=message_id, at=now, status=to, detail=detail))
    return True


def end_scheduled(
    s: Session, message_id: str, status: Status, reason: str, *, source: str, now: datetime
) -> bool:
    """Move a still-scheduled message to `status` for `reason`; whether it was scheduled."""
    return move(
        s,
        message_id,
        to=status,
        now=now,
        allowed_from=[Status.SCHEDULED],
        detail=f"{reason} ({source})",
        values={"reason": reason},
    )
