"""A patient's whole story as rows, stored at a chosen age, for the retention tests: a
treatment with finished messages (history, a kept status callback), a check-in and its
escalation, an appointment with its prep message, a reply and the event; and every table's
rows read back by the column that names them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from service.storage.appointments import Appointment, AppointmentMessage
from service.storage.conversation_tables import Escalation
from service.storage.models import (
    Event,
    Inbound,
    Message,
    MessageHistory,
    Patient,
    ProviderStatus,
    Status,
    Treatment,
    row_id,
)

DAY = timedelta(days=1)
LABELS = {  # each table, by the column that names its rows in these tests
    "patient": "external_id",
    "treatment": "external_id",
    "message": "id",
    "message_history": "message_id",
    "provider_status": "provider_id",
    "appointment": "external_id",
    "appointment_message": "message_id",
    "escalation": "id",
    "inbound": "body",
    "event": "webhook_id",
}


def message(tag: str, what: str, status: Status, at: datetime, t: Treatment) -> Message:
    """Message `msg_<tag>_<what>` of treatment `t`, planned and last changed at `at`."""
    return Message(
        id=f"msg_{tag}_{what}",
        clinic_id="glow",
        treatment_id=row_id(t.id),
        patient_id=t.patient_id,
        step=what,
        kind="aftercare",
        seq=0,
        phone="+14155550123",
        locale="en",
        body="Hi Ana, no makeup today.",
        send_at=at,
        due_at=at,
        expires_at=at + DAY,
        status=status,
        updated_at=at,
        provider_id=f"SM{tag}{what}" if status == Status.DELIVERED else None,
    )


def event_row(webhook_id: str, at: datetime) -> Event:
    """The stored copy of a clinic event received at `at`."""
    return Event(
        clinic_id="glow",
        webhook_id=webhook_id,
        body_sha256="0" * 64,
        type="treatment.completed",
        status_code=202,
        response="{}",
        received_at=at,
    )


def patient_world(tag: str, at: datetime) -> Callable[[Session], None]:
    """Patient `pt_<tag>` whose whole story happened at `at`: a treatment with a delivered
    message (history, a kept callback), a cancelled one, a check-in with its escalation, an
    appointment with its expired prep message, a reply and the event that planned it."""

    def work(s: Session) -> None:
        p = Patient(
            clinic_id="glow",
            external_id=f"pt_{tag}",
            first_name="Ana",
            phone="+14155550123",
            timezone="UTC",
            sms_consent=True,
            updated_at=at,
        )
        s.add(p)
        s.flush()
        t = Treatment(
            clinic_id="glow",
            external_id=f"tr_{tag}",
            patient_id=row_id(p.id),
            protocol="mn",
            completed_at=at,
            session_number=1,
            sessions_planned=3,
            serum="serum",
            created_at=at,
        )
        s.add(t)
        s.flush()
        _story(s, tag, at, t)

    return work


def _story(s: Session, tag: str, at: datetime, t: Treatment) -> None:
    sent = message(tag, "delivered", Status.DELIVERED, at, t)
    checkin = message(tag, "checkin", Status.DELIVERED, at, t)
    prep = message(tag, "prep", Status.EXPIRED, at, t)
    s.add_all([sent, checkin, prep, message(tag, "cancelled", Status.CANCELLED, at, t)])
    a = Appointment(
        clinic_id="glow",
        external_id=f"ap_{tag}",
        patient_id=t.patient_id,
        treatment_id=row_id(t.id),
        protocol="mn",
        session_number=2,
        starts_at=at,
        state="booked",
        created_at=at,
        updated_at=at,
    )
    s.add(a)
    s.flush()
    s.add(
        AppointmentMessage(
            message_id=prep.id, appointment_id=row_id(a.id), role="prep", step="prep", occurrence=0
        )
    )
    s.add_all(MessageHistory(message_id=m.id, at=at, status=m.status) for m in (sent, prep))
    s.add(ProviderStatus(provider_id=f"SM{tag}delivered", status="delivered", received_at=at))
    _conversation(s, tag, at, checkin)


def _conversation(s: Session, tag: str, at: datetime, checkin: Message) -> None:
    s.add(
        Escalation(
            id=f"esc_{tag}",
            clinic_id="glow",
            message_id=checkin.id,
            level="urgent",
            reply="swollen",
            opened_at=at,
        )
    )
    s.add(Inbound(clinic_id="glow", phone="+14155550123", body=f"reply {tag}", received_at=at))
    s.add(event_row(f"wh_{tag}", at))


def survivors(s: Session) -> dict[str, set[str]]:
    """Every table's rows, by the column that names them."""
    conn = s.connection()
    return {
        table: set(conn.execute(sa.text(f"SELECT {column} FROM {table}")).scalars())
        for table, column in LABELS.items()
    }


def story_of(tag: str) -> dict[str, set[str]]:
    """What `patient_world(tag, …)` stores, table by table."""
    messages = {f"msg_{tag}_{m}" for m in ("delivered", "checkin", "prep", "cancelled")}
    return {
        "patient": {f"pt_{tag}"},
        "treatment": {f"tr_{tag}"},
        "message": messages,
        "message_history": {f"msg_{tag}_delivered", f"msg_{tag}_prep"},
        "provider_status": {f"SM{tag}delivered"},
        "appointment": {f"ap_{tag}"},
        "appointment_message": {f"msg_{tag}_prep"},
        "escalation": {f"esc_{tag}"},
        "inbound": {f"reply {tag}"},
        "event": {f"wh_{tag}"},
    }
