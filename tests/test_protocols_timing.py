"""When a protocol's steps land (service.planning.protocols): `after` alone or with `every`/`count`
in real time across DST, `days`/`at` in the patient's local time (day zero the treatment day), quiet
hours in the patient's zone moving a message to their end with its expiry counted from there, the
rules defer, earlier and skip, and the order of the messages.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from service.planning.protocols import Treatment
from service.planning.timing import QuietHours
from tests.fixtures.protocols import (
    ANA,
    BERLIN,
    CLINIC,
    LA,
    SIX_HOURS,
    local_times,
    make_step,
    plan_for,
)
from tests.helpers.timing import utc


class TestAfter:
    def test_after_alone_plans_one_message(self) -> None:
        """after = 2h is one message two hours after completion."""
        (message,) = plan_for(make_step(after=timedelta(hours=2)))
        assert message.planned_at == message.send_at == utc(2026, 6, 10, 19)
        assert (message.step, message.kind, message.seq, message.moved) == (
            "tonight",
            "aftercare",
            0,
            False,
        )

    def test_after_every_count_plans_a_series(self) -> None:
        """after, every and count give count messages, every apart, in seq order."""
        step = make_step(after=timedelta(days=1), every=timedelta(days=2), count=3)
        messages = plan_for(step)
        assert [m.send_at for m in messages] == [
            utc(2026, 6, 11, 17),
            utc(2026, 6, 13, 17),
            utc(2026, 6, 15, 17),
        ]
        assert [m.seq for m in messages] == [0, 1, 2]

    def test_after_counts_real_time_across_a_dst_change(self) -> None:
        """after = 1d is 24 real hours: past spring-forward the local clock reads an hour later."""
        noon_pst = Treatment(completed_at=datetime(2026, 3, 7, 12, tzinfo=LA))
        (message,) = plan_for(make_step(after=timedelta(days=1)), treatment=noon_pst)
        assert message.send_at == utc(2026, 3, 8, 20)
        assert local_times([message]) == [datetime(2026, 3, 8, 13)]

    def test_times_are_utc_whatever_zone_completed_at_is_in(self) -> None:
        """An aware completion time in any zone gives UTC instants."""
        berlin = Treatment(completed_at=datetime(2026, 6, 10, 19, tzinfo=BERLIN))
        (message,) = plan_for(make_step(), treatment=berlin)
        assert message.send_at == utc(2026, 6, 10, 19)
        assert message.send_at.tzinfo is UTC


class TestDaysAt:
    def test_a_range_of_days_with_two_times_plans_each_day_twice(self) -> None:
        """days 1-3 at 08:30 and 20:30 is six messages at those local times."""
        step = make_step(key="serum", days=(1, 2, 3), at=(time(8, 30), time(20, 30)), after=None)
        messages = plan_for(step)
        assert local_times(messages) == [
            datetime(2026, 6, day, hour, 30) for day in (11, 12, 13) for hour in (8, 20)
        ]
        assert [m.seq for m in messages] == list(range(6))

    def test_a_list_of_days_skips_the_others(self) -> None:
        """days 1, 3, 5 at 09:00 is three messages on those days only."""
        step = make_step(days=(1, 3, 5), at=(time(9),), after=None)
        assert local_times(plan_for(step)) == [datetime(2026, 6, d, 9) for d in (11, 13, 15)]

    def test_day_zero_is_the_local_treatment_day(self) -> None:
        """Days count from the patient's local date, not the UTC date."""
        # 05:00 UTC on June 11 is still 22:00 on June 10 in Los Angeles.
        late = Treatment(completed_at=utc(2026, 6, 11, 5))
        step = make_step(days=(1,), at=(time(8, 30),), after=None)
        assert local_times(plan_for(step, treatment=late)) == [datetime(2026, 6, 11, 8, 30)]

    def test_times_on_day_zero_before_the_treatment_are_left_out(self) -> None:
        """A 10:00 treatment gets the evening serum on day 0 but not the morning one."""
        step = make_step(days=(0, 1), at=(time(8, 30), time(20, 30)), after=None)
        messages = plan_for(step)
        assert local_times(messages) == [
            datetime(2026, 6, 10, 20, 30),
            datetime(2026, 6, 11, 8, 30),
            datetime(2026, 6, 11, 20, 30),
        ]
        assert [m.seq for m in messages] == [0, 1, 2]

    def test_a_time_exactly_at_completion_is_kept(self) -> None:
        """Only times strictly before the treatment are dropped."""
        step = make_step(days=(0,), at=(time(10),), after=None)
        assert local_times(plan_for(step)) == [datetime(2026, 6, 10, 10)]

    def test_seq_follows_time_even_when_at_is_unsorted(self) -> None:
        """Clock times listed evening first are still numbered in time order."""
        step = make_step(days=(1,), at=(time(20, 30), time(8, 30)), after=None)
        messages = plan_for(step)
        assert [(m.seq, m.send_at.astimezone(LA).hour) for m in messages] == [(0, 8), (1, 20)]

    def test_local_times_hold_across_a_dst_change(self) -> None:
        """08:30 stays 08:30 local on both sides of spring-forward; UTC shifts instead."""
        saturday = Treatment(completed_at=datetime(2026, 3, 7, 7, tzinfo=LA))
        step = make_step(days=(0, 1, 2), at=(time(8, 30),), after=None)
        messages = plan_for(step, treatment=saturday)
        assert [m.send_at for m in messages] == [
            utc(2026, 3, 7, 16, 30),
            utc(2026, 3, 8, 15, 30),
            utc(2026, 3, 9, 15, 30),
        ]

    def test_local_times_are_the_patients_not_the_clinics(self) -> None:
        """A patient in Berlin gets 08:30 Berlin time."""
        in_berlin = replace(ANA, timezone=BERLIN)
        step = make_step(days=(1,), at=(time(8, 30),), after=None)
        (message,) = plan_for(step, recipient=in_berlin)
        assert message.send_at == utc(2026, 6, 11, 6, 30)


class TestQuietHours:
    def test_message_in_quiet_hours_moves_to_their_end(self) -> None:
        """A message due at 21:00 local goes out at 08:00 the next morning."""
        evening = Treatment(completed_at=datetime(2026, 6, 10, 19, tzinfo=LA))
        (message,) = plan_for(make_step(after=timedelta(hours=2)), treatment=evening)
        assert message.planned_at == utc(2026, 6, 11, 4)
        assert message.send_at == utc(2026, 6, 11, 15)
        assert message.moved

    def test_the_clinics_window_applies_in_the_patients_zone(self) -> None:
        """Quiet hours are the clinic's setting read on the patient's clock."""
        lunch = replace(CLINIC, quiet_hours=QuietHours(time(12), time(14)))
        (message,) = plan_for(make_step(), clinic=lunch)  # 12:00 in Los Angeles
        assert local_times([message]) == [datetime(2026, 6, 10, 14)]

    def test_expiry_counts_from_the_moved_time(self) -> None:
        """expires_at is send_at plus the step's expires_after."""
        evening = Treatment(completed_at=datetime(2026, 6, 10, 19, tzinfo=LA))
        step = make_step(expires_after=timedelta(hours=3))
        (message,) = plan_for(step, treatment=evening)
        assert message.expires_at == message.send_at + timedelta(hours=3)

    def test_without_expires_after_the_default_applies(self) -> None:
        """A step without expires_after uses default_expires_after."""
        (message,) = plan_for(make_step(expires_after=None))
        assert message.expires_at == message.send_at + SIX_HOURS


class TestQuietRules:
    # 19:30 PST on Tuesday 24 November 2026: 2h later is 21:30, in quiet hours.
    LATE = Treatment(completed_at=utc(2026, 11, 25, 3, 30))

    def test_defer_is_the_default(self) -> None:
        """Without in_quiet_hours, 21:30 goes at 08:00 the next morning, as it always has."""
        (message,) = plan_for(make_step(), treatment=self.LATE)
        assert (message.send_at, message.landed) == (utc(2026, 11, 25, 16), "deferred")

    def test_earlier_sends_the_tonight_note_at_2045(self) -> None:
        """in_quiet_hours = "earlier": 20:45 PST the same evening, after the treatment."""
        (message,) = plan_for(make_step(in_quiet_hours="earlier"), treatment=self.LATE)
        assert (message.send_at, message.landed) == (utc(2026, 11, 25, 4, 45), "earlier")
        assert message.moved
        assert message.expires_at == message.send_at + SIX_HOURS

    def test_earlier_never_goes_before_the_treatment(self) -> None:
        """Completed at 20:50 PST, 1h later is 21:50: 20:45 is before it, so 08:00."""
        treatment = Treatment(completed_at=utc(2026, 11, 25, 4, 50))
        step = make_step(after=timedelta(hours=1), in_quiet_hours="earlier")
        (message,) = plan_for(step, treatment=treatment)
        assert (message.send_at, message.landed) == (utc(2026, 11, 25, 16), "deferred")

    def test_skip_keeps_the_time_and_says_skipped(self) -> None:
        """in_quiet_hours = "skip": planned at 21:30, landed "skipped", not moved."""
        (message,) = plan_for(make_step(in_quiet_hours="skip"), treatment=self.LATE)
        assert (message.send_at, message.landed, message.moved) == (
            utc(2026, 11, 25, 5, 30),
            "skipped",
            False,
        )

    def test_a_time_outside_quiet_hours_is_on_time_whatever_the_rule(self) -> None:
        """The 10:00 treatment's 12:00 note lands on time under every rule."""
        for rule in ("defer", "earlier", "skip"):
            (message,) = plan_for(make_step(in_quiet_hours=rule))
            assert (message.send_at, message.landed) == (utc(2026, 6, 10, 19), "on time")


class TestOrdering:
    def test_messages_are_ordered_by_send_time(self) -> None:
        """A later step listed first still comes after an earlier one."""
        later = make_step(key="checkin", kind="checkin", after=timedelta(days=3))
        sooner = make_step(key="tonight", after=timedelta(hours=2))
        assert [m.step for m in plan_for(later, sooner)] == ["tonight", "checkin"]

    def test_ties_keep_the_protocol_order(self) -> None:
        """Two steps at the same instant come in the order the protocol lists them."""
        first = make_step(key="b", after=timedelta(hours=2))
        second = make_step(key="a", after=timedelta(hours=2))
        assert [m.step for m in plan_for(first, second)] == ["b", "a"]

    def test_messages_moved_to_the_same_morning_keep_step_then_seq_order(self) -> None:
        """Quiet hours can stack messages on one instant; order stays stable."""
        evening = Treatment(completed_at=datetime(2026, 6, 10, 20, tzinfo=LA))
        series = make_step(
            key="series", after=timedelta(hours=1), every=timedelta(minutes=30), count=3
        )
        once = make_step(key="once", after=timedelta(hours=2))
        messages = plan_for(series, once, treatment=evening)
        assert {m.send_at for m in messages} == {utc(2026, 6, 11, 15)}
        assert [(m.step, m.seq) for m in messages] == [
            ("series", 0),
            ("series", 1),
            ("series", 2),
            ("once", 0),
        ]
