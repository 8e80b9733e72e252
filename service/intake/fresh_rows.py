"""A fresh `treatment.completed` event, as the batched write holds it, and what is made from it
before the write: its patient, treatment and event rows and its answer."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.intake.payloads import TreatmentCompleted
from service.planning import protocols
from service.reads.answers import PLAN, PlanAnswer, render
from service.reads.views import plan_view, treatment_view
from service.storage import message_rows
from service.storage.message_rows import NewMessage
from service.storage.models import Status


@dataclass(slots=True)
class NewTreatment:
    """A treatment about to be inserted, as its view and its row read it."""

    external_id: str
    protocol: str
    completed_at: datetime
    session_number: int
    sessions_planned: int
    serum: str
    cancelled_at: datetime | None = None


@dataclass(slots=True)
class Fresh:
    """A verified, parsed `treatment.completed` event, planned as if its patient were new."""

    clinic_id: str
    webhook_id: str
    digest: str
    event: TreatmentCompleted
    treatment: NewTreatment
    timezone: str  # the zone and locale the plan was made for
    locale: str | None
    plan: list[protocols.PlannedMessage]
    now: datetime
    reason: str | None = None  # why its messages are suppressed, as they were built
    messages: list[NewMessage] = field(default_factory=list)
    written: Written | None = None  # the answer, as it will be stored
    rows: list[message_rows.Row] = field(default_factory=list)  # SQLite: `sqlite_rows`
    merged: dict[str, str] = field(default_factory=dict)  # merging into: that text's first
    limited: list[str] = field(default_factory=list)  # other plans' messages the limit skips

    def keys(self) -> tuple[Hashable, ...]:
        """What it touches: two events sharing one of these never go in one batch."""
        data = self.event.data
        return (
            ("event", self.clinic_id, self.webhook_id),
            ("treatment", self.clinic_id, data.treatment.id),
            ("patient", self.clinic_id, data.patient.id),
        )


@dataclass(frozen=True, slots=True)
class Written:
    """A fresh event's answer, and its messages due to be armed."""

    body: str
    due: list[tuple[str, datetime]]


def patient_row(fresh: Fresh) -> dict[str, Any]:
    patient = fresh.event.data.patient
    return {
        "clinic_id": fresh.clinic_id,
        "external_id": patient.id,
        "first_name": patient.first_name,
        "phone": patient.phone,
        "timezone": fresh.timezone,
        "locale": fresh.locale,
        "sms_consent": patient.sms_consent,
        "updated_at": fresh.now,
    }


def treatment_row(fresh: Fresh) -> dict[str, Any]:
    t = fresh.treatment
    return {
        "clinic_id": fresh.clinic_id,
        "external_id": t.external_id,
        "protocol": t.protocol,
        "completed_at": t.completed_at,
        "session_number": t.session_number,
        "sessions_planned": t.sessions_planned,
        "serum": t.serum,
        "created_at": fresh.now,
        "cancelled_at": None,
    }


def written(fresh: Fresh) -> Written:
    body: PlanAnswer = {
        "event_id": fresh.webhook_id,
        "type": fresh.event.type,
        "treatment": treatment_view(fresh.treatment, fresh.event.data.patient.id),
        "messages": [plan_view(m, fresh.merged) for m in fresh.messages],
    }
    due = [(m.id, m.send_at) for m in fresh.messages if m.status == Status.SCHEDULED]
    return Written(render(PLAN, body), due)


def event_row(fresh: Fresh) -> dict[str, Any]:
    assert fresh.written is not None
    written = fresh.written
    return {
        "clinic_id": fresh.clinic_id,
        "webhook_id": fresh.webhook_id,
        "body_sha256": fresh.digest,
        "type": fresh.event.type,
        "status_code": 202,
        "response": written.body,
        "received_at": fresh.now,
        "patient_id": fresh.event.data.patient.id,
    }
