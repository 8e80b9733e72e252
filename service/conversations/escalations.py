"""Escalations (contract §10): opened by a reply of a level the clinic escalates, with a short code
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

from service.config import Settings
from service.conversations import alerts
from service.conversations.alerts import About
from service.conversations.notices import message_data, notify, reply_data
from service.errors import NotFound
from service.reads import escalations as listed
from service.reads.escalations import EscalationView
from service.storage import escalation_codes, escalation_rows, store
from service.storage.conversation_tables import Escalation, EscalationState, new_escalation_id
from service.storage.models import Message, Patient, Treatment
from service.storage.transactions import Session


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
    store.add(s, escalation)
    data = {
        "message": message_data(checkin.message, checkin.treatment, checkin.patient),
        "reply": reply_data(text, level, now),
        "escalation": {"id": escalation.id, "level": level, "state": escalation.state},
    }
    notify(s, settings, escalation.clinic_id, "checkin.escalated", data, now=now)
    return alerts.add(s, settings, escalation, checkin, now=now)


def subject(s: Session, escalation: Escalation) -> Subject:
    """What the escalation is about, as stored now."""
    message = store.message(s, escalation.message_id)
    assert message is not None, "an escalation has its check-in"
    return Subject(message, *store.treatment_and_patient(s, message))


def acknowledge(
    s: Session, clinic_id: str, escalation_id: str, *, by: str, now: datetime
) -> EscalationView:
    """The API's acknowledgement: the escalation as it then stands (acknowledging it again
    changes nothing); NotFound for another clinic's or an unknown id."""
    found = escalation_rows.get(s, escalation_id)
    if found is None or found.clinic_id != clinic_id:
        raise NotFound("this clinic has no escalation with that id")
    if escalation_rows.acknowledge(s, escalation_id, by=by[:100], now=now):
        store.refresh(s, found)
    return listed.one(s, escalation_id)


def new_code(taken: Collection[str]) -> str:
    """A code no open escalation of the clinic has (`ACK 4821`): four digits without a
    leading zero, so that it reads as typed; six once thousands are open."""
    low, span = (1000, 9000) if len(taken) < 4500 else (100000, 900000)
    while (code := str(low + secrets.randbelow(span))) in taken:
        pass
    return code


def reminder_due(s: Session, settings: Settings, *, now: datetime) -> bool:
    """Whether any escalation is open, unreminded, and older than the shortest reminder (a
    read, so that the periodic job writes only when there is something to do)."""
    shortest = min(c.escalation_reminder for c in settings.clinics.values())
    return escalation_rows.reminder_due(s, opened_before=now - shortest)


def remind(s: Session, settings: Settings, *, now: datetime) -> list[datetime]:
    """Alert the on-call numbers once more for each escalation still open after the clinic's
    `escalation_reminder`, once: `reminded_at` is set by a conditional UPDATE … RETURNING,
    which a second replica running it at once finds nothing left to take."""
    due: list[datetime] = []
    for clinic_id, clinic in settings.clinics.items():
        opened_before = now - clinic.escalation_reminder
        taken = escalation_rows.take_reminders(s, clinic_id, opened_before=opened_before, now=now)
        for escalation_id in taken:
            escalation = escalation_rows.get(s, escalation_id)
            assert escalation is not None
            about: About = subject(s, escalation)
            due += alerts.add(s, settings, escalation, about, now=now, reminder=True)
    return due
