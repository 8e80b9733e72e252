"""An event's identity, taken once as it arrives and passed whole through intake."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Envelope:
    """Which event this is: the clinic that sent it, its webhook id, the SHA-256 of its body
    (a replay with another body is a conflict), and when it arrived (what it stores is
    stamped with this one time)."""

    clinic_id: str
    webhook_id: str
    digest: str
    now: datetime

    @classmethod
    def of(cls, clinic_id: str, webhook_id: str, raw: bytes, *, now: datetime) -> Envelope:
        """The envelope of the body `raw`."""
        return cls(clinic_id, webhook_id, hashlib.sha256(raw).hexdigest(), now)
