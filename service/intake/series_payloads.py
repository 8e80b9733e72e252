"""The payloads of a series' events (contract §13): appointments booked, rescheduled, cancelled,
and a treatment corrected. `payloads.parse_event` validates them with the other events."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from service.intake.fields import Ident, Instant


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class AppointmentIn(_Body):
    id: Ident
    starts_at: Instant
    protocol: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="The protocol whose prep steps to plan; the patient's latest treatment's "
        "when absent",
    )
    session_number: int | None = Field(
        None,
        ge=1,
        le=100,
        description="The session of the series it is for; the latest treatment's next when absent",
    )


class AppointmentRef(_Body):
    id: Ident


class AppointmentMove(_Body):
    id: Ident
    starts_at: Instant


class PatientRef(_Body):
    id: Ident


class BookedData(_Body):
    appointment: AppointmentIn
    patient: PatientRef


class RescheduledData(_Body):
    appointment: AppointmentMove


class AppointmentCancelledData(_Body):
    appointment: AppointmentRef


class TreatmentUpdate(_Body):
    id: Ident
    completed_at: Instant | None = None
    sessions_planned: int | None = Field(None, ge=1, le=100)
    serum: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _something(self) -> TreatmentUpdate:
        if self.completed_at is None and self.sessions_planned is None and self.serum is None:
            raise ValueError("give at least one of completed_at, sessions_planned, serum")
        return self


class TreatmentUpdatedData(_Body):
    treatment: TreatmentUpdate


BOOKED_EXAMPLE: dict[str, JsonValue] = {
    "type": "appointment.booked",
    "timestamp": "2026-12-01T17:00:00Z",
    "data": {
        "appointment": {
            "id": "ap_2001",
            "starts_at": "2026-12-23T18:00:00Z",
            "protocol": "microneedling",
            "session_number": 2,
        },
        "patient": {"id": "pt_77"},
    },
}


class AppointmentBooked(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [BOOKED_EXAMPLE]})

    type: Literal["appointment.booked"]
    timestamp: Instant
    data: BookedData


class AppointmentRescheduled(_Body):
    type: Literal["appointment.rescheduled"]
    timestamp: Instant
    data: RescheduledData


class AppointmentCancelled(_Body):
    type: Literal["appointment.cancelled"]
    timestamp: Instant
    data: AppointmentCancelledData


class TreatmentUpdated(_Body):
    type: Literal["treatment.updated"]
    timestamp: Instant
    data: TreatmentUpdatedData


SeriesEvent = AppointmentBooked | AppointmentRescheduled | AppointmentCancelled | TreatmentUpdated
SERIES_TYPES = (
    "appointment.booked",
    "appointment.rescheduled",
    "appointment.cancelled",
    "treatment.updated",
)
