"""Protocol steps to a plan of messages (service.planning.protocols)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.planning.protocols import (
    ClinicView,
    PlannedMessage,
    Protocol,
    Recipient,
    Step,
    Treatment,
    plan,
    render_values,
    timing_problems,
)
from service.planning.timing import DEFAULT_QUIET_HOURS, QuietHours

LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")
SIX_HOURS = timedelta(hours=6)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def make_step(**overrides: Any) -> Step:
    fields: dict[str, Any] = {
        "key": "tonight",
        "kind": "aftercare",
        "texts": {"en": "Hi {first_name}, no makeup tonight."},
        "after": timedelta(hours=2),
    }
    return Step(**(fields | overrides))


def make_protocol(*steps: Step) -> Protocol:
    return Protocol(
        key="microneedling",
        title="Micro-needling aftercare",
        default_serum="hyaluronic acid serum",
        steps=steps or (make_step(),),
    )


# 10:00 in Los Angeles (PDT), a Wednesday morning treatment.
TREATMENT = Treatment(completed_at=utc(2026, 6, 10, 17), session_number=1, sessions_planned=3)
ANA = Recipient(first_name="Ana", timezone=LA, locale="en")
CLINIC = ClinicView(name="Glow Skin Studio", locale="en", quiet_hours=DEFAULT_QUIET_HOURS)


def plan_for(
    *steps: Step,
    treatment: Treatment = TREATMENT,
    recipient: Recipient = ANA,
    clinic: ClinicView = CLINIC,
) -> list[PlannedMessage]:
    return plan(
        make_protocol(*steps), treatment, recipient, clinic, default_expires_after=SIX_HOURS
    )


def local_times(messages: list[PlannedMessage], tz: ZoneInfo = LA) -> list[datetime]:
    return [m.send_at.astimezone(tz).replace(tzinfo=None) for m in messages]


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


class TestOnlyIf:
    REBOOK = make_step(
        key="next-session",
        kind="rebook",
        after=timedelta(weeks=4),
        only_if="more_sessions_planned",
        texts={"en": "Book session {next_session_number} of {sessions_planned}."},
    )

    def test_a_rebook_step_is_planned_while_sessions_remain(self) -> None:
        """Session 1 of 3 gets the reminder to book session 2."""
        (message,) = plan_for(self.REBOOK)
        assert message.body == "Book session 2 of 3."

    @pytest.mark.parametrize(("number", "planned"), [(3, 3), (1, 1), (4, 3)])
    def test_a_rebook_step_is_left_out_after_the_last_session(
        self, number: int, planned: int
    ) -> None:
        """The last (or only) session of a series gets no reminder."""
        last = replace(TREATMENT, session_number=number, sessions_planned=planned)
        assert plan_for(self.REBOOK, treatment=last) == []


class TestTexts:
    def test_every_placeholder_is_filled(self) -> None:
        """The body is the rendered template, without any footer."""
        text = (
            "{first_name} at {clinic_name}: {serum}, "
            "{session_number}/{sessions_planned}, next {next_session_number}"
        )
        (message,) = plan_for(make_step(texts={"en": text}))
        assert message.body == ("Ana at Glow Skin Studio: hyaluronic acid serum, 1/3, next 2")

    @pytest.mark.parametrize(
        ("serum", "expected"),
        [
            ("vitamin C serum", "vitamin C serum"),
            (None, "hyaluronic acid serum"),
            ("", "hyaluronic acid serum"),
        ],
    )
    def test_the_serum_defaults_to_the_protocols(self, serum: str | None, expected: str) -> None:
        """The treatment's serum wins; none (or empty) means the protocol's default."""
        treatment = replace(TREATMENT, serum=serum)
        assert render_values(make_protocol(), treatment, ANA, CLINIC)["serum"] == expected

    def test_render_values_covers_every_placeholder(self) -> None:
        """The values are strings for exactly the known placeholders."""
        assert render_values(make_protocol(), TREATMENT, ANA, CLINIC) == {
            "first_name": "Ana",
            "clinic_name": "Glow Skin Studio",
            "serum": "hyaluronic acid serum",
            "session_number": "1",
            "sessions_planned": "3",
            "next_session_number": "2",
        }

    def test_the_patients_locale_picks_the_text(self) -> None:
        """A Spanish-speaking patient gets the es text, and the plan says so."""
        step = make_step(texts={"en": "Hi {first_name}", "es": "Hola {first_name}"})
        (message,) = plan_for(step, recipient=replace(ANA, locale="es-MX"))
        assert (message.locale, message.body) == ("es", "Hola Ana")

    def test_without_a_text_in_the_patients_locale_the_clinics_is_used(self) -> None:
        """A patient locale with no text falls back to the clinic's."""
        (message,) = plan_for(make_step(), recipient=replace(ANA, locale="fr"))
        assert message.locale == "en"

    def test_a_step_without_a_usable_text_raises_lookup_error(self) -> None:
        """Config validation prevents it; the planner still refuses to guess."""
        with pytest.raises(LookupError):
            plan_for(make_step(texts={"de": "Hallo"}))

    def test_a_bad_template_raises_value_error(self) -> None:
        """Templates are checked again at render time."""
        with pytest.raises(ValueError, match="unknown placeholder"):
            plan_for(make_step(texts={"en": "Hi {name}"}))


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


class TestPlanRefuses:
    def test_a_naive_completion_time(self) -> None:
        """Without a zone the treatment time is ambiguous."""
        naive = Treatment(completed_at=datetime(2026, 6, 10, 17))
        with pytest.raises(ValueError, match="aware"):
            plan_for(make_step(days=(1,), at=(time(9),), after=None), treatment=naive)

    def test_a_step_with_a_bad_timing_form(self) -> None:
        """A step that mixes timing forms is named in the error."""
        with pytest.raises(ValueError, match="step 'tonight': use either"):
            plan_for(make_step(days=(1,), at=(time(9),)))


class TestTimingProblems:
    @pytest.mark.parametrize(
        "overrides",
        [
            {},
            {"after": timedelta(0)},
            {"every": timedelta(days=1), "count": 3},
            {"after": None, "days": (1, 2), "at": (time(8, 30),)},
            {"expires_after": timedelta(hours=3)},
        ],
    )
    def test_each_valid_form_has_no_problems(self, overrides: dict[str, Any]) -> None:
        """after, after with every and count, and days with at are all fine."""
        assert timing_problems(make_step(**overrides)) == []

    @pytest.mark.parametrize(
        ("overrides", "problem"),
        [
            ({"after": None}, "no timing: set after"),
            ({"days": (1,), "at": (time(9),)}, "use either after"),
            ({"count": 3}, "count needs every"),
            ({"every": timedelta(days=1)}, "every needs count"),
            ({"every": timedelta(days=1), "count": 0}, "count must be at least 1"),
            ({"every": timedelta(0), "count": 2}, "every must be positive"),
            ({"after": timedelta(hours=-1)}, "after must not be negative"),
            ({"after": None, "every": timedelta(days=1), "count": 2}, "every and count need after"),
            ({"after": None, "days": (1,)}, "days needs at"),
            ({"after": None, "at": (time(9),)}, "at needs days"),
            ({"after": None, "days": (1, 400), "at": (time(9),)}, "days must be from 0 to 366"),
            ({"after": None, "days": (-1,), "at": (time(9),)}, "days must be from 0 to 366"),
            ({"expires_after": timedelta(0)}, "expires_after must be positive"),
        ],
    )
    def test_each_mistake_is_named(self, overrides: dict[str, Any], problem: str) -> None:
        """A bad or mixed timing form gives one readable problem."""
        problems = timing_problems(make_step(**overrides))
        assert len(problems) == 1
        assert problems[0].startswith(problem)


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
