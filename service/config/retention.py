"""`[retention]` (contract §19): how long what patients wrote and were sent is kept.

Periods take the usual durations (`30d`, `4w`, `1d12h`) and, here only, whole years in front
(`6y`, `1y30d`). A year is 366 days, so that `Ny` is never shorter than N calendar years (an
audit trail kept "6 years" is not pruned a day or two early for the leap days). Planning's
durations have no years: a step a year after a treatment is `52w1d`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, field_validator

from service.planning.timing import format_duration, parse_duration

YEAR = timedelta(days=366)
_YEARS_RE = re.compile(r"([0-9]{1,4})y(.*)")
SHORTEST = timedelta(days=1)
# A clinic's system retries an event under its webhook id for up to ~28 hours (the Standard
# Webhooks schedule); pruned sooner, a retry would no longer be recognised as one.
SHORTEST_EVENTS = timedelta(days=3)


def parse_period(text: str) -> timedelta:
    """A retention period: `parse_duration`'s forms, optionally led by whole years (`6y`)."""
    match = _YEARS_RE.fullmatch(text)
    try:
        if match is None:
            return parse_duration(text)
        rest = parse_duration(match[2]) if match[2] else timedelta(0)
    except ValueError:
        raise ValueError(f"not a period: {text!r} (use e.g. 30d, 4w, 400d, 6y)") from None
    return int(match[1]) * YEAR + rest


def format_period(period: timedelta) -> str:
    """A period as `parse_period` reads it: whole years as `Ny`, else days (`400d`, `1d12h`)."""
    years, rest = divmod(period, YEAR)
    if years and not rest:
        return f"{years}y"
    days, rest = divmod(period, timedelta(days=1))
    return (f"{days}d" if days else "") + (format_duration(rest) if rest or not days else "")


def _period(value: Any) -> Any:
    return parse_period(value) if isinstance(value, str) else value


Period = Annotated[timedelta, BeforeValidator(_period)]


class RetentionSettings(BaseModel):
    """`[retention]`: how long each kind of record is kept before the pruner deletes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: Period = timedelta(days=400)  # finished messages, their history; then patients
    replies: Period = timedelta(days=400)  # patients' texts in, and escalations
    media: Period = timedelta(days=90)  # photos (contract §17), bytes and all
    events: Period = timedelta(days=30)  # stored copies of clinic events and their answers
    audit: Period = 6 * YEAR  # the audit trail

    @field_validator("messages", "replies", "media", "events", "audit")
    @classmethod
    def _long_enough(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        shortest = SHORTEST_EVENTS if info.field_name == "events" else SHORTEST
        if value < shortest:
            raise ValueError(f"must be at least {format_period(shortest)}")
        return value

    def summary(self) -> str:
        """One line for `check-config`: each period as written."""
        periods = self.model_dump()
        return "retention: " + ", ".join(f"{k} {format_period(v)}" for k, v in periods.items())
