"""What the fake Twilio (tests/fakes/twilio.py) records: each message it accepted, each create
call answered or not, and the To, From and DateSent filters a list call applies to them."""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_DAY_FILTERS: dict[str, Callable[[Any, Any], bool]] = {
    "DateSent>": operator.ge,
    "DateSent<": operator.le,
    "DateSent": operator.eq,
}


@dataclass
class Recorded:
    """One message the fake accepted."""

    sid: str
    to: str
    from_: str | None
    service: str | None
    body: str
    callback: str | None
    at: float
    status: str = "queued"
    error_code: int | None = None
    validity_period: int | None = None  # the create's ValidityPeriod, seconds
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))


def attempt(form: dict[str, str]) -> dict[str, Any]:
    """The record of one create call."""
    return {
        "to": form.get("To", ""),
        "from": form.get("From"),
        "service": form.get("MessagingServiceSid"),
        "body": form.get("Body"),
        "callback": form.get("StatusCallback"),
        "validity_period": int(form["ValidityPeriod"]) if "ValidityPeriod" in form else None,
        "at": time.time(),
    }


def filtered(messages: list[Recorded], query: Mapping[str, str]) -> list[Recorded]:
    """The messages that pass a list call's To, From and DateSent (by day) filters."""
    found = [m for m in messages if not query.get("To") or m.to == query["To"]]
    found = [m for m in found if not query.get("From") or m.from_ == query["From"]]
    for key, keep in _DAY_FILTERS.items():
        if query.get(key):
            day = datetime.fromisoformat(query[key][:10]).date()
            found = [m for m in found if keep(m.date_created.date(), day)]
    return found
