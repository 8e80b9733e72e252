"""`[retention]` (contract §19, service.config.retention): the defaults, periods in days or whole
years (a year is 366 days), nonsense and too-short periods refused by their TOML path (and by
their variable from the environment), and `check-config` printing the policy."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from service.config.retention import format_period, parse_period
from tests.fixtures.cli import _isolated, example, run
from tests.fixtures.config import problems_of
from tests.support import make_settings

__all__ = ["_isolated", "example"]  # the fixtures, from tests/fixtures/cli.py

DAY = timedelta(days=1)


class TestPolicy:
    def test_the_defaults_are_the_specs(self, tmp_path: Path) -> None:
        """400 days of messages and replies, 90 of photos, 30 of events, 6 years of audit."""
        retention = make_settings(tmp_path / "a.db").retention
        assert (retention.messages, retention.replies, retention.media) == (
            400 * DAY,
            400 * DAY,
            90 * DAY,
        )
        assert (retention.events, retention.audit) == (30 * DAY, 6 * 366 * DAY)

    @pytest.mark.parametrize(
        ("text", "days"), [("6y", 2196), ("1y30d", 396), ("400d", 400), ("8w", 56)]
    )
    def test_a_period_is_days_or_whole_years_of_366_days(self, text: str, days: int) -> None:
        """`6y` is never shorter than six calendar years, leap days and all."""
        assert parse_period(text) == days * DAY

    @pytest.mark.parametrize("text", ["6y", "400d", "1d12h", "30d"])
    def test_a_period_is_shown_as_written(self, text: str) -> None:
        """`check-config` shows `6y` and `400d`, not weeks and days."""
        assert format_period(parse_period(text)) == text


class TestRefused:
    @pytest.mark.parametrize(
        ("key", "value", "problem"),
        [
            ("messages", "forever", "not a period: 'forever'"),
            ("replies", "6 years", "not a period: '6 years'"),
            ("audit", "y", "not a period: 'y'"),
            ("media", "12h", "must be at least 1d"),
            ("events", "1d", "must be at least 3d"),
        ],
    )
    def test_a_nonsense_or_too_short_period_is_refused_by_its_path(
        self, tmp_path: Path, key: str, value: str, problem: str
    ) -> None:
        """One problem, naming `retention.<key>` and what is wrong."""
        [found] = problems_of(tmp_path, lambda d: d.update(retention={key: value}))
        assert found.startswith(f"retention.{key}: {problem}")

    def test_the_environment_is_checked_too(self, tmp_path: Path) -> None:
        """`AFTERCARE_RETENTION__EVENTS=soon` is refused naming the variable."""
        [found] = problems_of(tmp_path, lambda d: None, {"AFTERCARE_RETENTION__EVENTS": "soon"})
        assert "AFTERCARE_RETENTION__EVENTS" in found and "not a period: 'soon'" in found

    def test_an_unknown_key_is_refused(self, tmp_path: Path) -> None:
        """A typo (`message` for `messages`) is not silently a default."""
        [found] = problems_of(tmp_path, lambda d: d.update(retention={"message": "30d"}))
        assert found.startswith("retention.message:")


class TestCheckConfig:
    def test_check_config_prints_the_policy(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """The example's policy, each period as written, on the line after `valid`."""
        status, out, err = run(capsys, "--config", str(example), "check-config")
        assert (status, err) == (0, "")
        assert out.splitlines()[1] == (
            "retention: messages 400d, replies 400d, media 90d, events 30d, audit 6y"
        )

    def test_check_config_prints_a_policy_from_the_environment(
        self, capsys: pytest.CaptureFixture[str], example: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An override shows as the policy in force."""
        monkeypatch.setenv("AFTERCARE_RETENTION__MESSAGES", "2y")
        status, out, _ = run(capsys, "--config", str(example), "check-config")
        assert status == 0
        assert "retention: messages 2y, replies 400d," in out
