"""Views of stored rows, shared by event answers and the read API.

Each builds the plain dict of its `service.reads.answers` shape (datetimes stay datetimes: the
answer's adapter renders them), so what is rendered is what the OpenAPI document describes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol, cast

from service.observability.masking import mask_phone
from service.reads.answers import (
    AppointmentView,
    HistoryEntry,
    ListedMessage,
    MessageDetail,
    MessageKind,
    PatientView,
    PlanMessage,
    PlannedMessage,
    StatusName,
    TreatmentView,
)
from service.storage.appointments import Appointment
from service.storage.models import Message, MessageHistory, Patient


class TreatmentLike(Protocol):
    """What a treatment's view reads: a stored `Treatment`, or one being inserted."""

    @property
    def external_id(self) -> str: ...
    @property
    def protocol(self) -> str: ...
    @property
    def completed_at(self) -> datetime: ...
    @property
    def session_number(self) -> int: ...
    @property
    def sessions_planned(self) -> int: ...
    @property
    def serum(self) -> str: ...
    @property
    def cancelled_at(self) -> datetime | None: ...


class PlannedLike(Protocol):
    """What a planned message's view reads: a stored `Message`, or one being inserted."""

    @property
    def id(self) -> str: ...
    @property
    def step(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def send_at(self) -> datetime: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str | None: ...


def treatment_view(treatment: TreatmentLike, patient_id: str) -> TreatmentView:
    """A treatment as a clinic system sees it (`patient_id`: the clinic's id of its patient)."""
    return {
        "id": treatment.external_id,
        "protocol": treatment.protocol,
        "completed_at": treatment.completed_at,
        "session_number": treatment.session_number,
        "sessions_planned": treatment.sessions_planned,
        "serum": treatment.serum,
        "patient_id": patient_id,
        "cancelled_at": treatment.cancelled_at,
    }


def planned_view(message: PlannedLike) -> PlannedMessage:
    """A message as the answer to an event lists it."""
    return {
        "id": message.id,
        "step": message.step,
        "kind": cast(MessageKind, message.kind),  # a StepKind's, an alert's or a staff text's
        "send_at": message.send_at,
        "status": cast(StatusName, message.status),
        "reason": message.reason,
    }


def plan_view(message: PlannedLike, merged: Mapping[str, str]) -> PlanMessage:
    """A message of a treatment's plan, as `treatment.completed` answers it: `merged` maps a
    message merging into another's text to that text's first message (`planning.day`)."""
    return {**planned_view(message), "merged_into": merged.get(message.id)}


def message_view(message: Message, history: Sequence[MessageHistory]) -> MessageDetail:
    """A message with its history, phone masked, for the read API."""
    return {
        **planned_view(message),
        "seq": message.seq,
        "to": mask_phone(message.phone),
        "locale": message.locale,
        "expires_at": message.expires_at,
        "sent_at": message.sent_at,
        "provider_id": message.provider_id,
        "error_code": message.error_code,
        "attempts": message.attempts,
        "encoding": message.encoding,
        "segments": message.segments,
        "merged_into": message.merged_into,
        "history": [history_view(h) for h in history],
    }


def history_view(entry: MessageHistory) -> HistoryEntry:
    """One status change."""
    return {
        "at": entry.at,
        "status": cast(StatusName, entry.status),
        "detail": entry.detail,
        "error_code": entry.error_code,
    }


def listed_view(
    message: Message, history: Sequence[MessageHistory], *, treatment_id: str, patient_id: str
) -> ListedMessage:
    """A message in a list, with the clinic's ids of its treatment and patient."""
    return {
        **message_view(message, history),
        "treatment_id": treatment_id,
        "patient_id": patient_id,
    }


def patient_view(patient: Patient) -> PatientView:
    """A patient as a clinic system sees it, phone masked."""
    return {
        "id": patient.external_id,
        "first_name": patient.first_name,
        "phone": mask_phone(patient.phone),
        "timezone": patient.timezone,
        "locale": patient.locale,
        "sms_consent": patient.sms_consent,
    }


def appointment_view(
    appointment: Appointment, *, patient_id: str, treatment_id: str
) -> AppointmentView:
    """An appointment as a clinic system sees it (the clinic's ids of its patient and of the
    treatment its series comes from)."""
    return {
        "id": appointment.external_id,
        "patient_id": patient_id,
        "treatment_id": treatment_id,
        "protocol": appointment.protocol,
        "session_number": appointment.session_number,
        "starts_at": appointment.starts_at,
        "state": "cancelled" if appointment.cancelled_at is not None else "booked",
        "cancelled_at": appointment.cancelled_at,
    }
