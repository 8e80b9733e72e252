"""Bodies of the clinic system's events (treatment.completed, treatment.cancelled,
patient.updated) with `**overrides`, their JSON bytes and their Standard Webhooks signatures."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from tests.support import PHONE, SECRET


def completed_event(**overrides: Any) -> dict[str, Any]:
    """A treatment.completed body; `treatment=` and `patient=` merge into their parts."""
    now = datetime.now(UTC)
    treatment = {
        "id": "tr_" + uuid.uuid4().hex[:8],
        "protocol": "mn",
        "completed_at": now.isoformat(),
        "session_number": 1,
        "sessions_planned": 3,
        "serum": "hyaluronic acid serum",
    }
    patient = {
        "id": "pt_77",
        "first_name": "Ana",
        "phone": PHONE,
        "timezone": "America/Los_Angeles",
        "locale": "en",
        "sms_consent": True,
    }
    treatment.update(overrides.pop("treatment", {}))
    patient.update(overrides.pop("patient", {}))
    body = {
        "type": "treatment.completed",
        "timestamp": now.isoformat(),
        "data": {"treatment": treatment, "patient": patient},
    }
    body.update(overrides)
    return body


def signed(
    body: bytes | str,
    *,
    secret: str = SECRET,
    msg_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, str]:
    """Standard Webhooks headers signing `body`."""
    text = body.decode() if isinstance(body, bytes) else body
    msg_id = msg_id or "msg_" + secrets.token_hex(8)
    at = at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, text),
    }


def encode(body: dict[str, Any]) -> bytes:
    """The JSON bytes of a body."""
    return json.dumps(body).encode()


def cancelled_event(treatment_id: str, **overrides: Any) -> dict[str, Any]:
    """A treatment.cancelled body for `treatment_id`; keywords replace top-level fields."""
    body: dict[str, Any] = {
        "type": "treatment.cancelled",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {"treatment": {"id": treatment_id}},
    }
    body.update(overrides)
    return body


def patient_updated_event(patient_id: str = "pt_77", **fields: Any) -> dict[str, Any]:
    """A patient.updated body for `patient_id` giving `fields` (phone, first_name, ...)."""
    return {
        "type": "patient.updated",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {"patient": {"id": patient_id, **fields}},
    }
