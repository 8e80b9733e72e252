"""The opt-out rows of STOP and START, of everything or of one word's
kinds, and the cancelling of a number's scheduled messages. A number is matched in all its
`forms` (as stored, and as an erasure kept it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, delete, select

from service.storage.conversation_tables import KindOptOut
from service.storage.models import ALERT, Message, MessageHistory, OptOut, Status


def add(s: Session, clinic_id: str, phone: str, *, now: datetime, source: str) -> None:
    """The number opted out of everything at the clinic."""
    s.add(OptOut(clinic_id=clinic_id, phone=phone, at=now, source=source))


def lift(s: Session, clinic_id: str, forms: Sequence[str]) -> int:
    """Every opt-out of the number at the clinic, of all kinds or some, deleted; how many."""
    return _deleted(
        s,
        delete(OptOut).where(col(OptOut.clinic_id) == clinic_id, col(OptOut.phone).in_(forms)),
    ) + _deleted(
        s,
        delete(KindOptOut).where(
            col(KindOptOut.clinic_id) == clinic_id, col(KindOptOut.phone).in_(forms)
        ),
    )


def kinds_opted_out(s: Session, clinic_id: str, forms: Sequence[str]) -> list[str]:
    """The kinds the number opted out of at the clinic, one word's at a time."""
    query = select(KindOptOut.kind).where(
        KindOptOut.clinic_id == clinic_id, col(KindOptOut.phone).in_(forms)
    )
    return list(s.exec(query).all())


def add_kind(
    s: Session, clinic_id: str, phone: str, *, kind: str, word: str, now: datetime
) -> None:
    """The number opted out of `kind` at the clinic, by `STOP <word>`."""
    s.add(KindOptOut(clinic_id=clinic_id, phone=phone, kind=kind, word=word, at=now))


def lift_kinds(s: Session, clinic_id: str, forms: Sequence[str], kinds: Sequence[str]) -> int:
    """The number's opt-outs of `kinds` at the clinic deleted; how many."""
    return _deleted(
        s,
        delete(KindOptOut).where(
            col(KindOptOut.clinic_id) == clinic_id,
            col(KindOptOut.phone).in_(forms),
            col(KindOptOut.kind).in_(kinds),
        ),
    )


def _deleted(s: Session, statement: sa.Delete) -> int:
    return int(s.exec(statement).rowcount)


def cancel_pending(
    s: Session,
    clinic_id: str,
    phone: str,
    *,
    kinds: Sequence[str] | None,
    reason: str,
    now: datetime,
) -> list[str]:
    """Cancel the number's scheduled messages at the clinic (of `kinds`, or all but alerts);
    each move conditional on the row still being scheduled, and kept in history."""
    query = select(Message.id).where(
        Message.clinic_id == clinic_id,
        Message.phone == phone,
        Message.status == Status.SCHEDULED,
        Message.kind != ALERT,
    )
    if kinds is not None:
        query = query.where(col(Message.kind).in_(kinds))
    ids = list(s.exec(query).all())
    cancelled = []
    for message_id in ids:
        moved = s.exec(
            sa.update(Message)
            .where(col(Message.id) == message_id, col(Message.status) == Status.SCHEDULED)
            .values(status=Status.CANCELLED, reason=reason, updated_at=now)
        )
        if moved.rowcount:
            s.add(
                MessageHistory(
                    message_id=message_id, at=now, status=Status.CANCELLED, detail=reason
                )
            )
            cancelled.append(message_id)
    return cancelled
