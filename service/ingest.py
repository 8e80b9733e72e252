"""Events from clinic systems → stored plans. One transaction per event; replays answer again.

Idempotency rests on unique constraints (clinic + webhook id, clinic + treatment id), not on
check-then-insert: a race between two deliveries of one event ends in one plan.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from service import protocols, store
from service.clock import Clock
from service.config import ClinicSettings, Settings, zone
from service.errors import Conflict, FieldError, Unprocessable
from service.models import Event, Message, Patient, Status, Treatment
from service.payloads import (
    PatientIn,
    PatientUpdated,
    TreatmentCancelled,
    TreatmentCompleted,
    TreatmentIn,
    parse_event,
)
from service.views import planned_view, treatment_view

FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class Reply:
    """An event's answer: status, JSON body, and the messages now due to be armed."""

    status: int
    body: str
    due: Sequence[tuple[str, datetime]] = field(default=())


class Ingest:
    """Turns verified event bodies into stored plans."""

    def __init__(
        self, *, settings: Settings, sessions: async_sessionmaker[AsyncSession], clock: Clock
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock
        self.planner = Planner(settings)

    async def handle(self, clinic_id: str, webhook_id: str, raw: bytes) -> Reply:
        """Store the event's effect and return its answer; replays return the first answer."""
        digest = hashlib.sha256(raw).hexdigest()
        try:
            return await self._once(clinic_id, webhook_id, raw, digest)
        except IntegrityError:
            # Another delivery of the same event or treatment won the race: answer as a replay.
            return await self._once(clinic_id, webhook_id, raw, digest)

    async def _once(self, clinic_id: str, webhook_id: str, raw: bytes, digest: str) -> Reply:
        async with self.sessions.begin() as s:
            previous = await store.find_event(s, clinic_id, webhook_id)
            if previous is not None:
                if previous.body_sha256 != digest:
                    raise Conflict("this webhook-id was already used with a different body")
                return Reply(200, previous.response)
            event = parse_event(raw)
            reply = await self._apply(s, clinic_id, webhook_id, event)
            s.add(
                Event(
                    clinic_id=clinic_id,
                    webhook_id=webhook_id,
                    body_sha256=digest,
                    type=event.type,
                    status_code=reply.status,
                    response=reply.body,
                    received_at=self.clock.now(),
                )
            )
            return reply

    async def _apply(
        self,
        s: AsyncSession,
        clinic_id: str,
        webhook_id: str,
        event: TreatmentCompleted | TreatmentCancelled | PatientUpdated,
    ) -> Reply:
        if isinstance(event, TreatmentCompleted):
            return await self._completed(s, clinic_id, webhook_id, event)
        raise Unprocessable(
            f"event type {event.type} is not supported yet",
            errors=[FieldError("type", "only treatment.completed is supported")],
        )

    async def _completed(
        self, s: AsyncSession, clinic_id: str, webhook_id: str, event: TreatmentCompleted
    ) -> Reply:
        now = self.clock.now()
        data = event.data
        self.planner.check(data.treatment, now=now)
        existing = await store.find_treatment(s, clinic_id, data.treatment.id)
        if existing is not None:
            return await _existing_plan(s, webhook_id, event.type, existing)
        clinic = self.settings.clinics[clinic_id]
        patient = await _upsert_patient(
            s, clinic_id, data.patient, zone_name=clinic.timezone, now=now
        )
        treatment = Treatment(
            clinic_id=clinic_id,
            external_id=data.treatment.id,
            patient_id=_id(patient.id),
            protocol=data.treatment.protocol,
            completed_at=data.treatment.completed_at,
            session_number=data.treatment.session_number,
            sessions_planned=data.treatment.sessions_planned,
            serum=data.treatment.serum
            or self.settings.protocols[data.treatment.protocol].default_serum,
            created_at=now,
        )
        s.add(treatment)
        await s.flush()
        reason = await _suppression(s, clinic_id, patient)
        messages = self.planner.messages(clinic_id, treatment, patient, reason=reason, now=now)
        await store.add_messages(s, messages, now=now)
        body = _answer(webhook_id, event.type, treatment, patient, messages)
        due = [(m.id, m.due_at) for m in messages if m.status == Status.SCHEDULED]
        return Reply(202, body, due)


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
        clinic = self.settings.clinics[clinic_id]
        planned = protocols.plan(
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
        return [_row(clinic_id, treatment, patient, p, reason=reason, now=now) for p in planned]


def _row(
    clinic_id: str,
    treatment: Treatment,
    patient: Patient,
    planned: protocols.PlannedMessage,
    *,
    reason: str | None,
    now: datetime,
) -> Message:
    status, why = Status.SCHEDULED, reason
    if reason is not None:
        status = Status.SUPPRESSED
    elif planned.expires_at <= now:
        status, why = Status.EXPIRED, "its time had passed when the event arrived"
    return Message(
        id="msg_" + secrets.token_hex(12),
        clinic_id=clinic_id,
        treatment_id=_id(treatment.id),
        patient_id=_id(patient.id),
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


def _id(value: int | None) -> int:
    assert value is not None, "row was flushed"
    return value


async def _upsert_patient(
    s: AsyncSession, clinic_id: str, data: PatientIn, *, zone_name: str, now: datetime
) -> Patient:
    patient = await store.find_patient(s, clinic_id, data.id)
    if patient is None:
        patient = Patient(
            clinic_id=clinic_id,
            external_id=data.id,
            first_name=data.first_name,
            phone=data.phone,
            timezone=zone_name,
            sms_consent=data.sms_consent,
            updated_at=now,
        )
    patient.first_name, patient.phone = data.first_name, data.phone
    patient.timezone = data.timezone or patient.timezone
    patient.locale = data.locale or patient.locale
    patient.sms_consent, patient.updated_at = data.sms_consent, now
    s.add(patient)
    await s.flush()
    return patient


async def _suppression(s: AsyncSession, clinic_id: str, patient: Patient) -> str | None:
    if not patient.sms_consent:
        return "patient has not consented to SMS"
    if await store.is_opted_out(s, clinic_id, patient.phone):
        return "number opted out (STOP)"
    return None


async def _existing_plan(
    s: AsyncSession, event_id: str, event_type: str, treatment: Treatment
) -> Reply:
    patient = await s.get(Patient, treatment.patient_id)
    assert patient is not None
    messages = await store.messages_of(s, _id(treatment.id))
    return Reply(200, _answer(event_id, event_type, treatment, patient, messages))


def _answer(
    event_id: str,
    event_type: str,
    treatment: Treatment,
    patient: Patient,
    messages: Sequence[Message],
) -> str:
    body: dict[str, Any] = {
        "event_id": event_id,
        "type": event_type,
        "treatment": treatment_view(treatment, patient),
        "messages": [planned_view(m) for m in messages],
    }
    return json.dumps(body)
