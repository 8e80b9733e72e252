"""What a protocol's steps plan (service.planning.protocols): a rebook step only while sessions
remain (`only_if`), texts with every placeholder filled in the patient's locale or the clinic's, the
steps and times a plan refuses, and each mistake in a step's timing named by timing_problems.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta
from typing import Any

import pytest

from service.planning.protocols import Treatment, render_values, timing_problems
from tests.fixtures.protocols import ANA, CLINIC, TREATMENT, make_protocol, make_step, plan_for


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
