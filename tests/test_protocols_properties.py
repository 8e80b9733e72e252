"""Properties of plans (service.planning.protocols): whatever the time, zone, quiet-hours window and
rule, no message is sent in quiet hours or before the treatment, and the same inputs give the same
plan.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from service.planning.protocols import Treatment
from service.planning.timing import QuietHours
from tests.fixtures.protocols import ANA, BERLIN, CLINIC, LA, make_step, plan_for

ZONES = [LA, BERLIN, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Asia/Kolkata")]


@st.composite
def quiet_windows(draw: st.DrawFn) -> QuietHours:
    """Realistic windows: off, or two to twelve hours long, starting anywhere."""
    start = draw(st.integers(0, 23 * 60 + 59))
    length = draw(st.sampled_from([0, *range(120, 12 * 60 + 1, 15)]))
    end = (start + length) % (24 * 60)
    return QuietHours(time(start // 60, start % 60), time(end // 60, end % 60))


class TestPlanProperties:
    @settings(max_examples=200, deadline=None)
    @given(
        completed_at=st.datetimes(
            datetime(2020, 1, 1), datetime(2035, 1, 1), timezones=st.just(UTC)
        ),
        tz=st.sampled_from(ZONES),
        quiet=quiet_windows(),
    )
    def test_every_message_lands_outside_quiet_hours(
        self, completed_at: datetime, tz: ZoneInfo, quiet: QuietHours
    ) -> None:
        """Whatever the time, zone, window and rule, nothing is sent in quiet hours or before
        the treatment; only "earlier" moves a time back, only "skip" leaves one in."""
        steps = (
            make_step(key="soon", after=timedelta(minutes=90), every=timedelta(hours=7), count=4),
            make_step(key="serum", after=None, days=(0, 1, 2), at=(time(2, 30), time(20, 45))),
            make_step(key="early", after=timedelta(minutes=40), in_quiet_hours="earlier"),
            make_step(key="skip", after=timedelta(hours=5), in_quiet_hours="skip"),
        )
        messages = plan_for(
            *steps,
            treatment=Treatment(completed_at=completed_at),
            recipient=replace(ANA, timezone=tz),
            clinic=replace(CLINIC, quiet_hours=quiet),
        )
        assert 10 <= len(messages) <= 12  # day 0 may have begun before the treatment
        for message in messages:
            assert message.moved == (message.send_at != message.planned_at)
            if message.landed == "skipped":
                assert message.step == "skip"
                assert message.send_at == message.planned_at
                continue
            assert not quiet.contains(message.send_at.astimezone(tz).time())
            assert completed_at <= message.planned_at
            assert completed_at < message.send_at or message.send_at == message.planned_at
            if message.landed != "earlier":
                assert message.planned_at <= message.send_at
        assert [m.send_at for m in messages] == sorted(m.send_at for m in messages)

    def test_plans_are_pure(self) -> None:
        """The same inputs give the same plan, every time."""
        step = make_step(days=tuple(range(1, 15)), at=(time(8, 30), time(20, 30)), after=None)
        assert plan_for(step) == plan_for(step)
        assert len(plan_for(step)) == 28
