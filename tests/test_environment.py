"""The environment rule (contract §14): which AFTERCARE_* variables are settings, what each sets,
and which variable a problem names (service.config.environment through service.config)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.config import Loaded, load_settings
from service.config.environment import aligned, dotted, parse_loc
from service.errors import ConfigError
from tests.support import SECRET, make_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"
OTHER = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
KUBERNETES = {
    "AFTERCARE_PORT": "tcp://10.0.0.1:8080",
    "AFTERCARE_SERVICE_HOST": "10.0.0.1",
    "AFTERCARE_SERVICE_PORT": "8080",
    "AFTERCARE_PORT_8080_TCP_ADDR": "10.0.0.1",
}


def load(environ: dict[str, str]) -> Loaded:
    """The example configuration under `environ`."""
    return load_settings(EXAMPLE, environ=environ)


def problems(environ: dict[str, str]) -> list[str]:
    """The problems the example configuration has under `environ`."""
    with pytest.raises(ConfigError) as caught:
        load(environ)
    return caught.value.problems


class TestOverrides:
    def test_the_twilio_auth_token_comes_from_the_environment(self) -> None:
        """AFTERCARE_TWILIO__AUTH_TOKEN fills twilio.auth_token."""
        settings = load({"AFTERCARE_TWILIO__AUTH_TOKEN": "tok-123"}).settings
        assert settings.twilio.auth_token.get_secret_value() == "tok-123"

    def test_the_database_url_comes_from_the_environment(self) -> None:
        """AFTERCARE_DATABASE__URL replaces database.url."""
        url = "postgresql+asyncpg://aftercare@db.internal/aftercare"
        assert load({"AFTERCARE_DATABASE__URL": url}).settings.database.url == url

    def test_a_port_string_becomes_an_int(self) -> None:
        """AFTERCARE_SERVER__PORT is text in the environment and an int in the settings."""
        assert load({"AFTERCARE_SERVER__PORT": "9090"}).settings.server.port == 9090

    def test_names_are_read_in_any_case(self) -> None:
        """aftercare_server__port and AFTERCARE_Scheduler__Claim_Lease are settings too."""
        loaded = load({"aftercare_server__port": "9090", "AFTERCARE_Scheduler__Claim_Lease": "90s"})
        assert loaded.settings.server.port == 9090
        assert loaded.settings.scheduler.claim_lease.total_seconds() == 90
        assert loaded.ignored == ()

    def test_underscores_reach_a_clinic_key_with_a_hyphen(self) -> None:
        """GLOW_DOWNTOWN names the existing clinic glow-downtown; it adds no new clinic."""
        settings = load({"AFTERCARE_CLINICS__GLOW_DOWNTOWN__FROM_NUMBER": "+14155550199"}).settings
        assert set(settings.clinics) == {"glow-downtown", "glow-madrid"}
        assert settings.clinics["glow-downtown"].from_number == "+14155550199"
        assert settings.clinics["glow-downtown"].name == "Glow Skin Studio"  # the rest kept

    def test_a_key_nested_in_a_clinic_table_is_set_alone(self) -> None:
        """AFTERCARE_CLINICS__GLOW_MADRID__QUIET_HOURS__START reaches one key of the table."""
        environ = {
            "AFTERCARE_CLINICS__GLOW_MADRID__QUIET_HOURS__START": "22:00",
            "AFTERCARE_CLINICS__GLOW_MADRID__QUIET_HOURS__END": "07:30",
        }
        quiet = load(environ).settings.clinics["glow-madrid"].quiet_hours
        assert quiet is not None
        assert (quiet.start.isoformat(), quiet.end.isoformat()) == ("22:00:00", "07:30:00")

    def test_a_json_list_sets_the_webhook_secrets(self) -> None:
        """A list is given as JSON, e.g. two secrets during a rotation."""
        environ = {"AFTERCARE_CLINICS__GLOW_MADRID__WEBHOOK_SECRETS": json.dumps([SECRET, OTHER])}
        secrets = load(environ).settings.clinics["glow-madrid"].webhook_secrets
        assert [s.get_secret_value() for s in secrets] == [SECRET, OTHER]

    def test_a_clinic_of_its_own_can_come_from_the_environment(self) -> None:
        """A clinic id the file does not have is a new clinic, complete from the environment."""
        environ = {
            "AFTERCARE_CLINICS__PARIS__NAME": "Glow Paris",
            "AFTERCARE_CLINICS__PARIS__TIMEZONE": "Europe/Paris",
            "AFTERCARE_CLINICS__PARIS__WEBHOOK_SECRETS": json.dumps([SECRET]),
            "AFTERCARE_CLINICS__PARIS__API_TOKENS": '["paris-token-0123456789abcdefghijklmn"]',
        }
        assert load(environ).settings.clinics["paris"].timezone == "Europe/Paris"


class TestNotConfiguration:
    def test_kubernetes_service_variables_are_ignored_and_named(self) -> None:
        """AFTERCARE_PORT=tcp://… and its kin load fine and come back as warnings, no values."""
        loaded = load(KUBERNETES)
        assert loaded.settings.server.port == 8080
        assert loaded.ignored == tuple(sorted(KUBERNETES))
        text = "\n".join(loaded.warnings)
        assert all(name in text for name in KUBERNETES)
        assert "10.0.0.1" not in text and "tcp://" not in text

    @pytest.mark.parametrize(
        "name",
        [
            "AFTERCARE_SERVER",
            "AFTERCARE_SEVER__PORT",
            "AFTERCARE_SERVER_PORT",
            "AFTERCARE_TEST_POSTGRES_URL",
        ],
    )
    def test_a_name_that_is_not_section_and_key_is_not_configuration(self, name: str) -> None:
        """Without a known section before `__`, even a near miss is reported, not applied."""
        loaded = load({name: "9090"})
        assert loaded.settings.server.port == 8080
        assert loaded.ignored == (name,)

    def test_aftercare_config_names_the_file_and_is_no_warning(self) -> None:
        """AFTERCARE_CONFIG is read by resolve_config_path; it is neither a key nor ignored."""
        loaded = load({"AFTERCARE_CONFIG": "/elsewhere.toml"})
        assert "microneedling" in loaded.settings.protocols
        assert loaded.warnings == []


class TestProblemsNameTheVariable:
    def test_an_unknown_key_of_a_known_section_names_the_variable(self) -> None:
        """A typo of ours is an error, blamed on the environment, not on the file."""
        assert problems({"AFTERCARE_SERVER__PROT": "1"}) == [
            "AFTERCARE_SERVER__PROT: unknown setting server.prot (from the environment)"
        ]

    def test_an_unknown_key_in_a_clinic_names_the_variable(self) -> None:
        """Nested keys are checked as well: from_numbr is not a clinic setting."""
        assert problems({"AFTERCARE_CLINICS__GLOW_MADRID__FROM_NUMBR": "+34612345679"}) == [
            "AFTERCARE_CLINICS__GLOW_MADRID__FROM_NUMBR: unknown setting "
            "clinics.glow-madrid.from_numbr (from the environment)"
        ]

    def test_a_bad_value_names_the_variable_and_the_path(self) -> None:
        """An environment value is validated like the file's, and says where it came from."""
        [problem] = problems({"AFTERCARE_SERVER__PORT": "eighty"})
        assert problem.startswith("AFTERCARE_SERVER__PORT: server.port: Input should be ")
        assert problem.endswith(" (from the environment)")

    def test_a_cross_section_problem_names_the_variable(self) -> None:
        """A lease shorter than two requests, set from the environment, names its variable."""
        [problem] = problems({"AFTERCARE_SCHEDULER__CLAIM_LEASE": "5s"})
        assert problem.startswith(
            "AFTERCARE_SCHEDULER__CLAIM_LEASE: scheduler.claim_lease: "
            "5s is shorter than twice twilio.request_timeout (10s)"
        )

    def test_a_list_without_json_names_the_variable_not_the_value(self) -> None:
        """A plain-text secret where a JSON list belongs is refused without showing it."""
        [problem] = problems({"AFTERCARE_CLINICS__GLOW_MADRID__WEBHOOK_SECRETS": "whsec_hunter2"})
        assert problem.startswith(
            "AFTERCARE_CLINICS__GLOW_MADRID__WEBHOOK_SECRETS: "
            "clinics.glow-madrid.webhook_secrets: not valid JSON"
        )
        assert "hunter2" not in problem

    def test_what_a_new_clinic_lacks_names_its_variable(self) -> None:
        """A clinic only the environment made is incomplete by the environment's doing."""
        found = problems({"AFTERCARE_CLINICS__PARIS__NAME": "Glow Paris"})
        assert found and all(
            p.startswith("AFTERCARE_CLINICS__PARIS__NAME: clinics.paris.") for p in found
        )

    def test_a_file_problem_still_names_its_path(self, tmp_path: Path) -> None:
        """With variables set elsewhere, the file's own mistake is still the file's."""
        broken = tmp_path / "config.toml"
        broken.write_text(EXAMPLE.read_text().replace('"Europe/Madrid"', '"Europe/Madird"'))
        with pytest.raises(ConfigError) as caught:
            load_settings(broken, environ={"AFTERCARE_SERVER__PORT": "9090"})
        assert caught.value.problems == [
            "clinics.glow-madrid.timezone: unknown time zone 'Europe/Madird'"
        ]


class TestPaths:
    def test_a_path_string_round_trips(self) -> None:
        """Problems' paths parse to the tuples pydantic reports, and back."""
        loc = parse_loc("protocols.mn.steps[0].after")
        assert loc == ("protocols", "mn", "steps", 0, "after")
        assert dotted(loc) == "protocols.mn.steps[0].after"

    def test_keys_align_ignoring_case_and_hyphens(self) -> None:
        """Existing keys are kept as the file spells them; new ones as given."""
        data = {"clinics": {"Glow-Downtown": {"name": "x"}}}
        assert aligned(["clinics", "glow_downtown", "name"], data) == (
            "clinics",
            "Glow-Downtown",
            "name",
        )
        assert aligned(["clinics", "paris", "name"], data) == ("clinics", "paris", "name")


class TestSettingsReadOnlyWhatTheyAreGiven:
    def test_model_validate_ignores_the_process_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Settings are a BaseSettings, yet building one reads no variable behind load_settings."""
        monkeypatch.setenv("AFTERCARE_SERVER__PORT", "9191")
        assert make_settings(tmp_path / "aftercare.db").server.port == 8080
        assert load_settings(EXAMPLE, environ={}).settings.server.port == 8080
