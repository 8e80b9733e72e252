"""Which configuration file is read (service.config.loading): --config, then $AFTERCARE_CONFIG, then
./config.toml, then the example; and the shipped config.example.toml: valid as it ships, with
micro-needling and more, every protocol planning for every clinic, the serum step on days 1 to 14
morning and evening.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from service.config import load_settings, resolve_config_path
from service.planning.timing import parse_days
from service.previews import preview
from tests.fixtures.config import EXAMPLE


class TestExampleConfig:
    def test_the_example_config_is_valid(self) -> None:
        """config.example.toml loads as it ships, with both clinics."""
        settings = load_settings(EXAMPLE, environ={}).settings
        assert set(settings.clinics) == {"glow-downtown", "glow-madrid"}
        assert settings.sms.backend == "console"

    def test_it_ships_microneedling_and_at_least_one_more_protocol(self) -> None:
        """The micro-needling protocol is there under its key, with company."""
        settings = load_settings(EXAMPLE, environ={}).settings
        assert "microneedling" in settings.protocols
        assert len(settings.protocols) >= 2

    @pytest.mark.parametrize("clinic", ["glow-downtown", "glow-madrid"])
    def test_every_protocol_plans_for_every_clinic(self, clinic: str) -> None:
        """Each protocol renders every step in the clinic's language."""
        settings = load_settings(EXAMPLE, environ={}).settings
        for key in settings.protocols:
            table = preview(
                settings,
                protocol=key,
                clinic_id=clinic,
                completed_at=datetime(2026, 11, 25, 15, tzinfo=UTC),
                timezone=None,
                session=1,
                of=3,
            )
            assert len(table.splitlines()) > 3, key

    def test_the_serum_step_runs_days_1_to_14_morning_and_evening(self) -> None:
        """Micro-needling's serum reminder covers two weeks, twice a day."""
        settings = load_settings(EXAMPLE, environ={}).settings
        serum = [s for s in settings.protocols["microneedling"].steps if s.kind == "serum"]
        assert len(serum) == 1
        assert serum[0].days is not None
        assert parse_days(serum[0].days) == tuple(range(1, 15))
        assert [t < time(12) for t in serum[0].at] == [True, False]
        assert serum[0].at[1] >= time(18)


class TestResolveConfigPath:
    @pytest.fixture(autouse=True)
    def _in_tmp(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "config.toml").write_text("")
        (tmp_path / "config.example.toml").write_text("")

    def test_an_explicit_path_wins(self) -> None:
        """--config beats the environment and the files in the directory."""
        path = resolve_config_path("given.toml", {"AFTERCARE_CONFIG": "env.toml"})
        assert path == Path("given.toml")

    def test_the_environment_comes_next(self) -> None:
        """$AFTERCARE_CONFIG beats ./config.toml."""
        assert resolve_config_path(None, {"AFTERCARE_CONFIG": "env.toml"}) == Path("env.toml")

    def test_then_config_toml_in_the_working_directory(self) -> None:
        """./config.toml is used when it exists (an empty variable does not count)."""
        assert resolve_config_path(None, {"AFTERCARE_CONFIG": ""}) == Path("config.toml")

    def test_then_the_example(self, tmp_path: Path) -> None:
        """Without ./config.toml the shipped example is used."""
        (tmp_path / "config.toml").unlink()
        assert resolve_config_path(None, {}) == Path("config.example.toml")
