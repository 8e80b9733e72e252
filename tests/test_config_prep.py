"""Prep steps and in_quiet_hours in the configuration (contract §4, §13, §15): what check-config
accepts, and each mistake by its TOML path."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest

from service.config import load_settings
from service.planning.timing import parse_days
from tests.fixtures.config import EXAMPLE, Edit, problems_of, step
from tests.helpers.toml import write_toml
from tests.support import config_data

PREP = {
    "key": "prep",
    "kind": "prep",
    "days_before": [3, 1],
    "at": ["18:00"],
    "text": {"en": "Session {session_number} soon.", "de": "Sitzung {session_number} bald."},
}


def with_prep(**overrides: Any) -> Edit:
    """An edit adding a prep step (as PREP with `overrides`; None removes a key) as step 3."""

    def edit(data: dict[str, Any]) -> None:
        prep = {**PREP, **overrides}
        data["protocols"]["mn"]["steps"].append({k: v for k, v in prep.items() if v is not None})

    return edit


PROBLEMS = [
    pytest.param(
        with_prep(days_before=None, at=None),
        ['protocols.mn.steps[3]: no timing: a step of kind "prep" needs before, or days_before'],
        id="prep-without-timing",
    ),
    pytest.param(
        with_prep(before="3d"),
        ["protocols.mn.steps[3]: use either before or days_before with at, not both"],
        id="before-and-days-before",
    ),
    pytest.param(
        with_prep(days_before=None, at=None, after="2h"),
        ['protocols.mn.steps[3]: a step of kind "prep" is timed from the appointment: use'],
        id="prep-with-after",
    ),
    pytest.param(
        with_prep(days="1-3"),
        ['protocols.mn.steps[3]: a step of kind "prep" is timed from the appointment: use'],
        id="prep-with-days",
    ),
    pytest.param(
        with_prep(at=None),
        ["protocols.mn.steps[3]: days_before needs at (local clock times)"],
        id="days-before-without-at",
    ),
    pytest.param(
        with_prep(days_before=None),
        ["protocols.mn.steps[3]: at needs days_before (local days before the appointment)"],
        id="at-without-days-before",
    ),
    pytest.param(
        with_prep(days_before=None, at=None, before="0s"),
        ["protocols.mn.steps[3]: before must be positive"],
        id="before-zero",
    ),
    pytest.param(
        with_prep(days_before=[-1]),
        ["protocols.mn.steps[3].days_before: days count from 0 (the appointment's day), not -1"],
        id="negative-days-before",
    ),
    pytest.param(
        with_prep(before="3 days", days_before=None, at=None),
        ["protocols.mn.steps[3].before: not a duration: '3 days'"],
        id="bad-before",
    ),
    pytest.param(
        lambda d: step(d, 0).update(before="1h"),
        ['protocols.mn.steps[0]: before and days_before are for steps of kind "prep" only'],
        id="before-on-aftercare",
    ),
    pytest.param(
        lambda d: step(d, 1).update(days_before=[1]),
        ['protocols.mn.steps[1]: before and days_before are for steps of kind "prep" only'],
        id="days-before-on-serum",
    ),
    pytest.param(
        lambda d: step(d, 0).update(in_quiet_hours="later"),
        ["protocols.mn.steps[0].in_quiet_hours: Input should be 'defer', 'earlier' or 'skip'"],
        id="unknown-quiet-rule",
    ),
    pytest.param(
        lambda d: step(d, 0).update(kind="prepare"),
        ["protocols.mn.steps[0].kind: Input should be 'aftercare', 'serum', 'checkin', 'rebook'"],
        id="unknown-kind",
    ),
]


class TestPrepProblems:
    @pytest.mark.parametrize(("edit", "expected"), PROBLEMS)
    def test_each_problem_is_reported_by_its_toml_path(
        self, tmp_path: Path, edit: Edit, expected: list[str]
    ) -> None:
        """The one thing wrong is the one problem reported, starting with its path."""
        problems = problems_of(tmp_path, edit)
        assert len(problems) == len(expected), problems
        for problem, start in zip(problems, expected, strict=True):
            assert problem.startswith(start), problems


class TestPrepAccepted:
    @pytest.mark.parametrize(
        "overrides",
        [
            {},
            {"days_before": "3-5"},
            {"days_before": [0], "at": ["08:00"]},
            {"days_before": None, "at": None, "before": "3d"},
            {"in_quiet_hours": "earlier"},
            {"in_quiet_hours": "skip"},
        ],
    )
    def test_each_prep_form_is_valid(self, tmp_path: Path, overrides: dict[str, Any]) -> None:
        """before, or days_before (a list or a range) with at, under any quiet-hours rule."""
        data = config_data(tmp_path / "aftercare.db")
        with_prep(**overrides)(data)
        loaded = load_settings(write_toml(tmp_path / "config.toml", data), environ={})
        assert [s.kind for s in loaded.settings.protocols["mn"].steps][-1] == "prep"

    def test_the_step_carries_its_rule_and_form_into_planning(self, tmp_path: Path) -> None:
        """The planning Step gets in_quiet_hours, before and the parsed days_before."""
        data = config_data(tmp_path / "aftercare.db")
        with_prep(in_quiet_hours="earlier", days_before="1,3")(data)
        settings = load_settings(write_toml(tmp_path / "config.toml", data), environ={}).settings
        prep = settings.protocol("mn", locale="en").steps[-1]
        assert (prep.kind, prep.in_quiet_hours, prep.days_before) == ("prep", "earlier", (1, 3))
        assert prep.at == (time(18),)
        assert settings.protocol("mn", locale="en").steps[0].in_quiet_hours == "defer"


class TestExamplePrep:
    def test_every_protocol_ships_prep_steps_in_both_locales(self) -> None:
        """Each protocol has prep steps, each with an en and an es text."""
        settings = load_settings(EXAMPLE, environ={}).settings
        for key, protocol in settings.protocols.items():
            prep = [s for s in protocol.steps if s.kind == "prep"]
            assert len(prep) >= 3, key
            for s in prep:
                assert isinstance(s.text, dict)
                assert {"en", "es"} <= set(s.text), (key, s.key)

    def test_the_prep_steps_say_what_a_clinic_needs_said(self) -> None:
        """Retinoids and AHA/BHA paused 3-5 days before, no sunburn or self-tanner the week
        before, clean skin and no makeup that morning, a cold sore or new medication told."""
        settings = load_settings(EXAMPLE, environ={}).settings
        for key in ("microneedling", "microneedling-prp"):
            steps = [s for s in settings.protocols[key].steps if s.kind == "prep"]
            texts = " ".join(s.text["en"] for s in steps if isinstance(s.text, dict)).lower()
            for words in ("retinoid", "aha/bha", "sunburn", "self-tanner", "clean skin"):
                assert words in texts, (key, words)
            for words in ("no makeup", "cold sore", "new medication"):
                assert words in texts, (key, words)
            actives = next(s for s in steps if "retinoid" in s.text["en"].lower())  # type: ignore[index]
            assert actives.days_before is not None
            assert 3 <= min(parse_days(actives.days_before)) <= 5

    def test_the_tonight_steps_go_earlier_rather_than_next_morning(self) -> None:
        """Every protocol's evening "tonight" note uses in_quiet_hours = "earlier"."""
        settings = load_settings(EXAMPLE, environ={}).settings
        for key, protocol in settings.protocols.items():
            tonight = next(s for s in protocol.steps if s.key == "tonight")
            assert tonight.in_quiet_hours == "earlier", key
            assert tonight.after is not None and tonight.after <= timedelta(hours=2)
