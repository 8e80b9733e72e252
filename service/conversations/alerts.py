"""The texts to a clinic's on-call numbers about an escalation (contract §10): messages of kind
`alert` in the `message` table, due now, sent by the same claim-and-send path as the patient's
(at most once, history kept) but never held by quiet hours nor stopped by the patient's
opt-out, and without the opt-out footer (vetting lets them through as they are)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from service.config import Settings
from service.observability.masking import mask_phones
from service.planning.timing import zone
from service.storage import store
from service.storage.conversation_tables import Escalation
from service.storage.inbound_rows import PHOTO
from service.storage.message_rows import new_message_ids
from service.storage.models import (
    ALERT,
    Message,
    MessageHistory,
    Patient,
    Status,
    Treatment,
    row_id,
)
from service.storage.transactions import Session

EXCERPT = 120  # characters of the reply an alert quotes


class About(Protocol):
    """What an alert names: the patient, and the treatment whose check-in was answered."""

    @property
    def treatment(self) -> Treatment: ...
    @property
    def patient(self) -> Patient: ...


def excerpt(text: str) -> str:
    """The reply as an alert quotes it: one line, numbers in it masked, ≤ 120 characters."""
    line = mask_phones(" ".join(text.split()))
    return line if len(line) <= EXCERPT else line[: EXCERPT - 1] + "…"


def day_of(treatment: Treatment, patient: Patient, *, now: datetime) -> int:
    """Local days since the treatment day (day 0), in the patient's time zone."""
    tz = zone(patient.timezone)
    return (now.astimezone(tz).date() - treatment.completed_at.astimezone(tz).date()).days


def text(
    settings: Settings, escalation: Escalation, about: About, *, now: datetime, reminder: bool
) -> str:
    """An alert: first name and last four digits only, treatment, protocol and day, level,
    the reply, and the code that acknowledges it."""
    clinic = settings.clinics[escalation.clinic_id]
    t, p = about.treatment, about.patient
    head = "REMINDER, still open" if reminder else "Aftercare alert"
    ack = f"ACK {escalation.code}" if escalation.code else "ACK"  # none before revision 0008
    photo = " A photo came: see it in the console." if escalation.level == PHOTO else ""
    return (
        f"{clinic.name} {head}: {escalation.level.upper()} reply from {p.first_name} "
        f"(phone ending {p.phone[-4:]}), treatment {t.external_id}, {t.protocol} "
        f'day {day_of(t, p, now=now)}: "{excerpt(escalation.reply)}"{photo} '
        f"Reply {ack} when handled."
    )


def add(
    s: Session,
    settings: Settings,
    escalation: Escalation,
    about: About,
    *,
    now: datetime,
    reminder: bool = False,
) -> list[datetime]:
    """One alert to each on-call number, due now; the instants to arm (none without numbers).

    Filed under the patient's treatment, step = the escalation's id, seq = the number's place
    (after the first round's for a reminder), so that one escalation's alerts are unique."""
    clinic = settings.clinics[escalation.clinic_id]
    numbers: Sequence[str] = clinic.on_call_numbers
    body = text(settings, escalation, about, now=now, reminder=reminder)
    detail = f"{'reminder' if reminder else 'alert'} of escalation {escalation.id}"
    first = len(numbers) if reminder else 0
    ids = new_message_ids(now, len(numbers))
    for seq, (number, message_id) in enumerate(zip(numbers, ids, strict=True), start=first):
        row = _row(settings, escalation, about, message_id, number, seq=seq, now=now)
        history = MessageHistory(
            message_id=message_id, at=now, status=Status.SCHEDULED, detail=detail
        )
        store.add(s, Message(**row, body=body), history)
    return [now] if numbers else []


def _row(
    settings: Settings,
    escalation: Escalation,
    about: About,
    message_id: str,
    number: str,
    *,
    seq: int,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": message_id,
        "clinic_id": escalation.clinic_id,
        "treatment_id": row_id(about.treatment.id),
        "patient_id": row_id(about.patient.id),
        "step": escalation.id,
        "kind": ALERT,
        "seq": seq,
        "phone": number,
        "locale": settings.clinics[escalation.clinic_id].locale,
        "send_at": now,
        "due_at": now,
        "expires_at": now + settings.scheduler.default_expires_after,
        "status": Status.SCHEDULED,
        "updated_at": now,
    }
