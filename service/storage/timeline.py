"""The console's patient queries (contract §16): one patient of a clinic and everything stored about
them, and the search across a staff account's clinics. Each by an index: the patient by
(clinic_id, external_id), messages by patient_id, history and escalations by message_id,
replies by phone, appointments by patient_id, opt-outs by their keys."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import sqlalchemy as sa
from sqlmodel import Session, col, select

from service.storage.appointments import Appointment
from service.storage.conversation_tables import Escalation, KindOptOut
from service.storage.models import Inbound, Message, MessageHistory, OptOut, Patient


def patient(s: Session, clinic_id: str, external_id: str) -> Patient | None:
    """The clinic's patient with this id, if any."""
    query = select(Patient).where(
        Patient.clinic_id == clinic_id, Patient.external_id == external_id
    )
    return s.exec(query).first()


def messages(s: Session, patient_id: int) -> Sequence[Message]:
    """The patient's messages, by `send_at`."""
    query = select(Message).where(Message.patient_id == patient_id)
    return s.exec(query.order_by(col(Message.send_at), col(Message.id))).all()


def history(s: Session, message_ids: Collection[str]) -> Sequence[MessageHistory]:
    """The status history of these messages, in order."""
    query = select(MessageHistory).where(col(MessageHistory.message_id).in_(list(message_ids)))
    return s.exec(query.order_by(col(MessageHistory.at), col(MessageHistory.id))).all()


def escalations(s: Session, message_ids: Collection[str]) -> Sequence[Escalation]:
    """The escalations of these (check-in) messages."""
    query = select(Escalation).where(col(Escalation.message_id).in_(list(message_ids)))
    return s.exec(query.order_by(col(Escalation.opened_at))).all()


def replies(s: Session, found: Patient) -> Sequence[Inbound]:
    """The patient's texts to the clinic: those recorded as theirs, and keywords or texts of
    their number recorded as no one's (STOP, START, a text before replies named patients)."""
    mine = col(Inbound.patient_id) == found.id
    theirs = sa.and_(col(Inbound.patient_id).is_(None), col(Inbound.phone) == found.phone)
    query = select(Inbound).where(
        col(Inbound.clinic_id) == found.clinic_id, sa.or_(mine, theirs), Inbound.phone != ""
    )
    return s.exec(query.order_by(col(Inbound.received_at), col(Inbound.id))).all()


def appointments(s: Session, patient_id: int) -> Sequence[Appointment]:
    """The patient's appointments, by start."""
    query = select(Appointment).where(Appointment.patient_id == patient_id)
    return s.exec(query.order_by(col(Appointment.starts_at))).all()


def opt_outs(s: Session, clinic_id: str, phone: str) -> tuple[OptOut | None, Sequence[KindOptOut]]:
    """The number's opt-out of everything at the clinic, and of kinds."""
    everything = s.get(OptOut, (clinic_id, phone)) if phone else None
    kinds = select(KindOptOut).where(KindOptOut.clinic_id == clinic_id, KindOptOut.phone == phone)
    return everything, s.exec(kinds).all() if phone else []


def search(s: Session, clinic_ids: Collection[str], q: str, *, limit: int) -> Sequence[Patient]:
    """Patients of the clinics whose first name contains `q` (any case), whose clinic id is
    `q`, or whose number ends with `q` (four digits); erased patients never; at most `limit`,
    by first name."""
    text = q.strip()
    pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    matches = [
        sa.func.lower(col(Patient.first_name)).like(pattern, escape="\\"),
        col(Patient.external_id) == text,
    ]
    if len(text) == 4 and text.isdigit():
        matches.append(col(Patient.phone).like("%" + text))
    query = select(Patient).where(
        col(Patient.clinic_id).in_(list(clinic_ids)),
        col(Patient.erased_at).is_(None),
        sa.or_(*matches),
    )
    order = (col(Patient.first_name), col(Patient.clinic_id), col(Patient.external_id))
    return s.exec(query.order_by(*order).limit(limit)).all()
