"""The escalations' queries: whether a check-in has one open, the
conditional updates that acknowledge and remind (one replica does it, the other finds nothing
left), the counts, and the list the read API pages through, each escalation with its
treatment's and patient's ids in the clinic's system."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from service.storage.conversation_tables import ESCALATION, Escalation, EscalationState
from service.storage.models import Message, Patient, Treatment

E = ESCALATION.c
# An escalation with its treatment's and patient's external ids.
Listed = tuple[Escalation, str, str]

_IS_OPEN = (
    sa.select(E.id)
    .where(E.message_id == sa.bindparam("message"), E.state == EscalationState.OPEN)
    .limit(1)
)
_ACKNOWLEDGE = (
    sa.update(ESCALATION)
    .where(E.id == sa.bindparam("escalation"), E.state == EscalationState.OPEN)
    .values(
        state=EscalationState.ACKNOWLEDGED,
        acknowledged_at=sa.bindparam("at"),
        acknowledged_by=sa.bindparam("by"),
    )
)
_OPEN_COUNT = sa.select(sa.func.count()).where(
    E.clinic_id == sa.bindparam("clinic"), E.state == EscalationState.OPEN
)
_OPEN_STATS = sa.select(sa.func.count(), sa.func.min(E.opened_at)).where(
    E.state == EscalationState.OPEN
)
_REMINDER_DUE = (
    sa.select(E.id)
    .where(E.state == EscalationState.OPEN, E.opened_at <= sa.bindparam("opened_before"))
    .where(E.reminded_at.is_(None))
    .limit(1)
)
_TAKE_REMINDERS = (
    sa.update(ESCALATION)
    .where(
        E.clinic_id == sa.bindparam("clinic"),
        E.state == EscalationState.OPEN,
        E.reminded_at.is_(None),
        E.opened_at <= sa.bindparam("opened_before"),
    )
    .values(reminded_at=sa.bindparam("now"))
    .returning(E.id)
)
_LISTED = (
    select(Escalation, Treatment.external_id, Patient.external_id)
    .join(Message, col(Message.id) == col(Escalation.message_id))
    .join(Treatment, col(Treatment.id) == col(Message.treatment_id))
    .join(Patient, col(Patient.id) == col(Message.patient_id))
)


def get(s: Session, escalation_id: str) -> Escalation | None:
    """The escalation with this id, if any."""
    return s.get(Escalation, escalation_id)


def is_open(s: Session, message_id: str) -> bool:
    """Whether the check-in `message_id` has an escalation still open."""
    return s.connection().execute(_IS_OPEN, {"message": message_id}).first() is not None


def acknowledge(s: Session, escalation_id: str, *, by: str, now: datetime) -> bool:
    """Acknowledge an open escalation; False when it was not open (any more)."""
    values = {"escalation": escalation_id, "at": now, "by": by}
    done = s.connection().execute(_ACKNOWLEDGE, values)
    return bool(done.rowcount)


def open_count(s: Session, clinic_id: str) -> int:
    """How many of the clinic's escalations are open."""
    return int(s.connection().execute(_OPEN_COUNT, {"clinic": clinic_id}).scalar_one())


def open_stats(s: Session) -> tuple[int, datetime | None]:
    """How many escalations are open, across clinics, and when the oldest was opened."""
    count, oldest = s.connection().execute(_OPEN_STATS).one()
    return int(count), oldest


def reminder_due(s: Session, *, opened_before: datetime) -> bool:
    """Whether any escalation opened at or before `opened_before` is open and unreminded."""
    found = s.connection().execute(_REMINDER_DUE, {"opened_before": opened_before})
    return found.first() is not None


def take_reminders(
    s: Session, clinic_id: str, *, opened_before: datetime, now: datetime
) -> list[str]:
    """Mark reminded, now, the clinic's open unreminded escalations opened at or before
    `opened_before`; their ids (a second replica running it at once finds none left)."""
    taken = s.connection().execute(
        _TAKE_REMINDERS, {"clinic": clinic_id, "opened_before": opened_before, "now": now}
    )
    return [row.id for row in taken]


def listed_one(s: Session, escalation_id: str) -> Listed:
    """An escalation with its treatment's and patient's ids, as stored now."""
    escalation, treatment_id, patient_id = s.exec(
        _LISTED.where(col(Escalation.id) == escalation_id)
    ).one()
    return escalation, treatment_id, patient_id


def listed_page(
    s: Session,
    clinic_id: str,
    *,
    state: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[Listed]:
    """Up to `limit` of the clinic's escalations (of `state`), newest first by
    `(opened_at, id)`, those before the position `before` when given."""
    opened = col(Escalation.opened_at)
    where = [col(Escalation.clinic_id) == clinic_id]
    if state is not None:
        where.append(col(Escalation.state) == state)
    if before is not None:
        where.append(sa.tuple_(opened, col(Escalation.id)) < sa.tuple_(*before))
    statement = _LISTED.where(*where).order_by(opened.desc(), col(Escalation.id).desc())
    return [(e, t, p) for e, t, p in s.exec(statement.limit(limit)).all()]
