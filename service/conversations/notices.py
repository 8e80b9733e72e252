"""The `data` of the notifications the conversation records (contract §11), built from rows;
opt-outs are `storage.notices.opted_out`'s, like the 21610 path's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from service.config import Settings
from service.observability.masking import mask_phone
from service.storage import outbox, store
from service.storage.models import Message, Patient, Treatment
from service.storage.transactions import Session


def stamp(at: datetime) -> str:
    """An instant as the notifications write it: ISO 8601 UTC, `Z`."""
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def message_data(message: Message, treatment: Treatment, patient: Patient) -> dict[str, Any]:
    """A message as a notification names it: ids, kind, masked `to`, status."""
    return {
        "id": message.id,
        "step": message.step,
        "kind": message.kind,
        "treatment_id": treatment.external_id,
        "patient_id": patient.external_id,
        "to": mask_phone(message.phone),
        "status": message.status,
        "error_code": message.error_code,
        "reason": message.reason,
    }


def reply_data(text: str, level: str, at: datetime) -> dict[str, Any]:
    """A reply as a notification names it."""
    return {"text": text[:1600], "level": level, "at": stamp(at)}


def patient_ids(s: Session, clinic_id: str, phone: str) -> list[str]:
    """The clinic's patients (their ids in the clinic's system) with this phone."""
    return sorted(store.patient_ids_with_phone(s, clinic_id, phone))


def notify(
    s: Session,
    settings: Settings,
    clinic_id: str,
    type_: str,
    data: dict[str, Any] | Callable[[], dict[str, Any]],
    *,
    now: datetime,
) -> None:
    """Record a notification in this transaction when the clinic asked for its type; `data`
    may be a function, called only then (it may cost a query)."""
    target = settings.clinics[clinic_id].notifications
    if target is None or not target.wants(type_):
        return
    body = data() if callable(data) else data
    outbox.record(s.connection(), settings, clinic_id=clinic_id, type_=type_, data=body, now=now)
