"""Prep steps planned from an appointment (service.planning.prep, contract §13)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.planning.prep import Appointment, plan_prep, prep_occurrences, prep_values
from service.planning.protocols import (
    ClinicView,
    PlannedMessage,
    Protocol,
    Recipient,
    Step,
    Treatment,
    plan,
)
from service.planning.quiet import QUIET_HOURS_REASON
from service.planning.timing import DEFAULT_QUIET_HOURS, QuietHours
from service.storage import reasons
from tests.helpers.timing import cases, quiet_windows

LA = ZoneInfo("America/Los_Angeles")
SIX_HOURS = timedelta(hours=6)
ANA = Recipient(first_name="Ana", timezone=LA, locale="en")
CLINIC = ClinicView(name="Glow Skin Studio", locale="en", quiet_hours=DEFAULT_QUIET_HOURS)


def la(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LA).astimezone(UTC)


# Session 2 of 3 on Wednesday 10 March 2027 at 10:00 PST; booked well ahead.
STARTS = la(2027, 3, 10, 10)
BOOKED = la(2027, 2, 1, 12)
APPOINTMENT = Appointment(starts_at=STARTS, session_number=2, sessions_planned=3)


def prep_step(**overrides: Any) -> Step:
    fields: dict[str, Any] = {
        "key": "prep-tomorrow",
        "kind": "prep",
        "texts": {"en": "Hi {first_name}, session {session_number} tomorrow."},
        "days_before": (1,),
        "at": (time(18),),
    }
    return Step(**(fields | overrides))


def protocol(*steps: Step) -> Protocol:
    return Protocol(key="mn", title="Micro-needling", default_serum="serum", steps=steps)


def prep_for(
    *steps: Step,
    appointment: Appointment = APPOINTMENT,
    now: datetime = BOOKED,
    recipient: Recipient = ANA,
    clinic: ClinicView = CLINIC,
) -> list[PlannedMessage]:
    return plan_prep(
        protocol(*steps),
        appointment,
        recipient,
        clinic,
        now=now,
        default_expires_after=SIX_HOURS,
    )


def local(message: PlannedMessage, tz: ZoneInfo = LA) -> str:
    return message.send_at.astimezone(tz).strftime("%a %d %H:%M %Z")


class TestTimingForms:
    def test_before_is_once_that_long_before_the_start(self) -> None:
        """before = 3d: one message 72 real hours before 10:00."""
        (message,) = prep_for(prep_step(days_before=(), at=(), before=timedelta(days=3)))
        assert message.send_at == STARTS - timedelta(days=3)
        assert message.landed == "on time"

    def test_before_counts_real_time_across_a_dst_change(self) -> None:
        """3 days before 10:00 PDT on 16 March is 09:00 PST on the 13th (the clocks moved)."""
        appointment = replace(APPOINTMENT, starts_at=la(2027, 3, 16, 10))
        (message,) = prep_for(
            prep_step(days_before=(), at=(), before=timedelta(days=3)), appointment=appointment
        )
        assert local(message) == "Sat 13 09:00 PST"

    def test_days_before_are_local_days_before_the_appointments_day(self) -> None:
        """days_before [3, 1] at 18:00: Sunday and Tuesday evenings, in time order."""
        messages = prep_for(prep_step(days_before=(3, 1)))
        assert [local(m) for m in messages] == ["Sun 07 18:00 PST", "Tue 09 18:00 PST"]
        assert [m.seq for m in messages] == [0, 1]

    def test_days_before_hold_the_local_clock_across_a_dst_change(self) -> None:
        """A week before a session on 16 March (PDT) is 18:00 PST on the 9th."""
        appointment = replace(APPOINTMENT, starts_at=la(2027, 3, 16, 10))
        messages = prep_for(prep_step(days_before=(7, 1)), appointment=appointment)
        assert [local(m) for m in messages] == ["Tue 09 18:00 PST", "Mon 15 18:00 PDT"]

    def test_the_days_count_in_the_patients_zone(self) -> None:
        """10:00 in Los Angeles is already Thursday in Sydney: the day before is Wednesday."""
        sydney = ZoneInfo("Australia/Sydney")
        messages = prep_for(prep_step(at=(time(9),)), recipient=replace(ANA, timezone=sydney))
        assert [local(m, sydney) for m in messages] == ["Wed 10 09:00 AEDT"]

    def test_day_zero_times_before_the_start_only(self) -> None:
        """days_before [0] at 08:00 and 12:00: the 12:00 is after a 10:00 start, left out."""
        messages = prep_for(prep_step(days_before=(0,), at=(time(8), time(12))))
        assert [local(m) for m in messages] == ["Wed 10 08:00 PST"]

    def test_expiry_is_never_after_the_start(self) -> None:
        """The morning note expires with the default 6h, but at 10:00 at the latest."""
        (message,) = prep_for(prep_step(days_before=(0,), at=(time(8),)))
        assert message.expires_at == STARTS

    def test_a_treatment_plan_leaves_prep_steps_out(self) -> None:
        """plan() of a treatment plans no prep step: only appointments do."""
        aftercare = Step(
            key="tonight", kind="aftercare", texts={"en": "Hi"}, after=timedelta(hours=2)
        )
        messages = plan(
            protocol(aftercare, prep_step()),
            Treatment(completed_at=BOOKED),
            ANA,
            CLINIC,
            default_expires_after=SIX_HOURS,
        )
        assert [m.step for m in messages] == ["tonight"]

    def test_prep_planning_leaves_other_steps_out(self) -> None:
        """plan_prep() plans nothing but prep steps."""
        aftercare = Step(
            key="tonight", kind="aftercare", texts={"en": "Hi"}, after=timedelta(hours=2)
        )
        assert [m.step for m in prep_for(aftercare, prep_step())] == ["prep-tomorrow"]

    def test_a_step_of_another_kind_has_no_prep_occurrences(self) -> None:
        """prep_occurrences refuses a step that is not of kind prep."""
        with pytest.raises(ValueError, match='not a step of kind "prep"'):
            prep_occurrences(replace(prep_step(), kind="aftercare"), STARTS, LA)


class TestPastAndQuietHours:
    def test_a_time_already_past_is_reported_past_never_sent_late(self) -> None:
        """Booked on Monday for Wednesday: Sunday's note is past; Tuesday's stands."""
        messages = prep_for(prep_step(days_before=(3, 1)), now=la(2027, 3, 8, 9))
        assert [(m.seq, m.landed) for m in messages] == [(0, "past"), (1, "on time")]
        assert messages[0].send_at == messages[0].planned_at == la(2027, 3, 7, 18)

    def test_quiet_hours_defer_a_prep_time_to_their_end(self) -> None:
        """before = 3h of a 10:00 start is 07:00, in quiet hours: 08:00."""
        (message,) = prep_for(prep_step(days_before=(), at=(), before=timedelta(hours=3)))
        assert (local(message), message.landed) == ("Wed 10 08:00 PST", "deferred")

    def test_a_prep_time_deferred_to_the_start_is_skipped(self) -> None:
        """before = 3h of an 08:00 start is 05:00; 08:00 would be too late: skipped."""
        appointment = replace(APPOINTMENT, starts_at=la(2027, 3, 10, 8))
        (message,) = prep_for(
            prep_step(days_before=(), at=(), before=timedelta(hours=3)), appointment=appointment
        )
        assert message.landed == "skipped"
        assert message.send_at == message.planned_at == la(2027, 3, 10, 5)

    def test_earlier_moves_a_prep_time_to_before_quiet_hours(self) -> None:
        """22:00 the evening before, "earlier": 20:45."""
        (message,) = prep_for(prep_step(at=(time(22),), in_quiet_hours="earlier"))
        assert (local(message), message.landed) == ("Tue 09 20:45 PST", "earlier")

    def test_earlier_is_never_in_the_past(self) -> None:
        """Booked at 20:50 for 22:00 the evening before... 20:45 has gone: deferred (08:00)."""
        messages = prep_for(
            prep_step(at=(time(22),), in_quiet_hours="earlier"), now=la(2027, 3, 9, 20, 50)
        )
        assert [(local(m), m.landed) for m in messages] == [("Wed 10 08:00 PST", "deferred")]

    def test_skip_records_the_message_skipped(self) -> None:
        """22:00 with "skip" stays 22:00 and is skipped (cancelled, reason quiet hours)."""
        (message,) = prep_for(prep_step(at=(time(22),), in_quiet_hours="skip"))
        assert (local(message), message.landed) == ("Tue 09 22:00 PST", "skipped")
        assert reasons.QUIET_HOURS == QUIET_HOURS_REASON == "quiet hours"


class TestValues:
    def test_both_session_placeholders_name_the_appointments_session(self) -> None:
        """A prep message is about the coming session: session 2 either way."""
        values = prep_values(protocol(prep_step()), APPOINTMENT, ANA, CLINIC)
        assert values["session_number"] == values["next_session_number"] == "2"
        assert values["sessions_planned"] == "3"
        assert values["serum"] == "serum"

    def test_the_text_is_rendered(self) -> None:
        """Placeholders are filled as in a treatment's plan."""
        (message,) = prep_for(prep_step())
        assert message.body == "Hi Ana, session 2 tomorrow."
        assert message.kind == "prep"


class TestPrepProperties:
    @settings(max_examples=500, deadline=None)
    @given(
        data=st.data(),
        case=cases(),
        ahead=st.integers(min_value=-2 * 24 * 60, max_value=10 * 24 * 60),
        rule=st.sampled_from(["defer", "earlier", "skip"]),
    )
    def test_what_is_sent_is_after_now_before_the_start_and_outside_quiet_hours(
        self, data: st.DataObject, case: tuple[datetime, ZoneInfo], ahead: int, rule: Any
    ) -> None:
        """Across zones and DST (starts often near a change): a message to be sent is not in
        the past, not after the session and never in quiet hours; past ones were due before
        now; skipped ones kept their time; every step is there."""
        starts_at, tz = case
        quiet: QuietHours = data.draw(quiet_windows())
        now = starts_at - timedelta(minutes=ahead)
        steps = (
            prep_step(key="before", days_before=(), at=(), before=timedelta(hours=26)),
            prep_step(
                key="days",
                days_before=(0, 1, 3),
                at=(time(7, 30), time(22, 15)),
                in_quiet_hours=rule,
            ),
        )
        messages = prep_for(
            *steps,
            appointment=replace(APPOINTMENT, starts_at=starts_at),
            now=now,
            recipient=replace(ANA, timezone=tz),
            clinic=replace(CLINIC, quiet_hours=quiet),
        )
        for m in messages:
            assert m.planned_at < starts_at
            if m.landed == "past":
                assert m.planned_at < now
            elif m.landed == "skipped":
                assert m.send_at == m.planned_at
            else:
                assert now <= m.send_at < starts_at
                assert m.expires_at <= starts_at
                assert not quiet.contains(m.send_at.astimezone(tz).time())
        assert [m.send_at for m in messages] == sorted(m.send_at for m in messages)
        assert {m.step for m in messages} <= {"before", "days"}
        assert sum(m.step == "before" for m in messages) == 1
