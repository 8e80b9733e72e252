"""Escalations (SPEC §10): opened by a reply of a level the clinic escalates, with a short code
its alerts carry; acknowledged by `ACK [code]` from an on-call number (`acks`) or through the
API; reminded once when nobody did.

Every change is one conditional UPDATE (`state = 'open'`, `reminded_at IS NULL`), so two
replicas acknowledging or reminding at once do it once."""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlmodel import Session

from service.config import Settings
from service.conversations import alerts
from service.conversations.alerts import About
from service.conversations.notices import message_data, notify, reply_data
from service.errors import NotFound
from service.reads import escalations as listed
from service.reads.escalations import EscalationView
from service.storage import escalation_codes
from service.storage.conversation_tables import (
    ESCALATION,
    Escalation,
    EscalationState,
    new_escalation_id,
)
from service.storage.models import Message, Patient, Treatment

E = ESCALATION.c


@dataclass(frozen=True)
class Subject:
    """An escalation's check-in message, treatment and patient."""

    message: Message
    treatment: Treatment
    patient: Patient


class OfCheckin(About, Protocol):
    """A check-in with its treatment and patient (`checkins.Checkin`, `Subject`)."""

    @property
    def message(self) -> Message: ...


def open_one(
    s: Session, settings: Settings, checkin: OfCheckin, *, text: str, level: str, now: datetime
) -> list[datetime]:
    """Open an escalation for a check-in's reply: `checkin.escalated`, and an alert to each
    on-call number; the instants to arm."""
    escalation = Escalation(
        id=new_escalation_id(),
        clinic_id=checkin.message.clinic_id,
        message_id=checkin.message.id,
        level=level,
        reply=text[:1600],
        state=EscalationState.OPEN,
        opened_at=now,
        code=new_code(escalation_codes.open_codes(s.connection(), checkin.message.clinic_id)),
    )
    s.add(escalation)
    data = {
        "message": message_data(checkin.message, checkin.treatment, checkin.patient),
        "reply": reply_data(text, level, now),
        "escalation": {"id": escalation.id, "level": level, "state": escalation.state},
    }
    notify(s, settings, escalation.clinic_id, "checkin.escalated", data, now=now)
    return alerts.add(s, settings, escalation, checkin, now=now)


def is_open(s: Session, message_id: str) -> bool:
    """Whether the check-in `message_id` has an escalation still open."""
    query = sa.select(E.id).where(E.message_id == message_id, E.state == EscalationState.OPEN)
    return s.connection().execute(query.limit(1)).first() is not None


def subject(s: Session, escalation: Escalation) -> Subject:
    """What the escalation is about, as stored now."""
    message = s.get(Message, escalation.message_id)
    assert message is not None, "an escalation has its check-in"
    treatment, patient = s.get(Treatment, message.treatment_id), s.get(Patient, message.patient_id)
    assert treatment is not None and patient is not None, "a message has both"
    return Subject(message, treatment, patient)


def acknowledge_one(s: Session, escalation_id: str, *, by: str, now: datetime) -> bool:
    """Acknowledge an open escalation; False when it was not open (any more)."""
    done = s.connection().execute(
        sa.update(ESCALATION)
        .where(E.id == escalation_id, E.state == EscalationState.OPEN)
        .values(state=EscalationState.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by)
    )
    return bool(done.rowcount)


def acknowledge(
    s: Session, clinic_id: str, escalation_id: str, *, by: str, now: datetime
) -> EscalationView:
    """The API's acknowledgement: the escalation as it then stands (acknowledging it again
    changes nothing); NotFound for another clinic's or an unknown id."""
    found = s.get(Escalation, escalation_id)
    if found is None or found.clinic_id != clinic_id:
        raise NotFound("this clinic has no escalation with that id")
    if acknowledge_one(s, escalation_id, by=by[:100], now=now):
        s.refresh(found)
    return listed.one(s, escalation_id)


def open_count(s: Session, clinic_id: str) -> int:
    """How many of the clinic's escalations are open."""
    query = sa.select(sa.func.count()).where(
        E.clinic_id == clinic_id, E.state == EscalationState.OPEN
    )
    return int(s.connection().execute(query).scalar_one())


def new_code(taken: Collection[str]) -> str:
    """A code no open escalation of the clinic has (`ACK 4821`): four digits without a
    leading zero, so that it reads as typed; six once thousands are open."""
    low, span = (1000, 9000) if len(taken) < 4500 else (100000, 900000)
    while (code := str(low + secrets.randbelow(span))) in taken:
        pass
    return code


_OPEN_STATS = sa.select(sa.func.count(), sa.func.min(E.opened_at)).where(
    E.state == EscalationState.OPEN
)


def open_stats(s: Session) -> tuple[int, datetime | None]:
    """How many escalations are open, across clinics, and when the oldest was opened (for
    /metrics)."""
    count, oldest = s.connection().execute(_OPEN_STATS).one()
    return int(count), oldest


def reminder_due(s: Session, settings: Settings, *, now: datetime) -> bool:
    """Whether any escalation is open, unreminded, and older than the shortest reminder (a
    read, so that the periodic job writes only when there is something to do)."""
    shortest = min(c.escalation_reminder for c in settings.clinics.values())
    query = (
        sa.select(E.id)
        .where(E.state == EscalationState.OPEN, E.opened_at <= now - shortest)
        .where(E.reminded_at.is_(None))
        .limit(1)
    )
    return s.connection().execute(query).first() is not None


def remind(s: Session, settings: Settings, *, now: datetime) -> list[datetime]:
    """Alert the on-call numbers once more for each escalation still open after the clinic's
    `escalation_reminder`, once: `reminded_at` is set by a conditional UPDATE … RETURNING,
    which a second replica running it at once finds nothing left to take."""
    due: list[datetime] = []
    for clinic_id, clinic in settings.clinics.items():
        taken = s.connection().execute(
            sa.update(ESCALATION)
            .where(
                E.clinic_id == clinic_id,
                E.state == EscalationState.OPEN,
                E.reminded_at.is_(None),
                E.opened_at <= now - clinic.escalation_reminder,
            )
            .values(reminded_at=now)
            .returning(E.id)
        )
        for escalation_id in [row.id for row in taken]:
            escalation = s.get(Escalation, escalation_id)
            assert escalation is not None
            about: About = subject(s, escalation)
            due += alerts.add(s, settings, escalation, about, now=now, reminder=True)
    return due
