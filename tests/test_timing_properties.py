"""Properties of quiet hours and DST (service.planning.timing), over instants near real zones'
offset changes (tests/helpers/timing.py): a pushed instant is never in quiet hours, and every
local_to_utc result is a local time that exists.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from service.planning.timing import local_to_utc, push_out_of_quiet_hours
from tests.helpers.timing import cases, clocks, quiet_windows


def exists(wall: datetime, tz: ZoneInfo) -> bool:
    """Whether a naive wall time is shown by the clock in `tz` at some instant."""
    return any(
        wall.replace(tzinfo=tz, fold=fold).astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        == wall
        for fold in (0, 1)
    )


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
