"""Every problem of a configuration by its TOML path (service.config): each mistake reported alone,
the unedited test configuration valid, the request timeout's default, a messaging service in place
of a from number, several problems at once, an unreadable, invalid or non-UTF-8 file as one clear
problem; and no secret echoed in a problem.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings, load_settings
from service.errors import ConfigError
from tests.fixtures.config import Edit, problems_of, step
from tests.helpers.toml import write_toml
from tests.support import SECRET, TOKEN, config_data


def twilio_clinic_without_sender(data: dict[str, Any]) -> None:
    """Twilio credentials are set, but clinic `other` has nothing to send from."""
    data["sms"]["backend"] = "twilio"
    data["twilio"] = {"account_sid": "AC123", "auth_token": "t0k", "request_timeout": "2s"}
    del data["clinics"]["other"]["from_number"]


PROBLEMS = [
    pytest.param(
        lambda d: step(d, 0).update(after="2 hours"),
        ["protocols.mn.steps[0].after: not a duration: '2 hours'"],
        id="bad-duration",
    ),
    pytest.param(
        lambda d: step(d, 0)["text"].update(en="Hi {name}, no makeup today."),
        ["protocols.mn.steps[0].text.en: unknown placeholder {name}"],
        id="unknown-placeholder",
    ),
    pytest.param(
        lambda d: step(d, 1)["text"].update(en="Time for your {serum:>30}."),
        ["protocols.mn.steps[1].text.en: format spec :>30 in {serum} is not allowed"],
        id="format-spec",
    ),
    pytest.param(
        lambda d: step(d, 2)["text"].pop("de"),
        ["protocols.mn.steps[2].text: no text for clinic locale 'de'"],
        id="missing-locale",
    ),
    pytest.param(
        lambda d: d["clinics"]["other"].update(timezone="Europe/Atlantis"),
        ["clinics.other.timezone: unknown time zone 'Europe/Atlantis'"],
        id="unknown-time-zone",
    ),
    pytest.param(
        lambda d: d["clinics"]["glow"].update(quiet_hours={"start": "21:00", "end": "8am"}),
        ["clinics.glow.quiet_hours.end: not a clock time: '8am'"],
        id="bad-quiet-hours",
    ),
    pytest.param(
        lambda d: step(d, 2).update(key="serum"),
        ["protocols.mn.steps[2].key: duplicate step key 'serum'"],
        id="duplicate-key",
    ),
    pytest.param(
        lambda d: step(d, 1).update(after="1h"),
        ["protocols.mn.steps[1]: use either after (with every and count) or days"],
        id="after-and-days",
    ),
    pytest.param(
        lambda d: step(d, 0).update(every="1d"),
        ["protocols.mn.steps[0]: every needs count"],
        id="every-without-count",
    ),
    pytest.param(
        lambda d: step(d, 1).pop("at"),
        ["protocols.mn.steps[1]: days needs at"],
        id="days-without-at",
    ),
    pytest.param(
        lambda d: step(d, 0).update(afer="2h"),
        ["protocols.mn.steps[0].afer: Extra inputs are not permitted"],
        id="misspelt-step-key",
    ),
    pytest.param(
        lambda d: d["clinics"]["glow"].update(from_number="+1555"),
        ["clinics.glow.from_number: not a valid E.164 number"],
        id="bad-from-number",
    ),
    pytest.param(
        lambda d: d["clinics"]["glow"].pop("webhook_secrets"),
        ["clinics.glow.webhook_secrets: Field required"],
        id="no-webhook-secrets",
    ),
    pytest.param(
        lambda d: d.update(sever={"port": 8080}),
        ["sever: Extra inputs are not permitted"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        lambda d: d["sms"].update(backend="twilio"),
        [
            "twilio.account_sid: required when sms.backend is 'twilio'",
            "twilio.auth_token: required when sms.backend is 'twilio'",
        ],
        id="twilio-without-credentials",
    ),
    pytest.param(
        lambda d: d["clinics"]["other"].update(api_tokens=[TOKEN]),
        [
            "clinics.other.api_tokens[0]: also a token of clinic 'glow'; "
            "each token must belong to one clinic"
        ],
        id="shared-api-token",
    ),
    pytest.param(
        lambda d: d["scheduler"].update(claim_lease="3s"),
        [
            "scheduler.claim_lease: 3s is shorter than twice twilio.request_timeout "
            "(2s); use at least 4s"
        ],
        id="lease-shorter-than-two-requests",
    ),
    pytest.param(
        lambda d: d["server"].update(log_level="VERBOSE"),
        ["server.log_level: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"],
        id="unknown-log-level",
    ),
    pytest.param(
        twilio_clinic_without_sender,
        ["clinics.other.from_number: set from_number or messaging_service_sid"],
        id="twilio-clinic-without-sender",
    ),
]


class TestProblems:
    @pytest.mark.parametrize(("edit", "expected"), PROBLEMS)
    def test_each_problem_is_reported_by_its_toml_path(
        self, tmp_path: Path, edit: Edit, expected: list[str]
    ) -> None:
        """The one thing wrong is the one problem reported, starting with its path."""
        problems = problems_of(tmp_path, edit)
        assert len(problems) == len(expected), problems
        for problem, start in zip(problems, expected, strict=True):
            assert problem.startswith(start), problems

    def test_the_unedited_test_config_has_no_problem(self, tmp_path: Path) -> None:
        """The baseline the cases above edit is itself valid."""
        data = config_data(tmp_path / "aftercare.db")
        settings = load_settings(write_toml(tmp_path / "config.toml", data), environ={}).settings
        assert isinstance(settings, Settings)

    @pytest.mark.parametrize(
        ("lease", "timeout"), [("5s", timedelta(seconds=2.5)), ("60s", timedelta(seconds=10))]
    )
    def test_an_unset_request_timeout_is_ten_seconds_or_half_a_shorter_lease(
        self, tmp_path: Path, lease: str, timeout: timedelta
    ) -> None:
        """A 5 s lease with no request timeout set is valid (contract §14's refusal is for a
        timeout set over half the lease): its requests give up after 2.5 s."""
        data = config_data(tmp_path / "aftercare.db")
        del data["twilio"]["request_timeout"]
        data["scheduler"]["claim_lease"] = lease
        settings = load_settings(write_toml(tmp_path / "config.toml", data), environ={}).settings
        assert settings.twilio.request_timeout == timeout

    def test_a_clinic_messaging_service_replaces_its_from_number(self, tmp_path: Path) -> None:
        """With Twilio, a messaging service sid is as good as a from_number."""
        data = config_data(
            tmp_path / "aftercare.db",
            sms={"backend": "twilio"},
            twilio={"account_sid": "AC123", "auth_token": "t0k"},
        )
        data["clinics"]["other"]["from_number"] = ""
        data["clinics"]["other"]["messaging_service_sid"] = "MG123"
        settings = load_settings(write_toml(tmp_path / "config.toml", data), environ={}).settings
        assert settings.clinics["other"].messaging_service_sid == "MG123"

    def test_several_problems_are_all_reported_at_once(self, tmp_path: Path) -> None:
        """A file with four mistakes, of field and cross-field kinds, lists all four."""

        def edit(d: dict[str, Any]) -> None:
            d["clinics"]["other"]["timezone"] = "Europe/Atlantis"
            step(d, 0)["after"] = "soon"
            step(d, 1)["text"]["en"] = "Your {serums}, {first_name}."
            step(d, 2)["key"] = "serum"

        paths = {p.split(": ")[0] for p in problems_of(tmp_path, edit)}
        assert paths == {
            "clinics.other.timezone",
            "protocols.mn.steps[0].after",
            "protocols.mn.steps[1].text.en",
            "protocols.mn.steps[2].key",
        }

    def test_an_unreadable_file_is_one_clear_problem(self, tmp_path: Path) -> None:
        """A missing file is named, with why it could not be read."""
        missing = tmp_path / "missing.toml"
        with pytest.raises(ConfigError) as caught:
            load_settings(missing, environ={})
        assert caught.value.problems == [f"{missing}: cannot read: No such file or directory"]

    def test_invalid_toml_is_one_clear_problem_with_its_line(self, tmp_path: Path) -> None:
        """A syntax error names the file and where in it."""
        broken = tmp_path / "config.toml"
        broken.write_text('[server]\nport = 8080\n[clinics.glow\nname = "x"\n')
        with pytest.raises(ConfigError) as caught:
            load_settings(broken, environ={})
        [problem] = caught.value.problems
        assert problem.startswith(f"{broken}: not valid TOML: ")
        assert "line 3" in problem

    def test_a_file_that_is_not_utf8_is_one_clear_problem(self, tmp_path: Path) -> None:
        """A file saved in Latin-1 is a config problem, not a crash."""
        latin1 = tmp_path / "config.toml"
        latin1.write_bytes('[clinics.glow]\nhelp_text = "Llámenos"\n'.encode("latin-1"))
        with pytest.raises(ConfigError) as caught:
            load_settings(latin1, environ={})
        [problem] = caught.value.problems
        assert problem.startswith(f"{latin1}: not UTF-8 text")


class TestSecretsInProblems:
    def test_a_bad_webhook_secret_is_not_echoed(self, tmp_path: Path) -> None:
        """The problem says which secret is wrong, never what it is."""
        problems = problems_of(
            tmp_path,
            lambda d: d["clinics"]["glow"].update(webhook_secrets=[SECRET, "whsec_hunter2xx"]),
        )
        assert problems == [
            "clinics.glow.webhook_secrets: secret 1 is not a base64 'whsec_…' secret"
        ]

    @pytest.mark.parametrize(
        "name", ["AFTERCARE_CLINICS__GLOW__API_TOKENS", "AFTERCARE_CLINICS__GLOW__WEBHOOK_SECRETS"]
    )
    def test_a_secret_list_given_as_plain_text_is_not_echoed(
        self, tmp_path: Path, name: str
    ) -> None:
        """A secret set without its JSON brackets is refused without showing it."""
        problems = problems_of(tmp_path, lambda d: None, environ={name: "whsec_hunter2xx"})
        assert len(problems) == 1
        assert "hunter2" not in "\n".join(problems)

    def test_a_wrongly_typed_auth_token_is_not_echoed(self, tmp_path: Path) -> None:
        """Even a number in the auth token's place stays out of the message."""
        problems = problems_of(tmp_path, lambda d: d.update(twilio={"auth_token": 73548291}))
        assert len(problems) == 1
        assert problems[0].startswith("twilio.auth_token: ")
        assert "73548291" not in problems[0]
