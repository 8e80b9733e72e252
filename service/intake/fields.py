"""Field types shared by the events' payloads (`payloads`, `series_payloads`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC instant (was a 500)
        raise ValueError("must be a date-time from year 1 to 9999 in UTC") from None


Instant = Annotated[AwareDatetime, AfterValidator(_utc)]
Ident = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
