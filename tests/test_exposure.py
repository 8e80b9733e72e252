"""The example's secrets are refused off loopback, and only there (service.config.exposure)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from service.config import is_loopback, load_settings
from service.config.exposure import example_places, exposure_problems, published_secrets

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


class TestLoopback:
    @pytest.mark.parametrize(
        "host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"]
    )
    def test_these_stay_on_the_machine(self, host: str) -> None:
        """127.0.0.0/8, ::1 and localhost are loopback."""
        assert is_loopback(host)

    @pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "aftercare.internal"])
    def test_these_do_not(self, host: str) -> None:
        """All interfaces, a real address, or a name that may resolve anywhere."""
        assert not is_loopback(host)


class TestExposure:
    def test_the_example_is_looked_for_beside_the_package(self) -> None:
        """The first place is the repository's (or the image's) example, however deep in
        `service/` the module that looks sits; the working directory's comes second."""
        assert example_places() == [EXAMPLE, Path.cwd() / "config.example.toml"]

    def test_the_example_ships_two_secrets_two_tokens_and_a_number_key(self) -> None:
        """What is compared is read from the example file itself."""
        assert len(published_secrets([EXAMPLE])) == 5

    def test_loopback_is_never_refused(self) -> None:
        """`make run` on 127.0.0.1 keeps the example's secrets."""
        settings = load_settings(EXAMPLE, environ={}).settings
        assert exposure_problems(settings, "127.0.0.1", places=[EXAMPLE]) == []

    def test_a_secret_replaced_is_no_longer_named(self) -> None:
        """Only the settings still equal to the example's are listed, by path."""
        own = '["glow-downtown-own-token-0123456789abcdef"]'
        settings = load_settings(
            EXAMPLE, environ={"AFTERCARE_CLINICS__GLOW_DOWNTOWN__API_TOKENS": own}
        ).settings
        paths = [p.split(":")[0] for p in exposure_problems(settings, "::", places=[EXAMPLE])]
        assert paths == [
            "clinics.glow-downtown.webhook_secrets[0]",
            "clinics.glow-madrid.webhook_secrets[0]",
            "clinics.glow-madrid.api_tokens[0]",
            "privacy.number_keys[0]",
        ]

    def test_the_example_notification_secret_uncommented_is_refused(self) -> None:
        """The example's commented-out notification endpoint signs with a published secret:
        switched on as shipped, anyone could forge notifications to the clinic's system."""
        settings = load_settings(
            EXAMPLE,
            environ={
                "AFTERCARE_CLINICS__GLOW_DOWNTOWN__NOTIFICATIONS__URL": "https://practice.test/h",
                "AFTERCARE_CLINICS__GLOW_DOWNTOWN__NOTIFICATIONS__SECRETS": _example_hook_secret(),
            },
        ).settings
        paths = [p.split(":")[0] for p in exposure_problems(settings, "::", places=[EXAMPLE])]
        assert "clinics.glow-downtown.notifications.secrets[0]" in paths

    def test_the_example_number_key_is_refused_and_an_own_one_is_not(self) -> None:
        """The key an erased number's STOP is hashed with is a secret like the others."""
        own = '["an-own-number-key-0123456789abcdefghij"]'
        for environ, refused in (({}, True), ({"AFTERCARE_PRIVACY__NUMBER_KEYS": own}, False)):
            settings = load_settings(EXAMPLE, environ=environ).settings
            problems = exposure_problems(settings, "::", places=[EXAMPLE])
            assert any(p.startswith("privacy.number_keys[0]:") for p in problems) is refused

    def test_without_the_example_there_is_nothing_to_compare_and_it_says_so(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """No example file found: nothing refused, one debug record naming where it looked."""
        settings = load_settings(EXAMPLE, environ={}).settings
        missing = tmp_path / "config.example.toml"
        with caplog.at_level(logging.DEBUG, logger="aftercare"):
            assert exposure_problems(settings, "0.0.0.0", places=[missing]) == []
        [record] = caplog.records
        assert record.levelno == logging.DEBUG
        assert str(missing) in str(record.__dict__["looked_in"])


def _example_hook_secret() -> str:
    """The secrets list of the example's commented-out notification table, as TOML."""
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("# secrets = ["):
            return line.removeprefix("# secrets = ").split("]")[0] + "]"
    raise AssertionError("the example no longer shows a notification endpoint")
