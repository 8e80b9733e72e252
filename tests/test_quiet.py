"""A step's rule when its time meets quiet hours: defer, earlier, skip (service.planning.quiet)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.planning.quiet import EARLIER_BY, Landing, land
from service.planning.steps import QuietRule
from service.planning.timing import QuietHours, push_out_of_quiet_hours
from tests.helpers.timing import cases, quiet_windows

LA = ZoneInfo("America/Los_Angeles")
NIGHT = QuietHours(time(21), time(8))
LUNCH = QuietHours(time(12), time(14))
RULES: list[QuietRule] = ["defer", "earlier", "skip"]


def la(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A Los Angeles wall time as an aware UTC instant."""
    return datetime(year, month, day, hour, minute, tzinfo=LA).astimezone(UTC)


# A treatment completed at 19:30 in Los Angeles on 24 Nov 2026 (03:30 UTC on the 25th).
COMPLETED = la(2026, 11, 24, 19, 30)


class TestOutsideQuietHours:
    @pytest.mark.parametrize("rule", RULES)
    def test_a_time_outside_quiet_hours_lands_on_time(self, rule: QuietRule) -> None:
        """Whatever the rule, 18:00 is sent at 18:00."""
        assert land(la(2026, 11, 24, 18), LA, NIGHT, rule, anchor=COMPLETED) == Landing(
            la(2026, 11, 24, 18), "on time"
        )


class TestDefer:
    def test_defer_moves_to_the_end_of_quiet_hours(self) -> None:
        """21:30 is sent at 08:00 the next morning, as before per-step rules."""
        landing = land(COMPLETED + timedelta(hours=2), LA, NIGHT, "defer", anchor=COMPLETED)
        assert landing == Landing(la(2026, 11, 25, 8), "deferred")


class TestEarlier:
    def test_the_1930_treatments_tonight_step_lands_at_2045(self) -> None:
        """2h after 19:30 is 21:30, in quiet hours from 21:00: it goes at 20:45 instead."""
        landing = land(COMPLETED + timedelta(hours=2), LA, NIGHT, "earlier", anchor=COMPLETED)
        assert landing == Landing(la(2026, 11, 24, 20, 45), "earlier")

    def test_after_midnight_the_window_began_the_evening_before(self) -> None:
        """02:00 is in the window that began at 21:00 the day before: 20:45 that evening."""
        landing = land(la(2026, 11, 25, 2), LA, NIGHT, "earlier", anchor=la(2026, 11, 24, 12))
        assert landing == Landing(la(2026, 11, 24, 20, 45), "earlier")

    def test_earlier_than_the_anchor_is_deferred_instead(self) -> None:
        """A treatment completed at 20:50 cannot be told anything at 20:45: 08:00 instead."""
        anchor = la(2026, 11, 24, 20, 50)
        landing = land(anchor + timedelta(hours=1), LA, NIGHT, "earlier", anchor=anchor)
        assert landing == Landing(la(2026, 11, 25, 8), "deferred")

    def test_exactly_at_the_anchor_is_deferred(self) -> None:
        """ "Still after the anchor": 20:45 for an anchor at 20:45 is not after it."""
        anchor = la(2026, 11, 24, 20, 45)
        landing = land(la(2026, 11, 24, 21, 15), LA, NIGHT, "earlier", anchor=anchor)
        assert landing.landed == "deferred"

    def test_a_window_within_a_day_starts_the_same_day(self) -> None:
        """13:00 in a 12:00-14:00 window goes at 11:45."""
        landing = land(la(2026, 11, 24, 13), LA, LUNCH, "earlier", anchor=la(2026, 11, 24, 9))
        assert landing == Landing(la(2026, 11, 24, 11, 45), "earlier")

    def test_a_window_with_too_short_an_opening_before_it_defers(self) -> None:
        """Open only 08:00-08:10: 15 minutes before 08:10 is in quiet hours, so defer."""
        quiet = QuietHours(time(8, 10), time(8))
        landing = land(la(2026, 11, 24, 12), LA, quiet, "earlier", anchor=la(2026, 11, 20, 0))
        assert landing == Landing(la(2026, 11, 25, 8), "deferred")

    def test_earlier_holds_the_local_clock_across_a_dst_change(self) -> None:
        """On 1 Nov 2026 (PDT ends at 02:00) 03:00 goes at 20:45 PDT the evening before."""
        landing = land(la(2026, 11, 1, 3), LA, NIGHT, "earlier", anchor=la(2026, 10, 31, 9))
        assert landing.landed == "earlier"
        assert landing.send_at.astimezone(LA).strftime("%d %H:%M %Z") == "31 20:45 PDT"
        assert landing.send_at == datetime(2026, 11, 1, 3, 45, tzinfo=UTC)


class TestSkip:
    def test_skip_keeps_the_time_and_says_skipped(self) -> None:
        """21:30 stays 21:30, landed "skipped" (it is recorded, never sent)."""
        instant = COMPLETED + timedelta(hours=2)
        assert land(instant, LA, NIGHT, "skip", anchor=COMPLETED) == Landing(instant, "skipped")


class TestLandingProperties:
    @settings(max_examples=600, deadline=None)
    @given(
        data=st.data(),
        case=cases(),
        rule=st.sampled_from(RULES),
        back=st.integers(min_value=0, max_value=30 * 60),
    )
    def test_rules_keep_their_promises_across_dst(
        self, data: st.DataObject, case: tuple[datetime, ZoneInfo], rule: QuietRule, back: int
    ) -> None:
        """Nothing sent lands in quiet hours; "defer" is today's push; "earlier" is after its
        anchor and before the planned time; "skip" never moves a time."""
        instant, tz = case
        quiet = data.draw(quiet_windows(near=instant.astimezone(tz).time()))
        anchor = instant - timedelta(minutes=back)
        landing = land(instant, tz, quiet, rule, anchor=anchor)
        assert landing.send_at.tzinfo is UTC
        inside = quiet.contains(instant.astimezone(tz).time())
        if not inside:
            assert landing == Landing(instant, "on time")
        elif rule == "skip":
            assert landing == Landing(instant, "skipped")
        else:
            assert not quiet.contains(landing.send_at.astimezone(tz).time())
        if landing.landed == "deferred" or rule == "defer":
            assert landing.send_at == push_out_of_quiet_hours(instant, tz, quiet)
        if landing.landed == "earlier":
            assert anchor < landing.send_at < instant

    @settings(max_examples=300, deadline=None)
    @given(case=cases())
    def test_earlier_is_fifteen_minutes_before_21_local_when_it_can_be(
        self, case: tuple[datetime, ZoneInfo]
    ) -> None:
        """With 21:00-08:00 and an anchor a day back, "earlier" lands at the local 20:45 of the
        window's evening (or later, where that wall time was skipped by DST)."""
        instant, tz = case
        landing = land(instant, tz, NIGHT, "earlier", anchor=instant - timedelta(days=1))
        if landing.landed != "earlier":
            return
        local = landing.send_at.astimezone(tz)
        assert local.time() >= (datetime(2000, 1, 1, 21) - EARLIER_BY).time()
        assert local.time() < time(21)
