"""Quiet hours and DST (service.planning.timing): windows across midnight or within a day, local
times to UTC through spring-forward gaps and fall-back repeats, and an instant pushed out of quiet
hours to their local end, across DST changes too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from service.planning.timing import (
    DEFAULT_QUIET_HOURS,
    QuietHours,
    local_to_utc,
    push_out_of_quiet_hours,
)
from tests.helpers.timing import utc

LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = QuietHours(time(21), time(8))
LUNCH = QuietHours(time(12), time(14))


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
