"""A fresh `treatment.completed` event, as the batched write holds it, and what is made from it
before the write: its patient, treatment and event rows and its answer."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.intake.envelope import Envelope
from service.intake.payloads import TreatmentCompleted
from service.planning import protocols
from service.reads.answers import PLAN, PlanAnswer, render
from service.reads.views import plan_view, treatment_view
from service.storage import message_rows
from service.storage.message_rows import NewMessage
from service.storage.models import Status


@dataclass(frozen=True, slots=True)
class NewTreatment:
    """A treatment about to be inserted, as its view and its row read it."""

    external_id: str
    protocol: str
    completed_at: datetime
    session_number: int
    sessions_planned: int
    serum: str
    cancelled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Fresh:
    """A verified, parsed `treatment.completed` event, planned and built whole: its plan for
    a zone and locale, its messages as rows, and its answer. What the write learns (a stored
    patient's zone, a STOP, the daily limit) makes a new one (`Intake.store`)."""

    envelope: Envelope
    event: TreatmentCompleted
    treatment: NewTreatment
    timezone: str  # the zone and locale the plan was made for
    locale: str | None
    plan: tuple[protocols.PlannedMessage, ...]
    reason: str | None  # why its messages are suppressed, as they were built
    messages: tuple[NewMessage, ...]
    written: Written  # the answer, as it will be stored
    rows: tuple[message_rows.Row, ...] = ()  # `message_rows.made_ahead`
    limited: tuple[str, ...] = ()  # other plans' messages the limit skips

    def keys(self) -> tuple[Hashable, ...]:
        """What it touches: two events sharing one of these never go in one batch."""
        data, envelope = self.event.data, self.envelope
        return (
            ("event", envelope.clinic_id, envelope.webhook_id),
            ("treatment", envelope.clinic_id, data.treatment.id),
            ("patient", envelope.clinic_id, data.patient.id),
        )


@dataclass(frozen=True, slots=True)
class Written:
    """A fresh event's answer, and its messages due to be armed."""

    body: str
    due: list[tuple[str, datetime]]


def patient_row(
    envelope: Envelope, event: TreatmentCompleted, *, timezone: str, locale: str | None
) -> dict[str, Any]:
    """The event's patient as a row, in the zone and locale its plan follows."""
    patient = event.data.patient
    return {
        "clinic_id": envelope.clinic_id,
        "external_id": patient.id,
        "first_name": patient.first_name,
        "phone": patient.phone,
        "timezone": timezone,
        "locale": locale,
        "sms_consent": patient.sms_consent,
        "updated_at": envelope.now,
    }


def treatment_row(fresh: Fresh) -> dict[str, Any]:
    t = fresh.treatment
    return {
        "clinic_id": fresh.envelope.clinic_id,
        "external_id": t.external_id,
        "protocol": t.protocol,
        "completed_at": t.completed_at,
        "session_number": t.session_number,
        "sessions_planned": t.sessions_planned,
        "serum": t.serum,
        "created_at": fresh.envelope.now,
        "cancelled_at": None,
    }


def written(
    envelope: Envelope,
    event: TreatmentCompleted,
    treatment: NewTreatment,
    messages: Sequence[NewMessage],
    merged: Mapping[str, str],
) -> Written:
    """The answer to a fresh event: its treatment and messages (`merged`: a message merging
    into another's text, with that text's first)."""
    body: PlanAnswer = {
        "event_id": envelope.webhook_id,
        "type": event.type,
        "treatment": treatment_view(treatment, event.data.patient.id),
        "messages": [plan_view(m, merged) for m in messages],
    }
    due = [(m.id, m.send_at) for m in messages if m.status == Status.SCHEDULED]
    return Written(render(PLAN, body), due)


def event_row(fresh: Fresh) -> dict[str, Any]:
    envelope = fresh.envelope
    return {
        "clinic_id": envelope.clinic_id,
        "webhook_id": envelope.webhook_id,
        "body_sha256": envelope.digest,
        "type": fresh.event.type,
        "status_code": 202,
        "response": fresh.written.body,
        "received_at": envelope.now,
        "patient_id": fresh.event.data.patient.id,
    }
