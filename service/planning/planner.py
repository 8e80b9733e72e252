"""Message rows from the configured protocols; the pure planner (`protocols.plan`) does the timing.

Shared by the event that plans a treatment (`ingest`) and the corrections that re-plan one
(`amend`), so that a re-planned message is built exactly as the first plan built it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from service.config import ClinicSettings, Settings, zone
from service.errors import FieldError, Unprocessable
from service.intake.payloads import TreatmentIn
from service.planning import protocols
from service.storage.models import Message, Patient, Status, Treatment

FUTURE_TOLERANCE = timedelta(minutes=5)


class Planner:
    """Builds message rows from the configured protocols (the pure planner does the timing)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._protocols: dict[tuple[str, str], protocols.Protocol] = {}

    def check(self, treatment: TreatmentIn, *, now: datetime) -> None:
        """Refuse what cannot be planned: an unknown protocol, a treatment in the future."""
        errors = []
        if treatment.protocol not in self.settings.protocols:
            known = ", ".join(sorted(self.settings.protocols))
            errors.append(
                FieldError(
                    "data.treatment.protocol", f"unknown protocol; this service knows {known}"
                )
            )
        if treatment.completed_at > now + FUTURE_TOLERANCE:
            errors.append(FieldError("data.treatment.completed_at", "is in the future"))
        if errors:
            raise Unprocessable("the treatment cannot be planned", errors=errors)

    def protocol(self, key: str, clinic: ClinicSettings) -> protocols.Protocol:
        """The pure-planning protocol for this clinic's locale, built once."""
        cached = self._protocols.get((key, clinic.locale))
        if cached is None:
            cached = self.settings.protocol(key, locale=clinic.locale)
            self._protocols[(key, clinic.locale)] = cached
        return cached

    def plan(
        self, clinic_id: str, treatment: Treatment, patient: Patient
    ) -> list[protocols.PlannedMessage]:
        """The treatment's plan for the patient as they are now (name, locale, time zone)."""
        return self.plan_for(
            clinic_id,
            treatment.protocol,
            protocols.Treatment(
                completed_at=treatment.completed_at,
                session_number=treatment.session_number,
                sessions_planned=treatment.sessions_planned,
                serum=treatment.serum,
            ),
            protocols.Recipient(
                first_name=patient.first_name,
                timezone=zone(patient.timezone),
                locale=patient.locale,
            ),
        )

    def plan_for(
        self,
        clinic_id: str,
        protocol_key: str,
        treatment: protocols.Treatment,
        recipient: protocols.Recipient,
    ) -> list[protocols.PlannedMessage]:
        """The plan of a protocol for a treatment and a recipient given as plain values."""
        clinic = self.settings.clinics[clinic_id]
        return protocols.plan(
            self.protocol(protocol_key, clinic),
            treatment,
            recipient,
            protocols.ClinicView(
                name=clinic.name, locale=clinic.locale, quiet_hours=clinic.quiet()
            ),
            default_expires_after=self.settings.scheduler.default_expires_after,
        )

    def messages(
        self,
        clinic_id: str,
        treatment: Treatment,
        patient: Patient,
        *,
        reason: str | None,
        now: datetime,
    ) -> list[Message]:
        """The plan's rows: scheduled, or suppressed with `reason`, or expired when too late."""
        return [
            message_row(clinic_id, treatment, patient, p, reason=reason, now=now)
            for p in self.plan(clinic_id, treatment, patient)
        ]


@dataclass(slots=True)
class NewMessage:
    """A planned message about to be inserted, as plain values (no ORM object)."""

    id: str
    clinic_id: str
    treatment_id: int
    patient_id: int
    step: str
    kind: str
    seq: int
    phone: str
    locale: str
    body: str
    send_at: datetime
    expires_at: datetime
    status: Status
    reason: str | None
    updated_at: datetime

    def values(self) -> dict[str, Any]:
        """Its row: every column a new message sets (`due_at` starts at `send_at`)."""
        return {
            "id": self.id, "clinic_id": self.clinic_id, "treatment_id": self.treatment_id,
            "patient_id": self.patient_id, "step": self.step, "kind": self.kind,
            "seq": self.seq, "phone": self.phone, "locale": self.locale, "body": self.body,
            "send_at": self.send_at, "due_at": self.send_at, "expires_at": self.expires_at,
            "status": self.status, "reason": self.reason, "attempts": 0, "footer": False,
            "updated_at": self.updated_at,
        }


def new_message(
    planned: protocols.PlannedMessage,
    *,
    clinic_id: str,
    treatment_id: int,
    patient_id: int,
    phone: str,
    reason: str | None,
    now: datetime,
    message_id: str | None = None,
) -> NewMessage:
    """One planned message as a new row: scheduled, suppressed (`reason`), or expired."""
    status, why = Status.SCHEDULED, reason
    if reason is not None:
        status = Status.SUPPRESSED
    elif planned.expires_at <= now:
        status, why = Status.EXPIRED, "its time had passed when the event arrived"
    return NewMessage(
        message_id or new_message_ids(now, 1)[0], clinic_id, treatment_id, patient_id,
        planned.step, planned.kind, planned.seq, phone, planned.locale, planned.body,
        planned.send_at, planned.expires_at, status, why, now,
    )


def new_message_ids(now: datetime, count: int) -> list[str]:
    """`count` message ids that sort by creation time: their index grows at one end, so
    inserting a plan touches a few pages instead of one per message (`msg_`, then 12 hex
    digits of milliseconds and 12 random ones, drawn in one call for the lot)."""
    stamp = f"msg_{int(now.timestamp() * 1000) & 0xFFFF_FFFF_FFFF:012x}"
    random = secrets.token_hex(6 * count)
    return [stamp + random[12 * i:12 * i + 12] for i in range(count)]


def message_row(
    clinic_id: str,
    treatment: Treatment,
    patient: Patient,
    planned: protocols.PlannedMessage,
    *,
    reason: str | None,
    now: datetime,
) -> Message:
    """One planned message as a new ORM row (see `new_message`)."""
    row = new_message(planned, clinic_id=clinic_id, treatment_id=row_id(treatment.id),
                      patient_id=row_id(patient.id), phone=patient.phone, reason=reason,
                      now=now)
    return Message(**row.values())


def row_id(value: int | None) -> int:
    """The primary key of a row that has been flushed."""
    assert value is not None, "row was flushed"
    return value
