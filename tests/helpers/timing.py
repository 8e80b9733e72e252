"""Instants for the timing tests: `utc`, and the hypothesis strategies of the property tests
(tests/test_timing_properties.py, test_quiet.py, test_prep.py): aware instants in real zones, often
close to one of their offset changes, clock times, and quiet-hours windows.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from service.planning.timing import QuietHours


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# A handful of real zones with interesting histories: DST in both hemispheres,
# a 30-minute DST (Lord Howe), DST changes at midnight (Sao Paulo until 2019),
# a skipped calendar day (Apia, 2011-12-30), half-hour offsets, and none at all.
ZONES = [
    "America/Los_Angeles",
    "Europe/Berlin",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Pacific/Apia",
    "Asia/Kolkata",
    "UTC",
]
MINUTES_A_DAY = 24 * 60


def offset_changes(tz: ZoneInfo, year: int) -> list[datetime]:
    """The UTC instants (to the half hour) at which `tz` changed its offset in `year`."""
    changes = []
    day = utc(year, 1, 1)
    while day.year == year:
        before = day.astimezone(tz).utcoffset()
        if (day + timedelta(days=1)).astimezone(tz).utcoffset() != before:
            moment = day
            while moment.astimezone(tz).utcoffset() == before:
                moment += timedelta(minutes=30)
            changes.append(moment)
        day += timedelta(days=1)
    return changes


# Random instants almost never meet a DST night, so half the examples are
# drawn within a day of a real offset change instead.
OFFSET_CHANGES = [
    (ZoneInfo(name), change)
    for name in ZONES
    for year in (2011, 2018, 2026)
    for change in offset_changes(ZoneInfo(name), year)
]


def clock_of(minute: int) -> time:
    return time(minute // 60 % 24, minute % 60)


minutes_of_day = st.integers(min_value=0, max_value=MINUTES_A_DAY - 1)
clocks = minutes_of_day.map(clock_of)


@st.composite
def cases(draw: st.DrawFn) -> tuple[datetime, ZoneInfo]:
    """An aware UTC instant and a zone, often close to one of the zone's offset changes."""
    if draw(st.booleans()):
        tz, change = draw(st.sampled_from(OFFSET_CHANGES))
        minutes = draw(st.integers(min_value=-26 * 60, max_value=26 * 60))
        return change + timedelta(minutes=minutes), tz
    instant = draw(st.datetimes(datetime(1995, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC)))
    return instant, ZoneInfo(draw(st.sampled_from(ZONES)))


@st.composite
def quiet_windows(draw: st.DrawFn, near: time | None = None) -> QuietHours:
    """Windows leaving more than an hour open each day, or switched off.

    With `near`, the window often ends within two hours of that clock time. An
    open part of an hour or less can vanish into a DST gap, which makes the
    next open time a day later; that case has its own example test
    (tests/test_timing_quiet_hours.py).
    """
    length = draw(st.sampled_from([0, *range(1, 22 * 60 + 59)]))
    if near is not None and draw(st.booleans()):
        end = near.hour * 60 + near.minute + draw(st.integers(-120, 120))
        start = end - length
    else:
        start = draw(minutes_of_day)
        end = start + length
    return QuietHours(clock_of(start % MINUTES_A_DAY), clock_of(end % MINUTES_A_DAY))
