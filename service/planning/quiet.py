"""Where a planned instant lands when it meets quiet hours, by the step's rule; pure (contract §15).

- "defer" (the default, contract §5's rule): moved to the end of the quiet hours;
- "earlier": moved to 15 minutes before the quiet hours began (local wall clock, so 20:45 for
  a window starting at 21:00), if that is after the anchor (a treatment's `completed_at`; for
  a prep step the moment it is planned, since a time in the past cannot be sent) and outside
  quiet hours itself; else deferred as above;
- "skip": not moved at all, and recorded `cancelled` with reason `quiet hours`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from service.planning.steps import QuietRule
from service.planning.timing import CACHED, QuietHours, local_to_utc, push_out_of_quiet_hours

__all__ = ["EARLIER_BY", "QUIET_HOURS_REASON", "Landed", "Landing", "land"]

EARLIER_BY = timedelta(minutes=15)
"""How long before quiet hours begin an "earlier" step goes out."""

QUIET_HOURS_REASON = "quiet hours"
"""The reason of a message its step's "skip" rule left unsent (storage's `reasons` uses it)."""

Landed = Literal["on time", "deferred", "earlier", "skipped", "past"]
"""Where a planned message landed: at its time, moved by quiet hours ("deferred" to their
end, "earlier" to before them), "skipped" by quiet hours, or (a prep step) "past": its time
had gone by when it was planned. The last two are recorded but never sent."""


@dataclass(frozen=True)
class Landing:
    """A planned instant after quiet hours: when it goes out (UTC) and why there."""

    send_at: datetime
    landed: Landed


def land(
    instant: datetime, tz: ZoneInfo, quiet: QuietHours, rule: QuietRule, *, anchor: datetime
) -> Landing:
    """Apply a step's quiet-hours `rule` to an aware planned `instant` in the zone `tz`.

    An instant outside quiet hours lands "on time", unchanged. Inside them, "skip" keeps the
    time and says "skipped"; "earlier" moves it to `EARLIER_BY` before the window's local
    start when that is after `anchor` and outside quiet hours, else it is deferred like
    "defer", to the window's end (`push_out_of_quiet_hours`). `send_at` is always UTC.
    """
    landing = _land(instant.astimezone(UTC), tz, quiet, rule)
    if landing.landed == "earlier" and landing.send_at <= anchor:
        return Landing(push_out_of_quiet_hours(instant, tz, quiet), "deferred")
    return landing


@lru_cache(maxsize=CACHED)
def _land(instant: datetime, tz: ZoneInfo, quiet: QuietHours, rule: QuietRule) -> Landing:
    # Without the anchor, so that plans of patients treated the same day share the work
    # (as `push_out_of_quiet_hours` and `local_to_utc` do).
    if not quiet.contains(instant.astimezone(tz).time()):
        return Landing(instant, "on time")
    if rule == "skip":
        return Landing(instant, "skipped")
    if rule == "earlier":
        earlier = _before_window(instant, tz, quiet)
        if earlier < instant and not quiet.contains(earlier.astimezone(tz).time()):
            return Landing(earlier, "earlier")
    return Landing(push_out_of_quiet_hours(instant, tz, quiet), "deferred")


def _before_window(instant: datetime, tz: ZoneInfo, quiet: QuietHours) -> datetime:
    """`EARLIER_BY` before the local start of the quiet window `instant` is in (UTC)."""
    local = instant.astimezone(tz)
    # In the part of a midnight-crossing window after midnight, it began the day before.
    start_day = local.date() if local.time() >= quiet.start else local.date() - timedelta(days=1)
    wall = datetime.combine(start_day, quiet.start) - EARLIER_BY
    return local_to_utc(wall.date(), wall.time(), tz)
