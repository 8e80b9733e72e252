"""Durations, clock times and days as configuration writes them (service.planning.timing):
parse_duration and its inverse format_duration, parse_clock, parse_days, and what each refuses.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.planning.timing import (
    EARLIEST_ANCHOR,
    LATEST_ANCHOR,
    anchor,
    format_duration,
    parse_clock,
    parse_days,
    parse_duration,
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


class TestAnchor:
    def test_an_instant_inside_the_range_is_given_in_utc(self) -> None:
        berlin = datetime(2026, 11, 25, 15, 30, tzinfo=timezone(timedelta(hours=1)))
        assert anchor(berlin) == datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
        assert anchor(berlin).tzinfo is UTC
        assert anchor(EARLIEST_ANCHOR) == EARLIEST_ANCHOR

    @pytest.mark.parametrize(
        "instant",
        [
            EARLIEST_ANCHOR - timedelta(microseconds=1),
            LATEST_ANCHOR,
            datetime(1, 1, 1, 0, 1, tzinfo=UTC),
            datetime(1, 1, 1, 0, 1, tzinfo=timezone(timedelta(hours=1))),  # before UTC's first
            datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-1))),  # after its last
        ],
    )
    def test_an_instant_outside_is_refused_naming_the_range(self, instant: datetime) -> None:
        with pytest.raises(ValueError, match="from 1970 to 8999 in UTC"):
            anchor(instant)
