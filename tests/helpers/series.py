"""Bodies of a series' events (contract §13), with `**fields` merged into their parts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def _event(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "timestamp": datetime.now(UTC).isoformat(), "data": data}


def booked_event(
    appointment_id: str, starts_at: datetime, *, patient_id: str = "pt_77", **fields: Any
) -> dict[str, Any]:
    """appointment.booked for `patient_id`; `fields` (protocol, session_number) join it."""
    appointment = {"id": appointment_id, "starts_at": starts_at.isoformat(), **fields}
    return _event("appointment.booked", {"appointment": appointment, "patient": {"id": patient_id}})


def rescheduled_event(appointment_id: str, starts_at: datetime) -> dict[str, Any]:
    """appointment.rescheduled to `starts_at`."""
    appointment = {"id": appointment_id, "starts_at": starts_at.isoformat()}
    return _event("appointment.rescheduled", {"appointment": appointment})


def appointment_cancelled_event(appointment_id: str) -> dict[str, Any]:
    """appointment.cancelled."""
    return _event("appointment.cancelled", {"appointment": {"id": appointment_id}})


def treatment_updated_event(treatment_id: str, **fields: Any) -> dict[str, Any]:
    """treatment.updated giving `fields` (completed_at, sessions_planned, serum)."""
    given = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}
    return _event("treatment.updated", {"treatment": {"id": treatment_id, **given}})
