"""Message rows from the configured protocols; the pure planner (`protocols.plan`) does the timing.

Shared by the event that plans a treatment (`ingest`) and the corrections that re-plan one
(`amend`), so that a re-planned message is built exactly as the first plan built it.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from service import protocols
from service.config import ClinicSettings, Settings, zone
from service.errors import FieldError, Unprocessable
from service.models import Message, Patient, Status, Treatment
from service.payloads import TreatmentIn

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
        clinic = self.settings.clinics[clinic_id]
        return protocols.plan(
            self.protocol(treatment.protocol, clinic),
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


def message_row(
    clinic_id: str,
    treatment: Treatment,
    patient: Patient,
    planned: protocols.PlannedMessage,
    *,
    reason: str | None,
    now: datetime,
) -> Message:
    """One planned message as a new row: scheduled, suppressed (`reason`), or expired."""
    status, why = Status.SCHEDULED, reason
    if reason is not None:
        status = Status.SUPPRESSED
    elif planned.expires_at <= now:
        status, why = Status.EXPIRED, "its time had passed when the event arrived"
    return Message(
        id="msg_" + secrets.token_hex(12),
        clinic_id=clinic_id,
        treatment_id=row_id(treatment.id),
        patient_id=row_id(patient.id),
        step=planned.step,
        kind=planned.kind,
        seq=planned.seq,
        phone=patient.phone,
        locale=planned.locale,
        body=planned.body,
        send_at=planned.send_at,
        due_at=planned.send_at,
        expires_at=planned.expires_at,
        status=status,
        reason=why,
        updated_at=now,
    )


def row_id(value: int | None) -> int:
    """The primary key of a row that has been flushed."""
    assert value is not None, "row was flushed"
    return value
