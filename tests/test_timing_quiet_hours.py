"""Durations, clock times, days, quiet hours and DST (service.planning.timing)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.planning.timing import (
    DEFAULT_QUIET_HOURS,
    QuietHours,
    format_duration,
    local_to_utc,
    parse_clock,
    parse_days,
    parse_duration,
    push_out_of_quiet_hours,
)

LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = QuietHours(time(21), time(8))
LUNCH = QuietHours(time(12), time(14))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def exists(wall: datetime, tz: ZoneInfo) -> bool:
    """Whether a naive wall time is shown by the clock in `tz` at some instant."""
    return any(
        wall.replace(tzinfo=tz, fold=fold).astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        == wall
        for fold in (0, 1)
    )


class TestParseDuration:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("90s", timedelta(seconds=90)),
            ("15m", timedelta(minutes=15)),
            ("2h", timedelta(hours=2)),
            ("3d", timedelta(days=3)),
            ("4w", timedelta(weeks=4)),
        ],
    )
    def test_each_unit_is_read(self, text: str, expected: timedelta) -> None:
        """Seconds, minutes, hours, days and weeks each parse on their own."""
        assert parse_duration(text) == expected

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("1h30m", timedelta(hours=1, minutes=30)),
            ("1d12h", timedelta(days=1, hours=12)),
            ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
            ("2h0m", timedelta(hours=2)),
        ],
    )
    def test_units_in_descending_order_add_up(self, text: str, expected: timedelta) -> None:
        """Several units, largest first, are summed."""
        assert parse_duration(text) == expected

    def test_zero_is_a_duration(self) -> None:
        """``0s`` parses as zero; whether zero is allowed is the caller's rule."""
        assert parse_duration("0s") == timedelta(0)

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "2x",
            "2",
            "h",
            "-5m",
            "+5m",
            "1.5h",
            "2H",
            "30m1h",
            "1h1h",
            "1h 30m",
            " 2h",
            "2h\n",
            "\u0663h",
            "1e3s",
            "1234567890s",
        ],
    )
    def test_anything_else_is_refused_with_examples(self, text: str) -> None:
        """Garbage, signs, wrong order, repeats, spaces and odd digits raise ValueError."""
        with pytest.raises(ValueError, match=r"not a duration: .* \(use e\.g\. 90s, 15m"):
            parse_duration(text)

    def test_message_quotes_the_input(self) -> None:
        """The error names the bad text and shows the accepted forms."""
        with pytest.raises(ValueError) as info:
            parse_duration("2x")
        assert str(info.value) == ("not a duration: '2x' (use e.g. 90s, 15m, 2h, 3d, 4w, 1h30m)")

    def test_a_duration_too_long_for_timedelta_is_a_value_error(self) -> None:
        """Overflow is reported as a bad duration, not an OverflowError."""
        with pytest.raises(ValueError, match="too long"):
            parse_duration("999999999w")


class TestFormatDuration:
    @pytest.mark.parametrize(
        ("td", "text"),
        [
            (timedelta(seconds=5400), "1h30m"),
            (timedelta(0), "0s"),
            (timedelta(weeks=4), "4w"),
            (timedelta(days=8, seconds=1), "1w1d1s"),
        ],
    )
    def test_writes_the_shortest_form(self, td: timedelta, text: str) -> None:
        """Each non-zero unit appears once, largest first."""
        assert format_duration(td) == text

    @given(st.integers(min_value=0, max_value=10**9))
    def test_is_the_inverse_of_parse_duration(self, seconds: int) -> None:
        """Formatting then parsing gives back the same whole seconds."""
        td = timedelta(seconds=seconds)
        assert parse_duration(format_duration(td)) == td

    @pytest.mark.parametrize("td", [timedelta(seconds=-1), timedelta(milliseconds=1500)])
    def test_negative_or_fractional_durations_are_refused(self, td: timedelta) -> None:
        """Only what parse_duration could have read can be written."""
        with pytest.raises(ValueError):
            format_duration(td)


class TestParseClock:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [("08:30", time(8, 30)), ("00:00", time(0)), ("23:59", time(23, 59))],
    )
    def test_reads_24_hour_clock_times(self, text: str, expected: time) -> None:
        """Two-digit hours and minutes from 00:00 to 23:59 parse."""
        assert parse_clock(text) == expected

    @pytest.mark.parametrize(
        "text", ["24:00", "08:60", "8:30", "0830", "08:30:00", "", " 08:30", "ab:cd", "8pm"]
    )
    def test_anything_else_is_refused(self, text: str) -> None:
        """Out-of-range, one-digit, seconds and free text raise ValueError."""
        with pytest.raises(ValueError, match="not a clock time"):
            parse_clock(text)


class TestParseDays:
    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ("1-14", tuple(range(1, 15))),
            ("3", (3,)),
            ("0", (0,)),
            ("1,3,5", (1, 3, 5)),
            ("5,1,3,3", (1, 3, 5)),
            ("1-3, 7", (1, 2, 3, 7)),
            ("2-2", (2,)),
            ("0-366", tuple(range(367))),
        ],
    )
    def test_reads_ranges_and_lists_in_text(self, spec: str, expected: tuple[int, ...]) -> None:
        """Inclusive ranges and comma lists become a sorted tuple without repeats."""
        assert parse_days(spec) == expected

    @pytest.mark.parametrize(
        ("spec", "expected"), [([3, 1, 1], (1, 3)), ((0, 2), (0, 2)), (range(2), (0, 1))]
    )
    def test_reads_lists_of_numbers(self, spec: list[int], expected: tuple[int, ...]) -> None:
        """A sequence of day numbers is sorted and deduplicated."""
        assert parse_days(spec) == expected

    @pytest.mark.parametrize(
        "spec", ["", "14-1", "a", "-1", "1-", "1,,3", "1;3", "367", "0-367", "1.5"]
    )
    def test_bad_text_is_refused(self, spec: str) -> None:
        """Empty, reversed, negative, beyond a year or not numbers raise ValueError."""
        with pytest.raises(ValueError):
            parse_days(spec)

    @pytest.mark.parametrize("spec", [[], [-1], [367], [True], [1.5], ["1"]])
    def test_bad_lists_are_refused(self, spec: list[int]) -> None:
        """Empty lists, negatives, days beyond a year and non-integers raise ValueError."""
        with pytest.raises(ValueError):
            parse_days(spec)


class TestQuietHours:
    @pytest.mark.parametrize(
        ("clock", "inside"),
        [
            (time(21), True),
            (time(23), True),
            (time(0), True),
            (time(7, 59, 59), True),
            (time(8), False),
            (time(12), False),
            (time(20, 59), False),
        ],
    )
    def test_a_window_may_cross_midnight(self, clock: time, inside: bool) -> None:
        """21:00-08:00 holds the late evening and the early morning, start inclusive."""
        assert NIGHT.contains(clock) is inside

    @pytest.mark.parametrize(
        ("clock", "inside"),
        [(time(11, 59), False), (time(12), True), (time(13, 59), True), (time(14), False)],
    )
    def test_a_window_may_lie_within_a_day(self, clock: time, inside: bool) -> None:
        """12:00-14:00 holds only the middle of the day, end exclusive."""
        assert LUNCH.contains(clock) is inside

    def test_equal_start_and_end_turn_quiet_hours_off(self) -> None:
        """start == end is disabled and contains no time at all."""
        off = QuietHours(time(8), time(8))
        assert not off.enabled
        assert not any(off.contains(time(h, m)) for h in range(24) for m in (0, 30))

    def test_default_is_nine_in_the_evening_to_eight_in_the_morning(self) -> None:
        """The default window is 21:00-08:00 and on."""
        assert DEFAULT_QUIET_HOURS == NIGHT
        assert DEFAULT_QUIET_HOURS.enabled


class TestLocalToUtc:
    def test_an_ordinary_local_time_converts_to_utc(self) -> None:
        """08:30 in Los Angeles in summer (UTC-7) is 15:30 UTC, as an aware UTC datetime."""
        result = local_to_utc(date(2026, 6, 10), time(8, 30), LA)
        assert result == utc(2026, 6, 10, 15, 30)
        assert result.tzinfo is UTC

    @pytest.mark.parametrize(
        ("tz", "day", "expected_utc", "expected_local"),
        [
            (LA, date(2026, 3, 8), utc(2026, 3, 8, 10, 30), time(3, 30)),
            (BERLIN, date(2026, 3, 29), utc(2026, 3, 29, 1, 30), time(3, 30)),
        ],
    )
    def test_a_time_in_the_spring_forward_gap_moves_forward_by_the_gap(
        self, tz: ZoneInfo, day: date, expected_utc: datetime, expected_local: time
    ) -> None:
        """02:30 does not exist on the spring-forward day; it becomes 03:30 local."""
        result = local_to_utc(day, time(2, 30), tz)
        assert result == expected_utc
        assert result.astimezone(tz).time() == expected_local

    @pytest.mark.parametrize(
        ("tz", "day", "clock", "expected_utc"),
        [
            # 01:30 PDT (UTC-7), not 01:30 PST an hour later.
            (LA, date(2026, 11, 1), time(1, 30), utc(2026, 11, 1, 8, 30)),
            # 02:30 CEST (UTC+2), not 02:30 CET an hour later.
            (BERLIN, date(2026, 10, 25), time(2, 30), utc(2026, 10, 25, 0, 30)),
        ],
    )
    def test_a_repeated_fall_back_time_is_its_first_occurrence(
        self, tz: ZoneInfo, day: date, clock: time, expected_utc: datetime
    ) -> None:
        """A wall time that happens twice means the earlier instant."""
        assert local_to_utc(day, clock, tz) == expected_utc

    def test_the_fold_of_the_clock_argument_does_not_matter(self) -> None:
        """A clock carrying fold=1 still gives the first occurrence."""
        clock = time(1, 30, fold=1)
        assert local_to_utc(date(2026, 11, 1), clock, LA) == utc(2026, 11, 1, 8, 30)

    def test_an_aware_clock_is_refused(self) -> None:
        """Clock times are local wall times, so one with a zone is a mistake."""
        with pytest.raises(ValueError, match="local"):
            local_to_utc(date(2026, 6, 10), time(8, tzinfo=UTC), LA)


class TestPushOutOfQuietHours:
    def test_an_instant_outside_quiet_hours_is_unchanged(self) -> None:
        """Noon in Los Angeles stays noon."""
        noon = utc(2026, 6, 10, 19)
        assert push_out_of_quiet_hours(noon, LA, NIGHT) == noon

    def test_message_in_quiet_hours_moves_to_their_end(self) -> None:
        """23:00 local moves to 08:00 local the next morning."""
        late = utc(2026, 6, 11, 6)  # 23:00 PDT on June 10
        assert push_out_of_quiet_hours(late, LA, NIGHT) == utc(2026, 6, 11, 15)

    def test_after_midnight_the_window_ends_the_same_morning(self) -> None:
        """05:00 local moves to 08:00 local on the same date."""
        early = utc(2026, 6, 10, 12)  # 05:00 PDT
        assert push_out_of_quiet_hours(early, LA, NIGHT) == utc(2026, 6, 10, 15)

    def test_a_window_within_a_day_ends_the_same_day(self) -> None:
        """13:00 inside 12:00-14:00 moves to 14:00 that day."""
        lunch = utc(2026, 6, 10, 20)  # 13:00 PDT
        assert push_out_of_quiet_hours(lunch, LA, LUNCH) == utc(2026, 6, 10, 21)

    def test_disabled_quiet_hours_move_nothing(self) -> None:
        """With start == end even 03:00 local stays put."""
        night = utc(2026, 6, 10, 10)  # 03:00 PDT
        off = QuietHours(time(21), time(21))
        assert push_out_of_quiet_hours(night, LA, off) == night

    def test_an_instant_exactly_at_the_end_is_not_moved(self) -> None:
        """08:00 local is already outside quiet hours."""
        eight = utc(2026, 6, 10, 15)  # 08:00 PDT
        assert push_out_of_quiet_hours(eight, LA, NIGHT) == eight

    def test_an_instant_exactly_at_the_start_is_moved(self) -> None:
        """21:00 local is the first quiet minute."""
        nine = utc(2026, 6, 11, 4)  # 21:00 PDT on June 10
        assert push_out_of_quiet_hours(nine, LA, NIGHT) == utc(2026, 6, 11, 15)

    @pytest.mark.parametrize(
        ("tz", "instant", "expected"),
        [
            # 22:00 PST -> 08:00 PDT: nine real hours, the clock skips one.
            (LA, utc(2026, 3, 8, 6), utc(2026, 3, 8, 15)),
            # 22:00 PDT -> 08:00 PST: eleven real hours, the clock repeats one.
            (LA, utc(2026, 11, 1, 5), utc(2026, 11, 1, 16)),
            # 22:00 CET -> 08:00 CEST.
            (BERLIN, utc(2026, 3, 28, 21), utc(2026, 3, 29, 6)),
            # 22:00 CEST -> 08:00 CET.
            (BERLIN, utc(2026, 10, 24, 20), utc(2026, 10, 25, 7)),
        ],
    )
    def test_a_push_across_a_dst_change_night_lands_on_local_end(
        self, tz: ZoneInfo, instant: datetime, expected: datetime
    ) -> None:
        """The end is 08:00 on the local clock whatever the night's offset change."""
        pushed = push_out_of_quiet_hours(instant, tz, NIGHT)
        assert pushed == expected
        assert pushed.astimezone(tz).time() == time(8)

    def test_an_end_in_the_spring_forward_gap_moves_forward_by_the_gap(self) -> None:
        """A window ending at 02:30 on the spring-forward night ends at 03:30 local."""
        quiet = QuietHours(time(21), time(2, 30))
        pushed = push_out_of_quiet_hours(utc(2026, 3, 8, 9), LA, quiet)  # 01:00 PST
        assert pushed == utc(2026, 3, 8, 10, 30)  # 03:30 PDT

    def test_an_instant_in_the_repeated_hour_waits_for_the_ends_second_occurrence(self) -> None:
        """In 00:00-01:30, 01:10 PST (the second 01:10) moves to 01:30 PST, not back to PDT."""
        quiet = QuietHours(time(0), time(1, 30))
        second_0110 = utc(2026, 11, 1, 9, 10)
        assert push_out_of_quiet_hours(second_0110, LA, quiet) == utc(2026, 11, 1, 9, 30)

    def test_a_day_whose_open_time_falls_in_the_gap_waits_for_the_next_day(self) -> None:
        """Open only 02:30-03:00, the spring-forward day has no open time at all."""
        quiet = QuietHours(time(3), time(2, 30))
        pushed = push_out_of_quiet_hours(utc(2026, 3, 8, 9), LA, quiet)  # 01:00 PST
        assert pushed == utc(2026, 3, 9, 9, 30)  # 02:30 PDT the next day

    def test_the_result_is_utc_whatever_zone_the_input_is_in(self) -> None:
        """An aware instant in any zone comes back in UTC."""
        local_noon = datetime(2026, 6, 10, 12, tzinfo=LA)
        late = datetime(2026, 6, 10, 23, tzinfo=LA)
        assert push_out_of_quiet_hours(local_noon, LA, NIGHT).tzinfo is UTC
        assert push_out_of_quiet_hours(late, LA, NIGHT).tzinfo is UTC

    def test_a_naive_instant_is_refused(self) -> None:
        """Without a zone the local clock is unknowable, so it raises ValueError."""
        with pytest.raises(ValueError, match="aware"):
            push_out_of_quiet_hours(datetime(2026, 6, 10, 23), LA, NIGHT)


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
    next open time a day later; that case has its own example test above.
    """
    length = draw(st.sampled_from([0, *range(1, 22 * 60 + 59)]))
    if near is not None and draw(st.booleans()):
        end = near.hour * 60 + near.minute + draw(st.integers(-120, 120))
        start = end - length
    else:
        start = draw(minutes_of_day)
        end = start + length
    return QuietHours(clock_of(start % MINUTES_A_DAY), clock_of(end % MINUTES_A_DAY))


class TestTimingProperties:
    @settings(max_examples=1000, deadline=None)
    @given(data=st.data(), case=cases())
    def test_a_pushed_instant_is_never_in_quiet_hours(
        self, data: st.DataObject, case: tuple[datetime, ZoneInfo]
    ) -> None:
        """The result is outside quiet hours, not earlier, and less than 25 hours later."""
        instant, tz = case
        quiet = data.draw(quiet_windows(near=instant.astimezone(tz).time()))
        pushed = push_out_of_quiet_hours(instant, tz, quiet)
        assert pushed.tzinfo is UTC
        assert not quiet.contains(pushed.astimezone(tz).time())
        assert instant <= pushed < instant + timedelta(hours=25)

    @settings(max_examples=1000, deadline=None)
    @given(case=cases(), clock=clocks)
    def test_every_local_to_utc_result_is_a_local_time_that_exists(
        self, case: tuple[datetime, ZoneInfo], clock: time
    ) -> None:
        """The result's local time maps back to itself, and is the asked time unless skipped."""
        instant, tz = case
        day = instant.astimezone(tz).date()
        result = local_to_utc(day, clock, tz)
        local = result.astimezone(tz)
        assert result.tzinfo is UTC
        assert local_to_utc(local.date(), local.time(), tz) == result
        asked = datetime.combine(day, clock)
        if local.replace(tzinfo=None) != asked:
            # Only a skipped wall time may differ, and only by moving later.
            assert not exists(asked, tz)
            assert local.replace(tzinfo=None) > asked
