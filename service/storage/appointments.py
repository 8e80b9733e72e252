"""Appointments of a series (contract §13) and the messages they planned: tables and queries, each
query a plain function of a sync `Session` (run whole by `transactions.Transactions`).

A message an appointment planned is a `message` row like any other, linked to the patient's
treatment the series comes from (so the read API's lists, the claim's vetting and the
treatment's cancellation see it as they see the rest of the plan), and to its appointment by
an `appointment_message` row saying what planned it and from which anchor:

- `prep`: a prep step, planned from the appointment's `starts_at`;
- `rebook`: the protocol's rebook step planned again, from the appointment's cancellation.

`seq` numbers a step's messages within the treatment: a plan made again (a second
appointment's prep, a rebook planned after a cancellation) continues the numbering, so the
unique (treatment, step, seq) keeps guarding against a plan stored twice. The occurrence
within the appointment's own plan is the link's `occurrence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, col, select

from service.storage.models import Message, Status, Treatment, UTCDateTime


class AppointmentState(StrEnum):
    """Where an appointment stands."""

    BOOKED = "booked"
    CANCELLED = "cancelled"


class Role(StrEnum):
    """What an appointment planned a message as."""

    PREP = "prep"  # a prep step, from `starts_at`
    REBOOK = "rebook"  # the rebook step again, from the cancellation


class Appointment(SQLModel, table=True):
    """A session of a series the clinic booked, and the treatment its series comes from."""

    __table_args__ = (sa.UniqueConstraint("clinic_id", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    clinic_id: str = Field(max_length=64)
    external_id: str = Field(max_length=128)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    treatment_id: int = Field(foreign_key="treatment.id", index=True)
    protocol: str = Field(max_length=64)
    session_number: int
    starts_at: datetime = Field(sa_type=UTCDateTime())
    state: str = Field(max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime())
    updated_at: datetime = Field(sa_type=UTCDateTime(), index=True)  # retention prunes by age
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class AppointmentMessage(SQLModel, table=True):
    """A message an appointment planned: as what, and which occurrence of its step."""

    __tablename__ = "appointment_message"
    __table_args__ = (sa.UniqueConstraint("appointment_id", "role", "step", "occurrence"),)

    message_id: str = Field(primary_key=True, foreign_key="message.id", max_length=32)
    appointment_id: int = Field(foreign_key="appointment.id")  # the unique index serves it
    role: str = Field(max_length=16)
    step: str = Field(max_length=64)
    occurrence: int


Linked = tuple[Message, AppointmentMessage]


def appointment(s: Session, appointment_id: int) -> Appointment | None:
    """The appointment with this row id, if any."""
    return s.get(Appointment, appointment_id)


def find_appointment(s: Session, clinic_id: str, external_id: str) -> Appointment | None:
    """The clinic's appointment with this id, if any."""
    query = select(Appointment).where(
        Appointment.clinic_id == clinic_id, Appointment.external_id == external_id
    )
    return s.exec(query).first()


def latest_treatment(s: Session, patient_id: int) -> Treatment | None:
    """The patient's latest treatment still in force (not cancelled), else their latest."""
    query = (
        select(Treatment)
        .where(Treatment.patient_id == patient_id)
        .order_by(
            col(Treatment.cancelled_at).is_(None).desc(),
            col(Treatment.completed_at).desc(),
            col(Treatment.id).desc(),
        )
    )
    return s.exec(query).first()


def scheduled_of_kind(s: Session, clinic_id: str, patient_id: int, kind: str) -> list[Message]:
    """The patient's messages of one kind at the clinic still waiting to be sent."""
    query = (
        select(Message)
        .where(
            Message.clinic_id == clinic_id,
            Message.patient_id == patient_id,
            Message.kind == kind,
            Message.status == Status.SCHEDULED,
        )
        .order_by(col(Message.send_at), col(Message.id))
    )
    return list(s.exec(query).all())


def linked_messages(s: Session, appointment_id: int, role: Role | None = None) -> list[Linked]:
    """An appointment's messages (of one role, or all) with their links, in send order."""
    query = (
        select(Message, AppointmentMessage)
        .join(AppointmentMessage, col(AppointmentMessage.message_id) == col(Message.id))
        .where(AppointmentMessage.appointment_id == appointment_id)
        .order_by(col(Message.send_at), col(Message.step), col(Message.seq))
        .execution_options(populate_existing=True)
    )
    if role is not None:
        query = query.where(AppointmentMessage.role == role)
    return [(m, link) for m, link in s.exec(query).all()]


def linked_ids(s: Session, message_ids: Sequence[str]) -> dict[str, AppointmentMessage]:
    """The links of those of these messages an appointment planned, by message id."""
    if not message_ids:
        return {}
    query = select(AppointmentMessage).where(col(AppointmentMessage.message_id).in_(message_ids))
    return {link.message_id: link for link in s.exec(query).all()}


def next_seqs(s: Session, treatment_id: int) -> dict[str, int]:
    """For each step with messages of the treatment, the next free `seq`."""
    query = (
        select(Message.step, sa.func.max(Message.seq))
        .where(Message.treatment_id == treatment_id)
        .group_by(col(Message.step))
    )
    return {step: int(top) + 1 for step, top in s.exec(query).all()}


def booked_ahead(s: Session, patient_id: int, *, now: datetime) -> bool:
    """Whether the patient has a booked appointment still to come."""
    query = select(Appointment.id).where(
        Appointment.patient_id == patient_id,
        Appointment.state == AppointmentState.BOOKED,
        col(Appointment.starts_at) > now,
    )
    return s.exec(query.limit(1)).first() is not None


def booked_of_treatment(s: Session, treatment_id: int) -> list[Appointment]:
    """The booked appointments of a treatment's series."""
    query = (
        select(Appointment)
        .where(
            Appointment.treatment_id == treatment_id,
            Appointment.state == AppointmentState.BOOKED,
        )
        .order_by(col(Appointment.starts_at))
    )
    return list(s.exec(query).all())


def of_patient(s: Session, patient_id: int) -> list[Appointment]:
    """A patient's appointments, soonest first."""
    query = (
        select(Appointment)
        .where(Appointment.patient_id == patient_id)
        .order_by(col(Appointment.starts_at), col(Appointment.id))
    )
    return list(s.exec(query).all())
