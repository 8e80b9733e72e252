"""What every section shares: `Duration` (`"90s"`, `"6h"`, `"1d12h"`, or a timedelta) and
`Clock` (`"21:00"`, or a time), read with planning's parsers so a protocol's timings and the
settings' durations are written alike, and `Section`, the frozen table.

`[retention]`'s periods are their own type (`service.config.retention.Period`): they also take
whole years, which no other duration does."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from service.planning.timing import parse_clock, parse_duration


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


def _clock(value: Any) -> Any:
    return parse_clock(value) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Clock = Annotated[time, BeforeValidator(_clock)]


class Section(BaseModel):
    """A table of the file: frozen once read, and a key it does not know is a problem."""

    model_config = ConfigDict(frozen=True, extra="forbid")
