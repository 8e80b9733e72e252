"""Durations, local days and clock times, quiet hours and DST; pure functions.

Everything here is UTC inside and local only where a human said so: quiet
hours and `at` times are wall-clock times in the patient's zone, and the
functions below turn them into aware UTC instants with `zoneinfo`, including
across daylight-saving changes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_QUIET_HOURS",
    "EARLIEST_ANCHOR",
    "LATEST_ANCHOR",
    "MAX_DAY",
    "QuietHours",
    "anchor",
    "format_duration",
    "local_to_utc",
    "parse_clock",
    "parse_days",
    "parse_duration",
    "push_out_of_quiet_hours",
    "zone",
]

MAX_DAY = 366
"""The last local day after treatment a step may name (a year, leap or not)."""

EARLIEST_ANCHOR = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_ANCHOR = datetime(9000, 1, 1, tzinfo=UTC)
"""The instants a plan may be anchored at (a treatment's completion, an appointment): far from
datetime's ends, so that a step a year after, prep weeks before and a quiet-hours move in any
zone stay representable (year 1 in Los Angeles is before datetime's first day)."""


def anchor(instant: datetime) -> datetime:
    """An aware `instant` in UTC if plans may be anchored at it; else ValueError saying why."""
    try:
        utc: datetime | None = instant.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before UTC's first instant
        utc = None
    if utc is None or not EARLIEST_ANCHOR <= utc < LATEST_ANCHOR:
        raise ValueError("must be a date-time from 1970 to 8999 in UTC")
    return utc


_UNITS: tuple[tuple[str, int], ...] = (
    ("w", 7 * 24 * 3600),
    ("d", 24 * 3600),
    ("h", 3600),
    ("m", 60),
    ("s", 1),
)
# One optional group per unit, in descending order, so "1h30m" parses and
# "30m1h" or "1h1h" do not. ASCII digits only (\d would let "٣" in), and at
# most nine of them so int() never meets an absurdly long number.
_DURATION_RE = re.compile("".join(rf"(?:([0-9]{{1,9}}){unit})?" for unit, _ in _UNITS))
_CLOCK_RE = re.compile(r"([0-9]{2}):([0-9]{2})")
_DAY_PART_RE = re.compile(r"([0-9]{1,9})(?:-([0-9]{1,9}))?")
_DURATION_HINT = "use e.g. 90s, 15m, 2h, 3d, 4w, 1h30m"


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValueError when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``90s``, ``2h``, ``4w`` or ``1d12h`` (``0s`` is allowed)."""
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"not a duration: {text!r} ({_DURATION_HINT})")
    seconds = sum(int(n) * size for n, (_, size) in zip(match.groups(), _UNITS, strict=True) if n)
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"duration too long: {text!r}") from None


def format_duration(td: timedelta) -> str:
    """Format a whole, non-negative number of seconds as `parse_duration` reads it."""
    if td < timedelta(0) or td.microseconds:
        raise ValueError(f"not a whole, non-negative number of seconds: {td}")
    rest = int(td.total_seconds())
    parts = []
    for unit, size in _UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_clock(text: str) -> time:
    """Parse a 24-hour ``HH:MM`` local clock time, ``00:00`` to ``23:59``."""
    match = _CLOCK_RE.fullmatch(text)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"not a clock time: {text!r} (use HH:MM, 00:00 to 23:59)")
    return time(int(match[1]), int(match[2]))


def parse_days(spec: str | Sequence[int], *, origin: str = "the treatment day") -> tuple[int, ...]:
    """Parse local days after treatment (``"1-14"``, ``"3"``, ``"1,3,5"`` or a list of ints).

    Day 0 is the treatment day (or the `origin` a message names: a prep step's days count
    back from the appointment's day). The result is sorted and without repeats.
    """
    days = _days_from_text(spec) if isinstance(spec, str) else _days_from_list(spec, origin)
    if not days:
        raise ValueError('no days given (use e.g. "1-14", "3", "1,3,5" or [1, 3, 5])')
    if days[-1] > MAX_DAY:
        raise ValueError(f"day {days[-1]} is too far out (at most {MAX_DAY})")
    return days


def _days_from_text(spec: str) -> tuple[int, ...]:
    days: set[int] = set()
    for part in spec.split(","):
        match = _DAY_PART_RE.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"not a day or range of days: {part.strip()!r} in {spec!r}")
        first = int(match[1])
        last = first if match[2] is None else int(match[2])
        if last < first:
            raise ValueError(f"range runs backwards: {part.strip()!r}")
        # Check before building the range so "0-999999999" costs nothing.
        if last > MAX_DAY:
            raise ValueError(f"day {last} is too far out (at most {MAX_DAY})")
        days.update(range(first, last + 1))
    return tuple(sorted(days))


def _days_from_list(spec: Sequence[int], origin: str) -> tuple[int, ...]:
    # Values may come straight from TOML, so check the types a list can hold.
    for day in spec:
        if isinstance(day, bool) or not isinstance(day, int):
            raise ValueError(f"not a day number: {day!r}")
        if day < 0:
            raise ValueError(f"days count from 0 ({origin}), not {day}")
    return tuple(sorted(set(spec)))


@dataclass(frozen=True)
class QuietHours:
    """A daily local window (start inclusive, end exclusive) in which nothing is sent.

    The window may cross midnight (21:00 to 08:00); ``start == end`` turns it off.
    """

    start: time
    end: time

    @property
    def enabled(self) -> bool:
        """Whether the window is on at all."""
        return self.start != self.end

    def contains(self, local_clock: time) -> bool:
        """Whether a local wall-clock time falls inside the window."""
        if not self.enabled:
            return False
        if self.start < self.end:
            return self.start <= local_clock < self.end
        return local_clock >= self.start or local_clock < self.end


DEFAULT_QUIET_HOURS = QuietHours(time(21), time(8))


# Plans of patients treated on the same day meet the same local days and clock times, so the
# two conversions below are cached: they are pure, and were a third of planning's cost.
CACHED = 4096


@lru_cache(maxsize=CACHED)
def local_to_utc(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """Return the aware UTC instant at which the wall clock in `tz` shows `day` `clock`.

    A time skipped by a spring-forward change moves forward by the gap (02:30
    becomes 03:30); a time repeated by a fall-back change is its first occurrence.
    """
    return _wall_to_utc(day, clock, tz, fold=0)


def _wall_to_utc(day: date, clock: time, tz: ZoneInfo, *, fold: int) -> datetime:
    if clock.tzinfo is not None:
        raise ValueError(f"clock time must be local (naive), not {clock!r}")
    # PEP 495: with fold=0 a skipped time is read with the offset in force
    # before the change, which lands it `gap` later once converted: exactly
    # the "move forward by the gap" we want, in any zone.
    local = datetime.combine(day, clock.replace(fold=fold), tzinfo=tz)
    return local.astimezone(UTC)


@lru_cache(maxsize=CACHED)
def push_out_of_quiet_hours(instant: datetime, tz: ZoneInfo, quiet: QuietHours) -> datetime:
    """Move an aware instant that falls in quiet hours (local to `tz`) to their end.

    An instant outside quiet hours comes back unchanged; either way, in UTC.
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"instant must be timezone-aware, not {instant!r}")
    local = instant.astimezone(tz)
    if not quiet.contains(local.time()):
        return instant.astimezone(UTC)
    pushed = _end_of_window(local, tz, quiet)
    if quiet.contains(pushed.astimezone(tz).time()):
        # The window's end fell in a spring-forward gap that also swallowed
        # its start (only a window open for less than the gap does that):
        # the day had no open time at all, so wait for the next day's end.
        return push_out_of_quiet_hours(pushed, tz, quiet)
    return pushed


def _end_of_window(local: datetime, tz: ZoneInfo, quiet: QuietHours) -> datetime:
    # Past the end's clock we are in the part of a midnight-crossing window
    # before midnight, so it ends tomorrow; otherwise it ends today.
    end_day = local.date()
    if local.time() >= quiet.end:
        end_day += timedelta(days=1)
    first = _wall_to_utc(end_day, quiet.end, tz, fold=0)
    if first > local:
        return first
    # The end's clock repeats tonight (fall-back) and we are already in the
    # repeat: the window ends at its second occurrence.
    return _wall_to_utc(end_day, quiet.end, tz, fold=1)
