"""The edge's configuration rules from outside, as an operator meets them (contract §14, "The
edge"): weak secrets, short tokens and an http `public_base_url` are refused by `check-config` and
`serve` alike, each by its TOML path and never its value; the example's secrets are refused whenever
`public_base_url` is not loopback, even bound to 127.0.0.1. The rules themselves
(service.config.edge) are checked in-process below."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from service.config.edge import Rate, parse_rate, strong_secret, strong_token
from tests.helpers.ports import free_port
from tests.helpers.toml import to_toml
from tests.support import OTHER_SECRET, SECRET, TOKEN, config_data, make_settings
from tests.test_cli_serve import EXAMPLE, aftercare, healthy

SHORT_SECRET = "whsec_" + base64.b64encode(b"only-16-bytes-xx").decode()
SHORT_TOKEN = "tok-31-characters-long-00000000"
PUBLIC = "https://aftercare.example.com"
# `python -m service` in a test directory imports the package of this checkout, not whichever
# one the virtualenv installed.
CODE = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
WEAK_PATHS = [
    "server.public_base_url",
    "clinics.glow.webhook_secrets[1]",
    "clinics.glow.api_tokens[0]",
    "clinics.glow.notifications.secrets[0]",
]


def weak_config(tmp_path: Path) -> Path:
    """A configuration with one of each weakness."""
    data: dict[str, Any] = config_data(
        tmp_path / "a.db", server={"public_base_url": "http://aftercare.example.com"}
    )
    glow = data["clinics"]["glow"]
    glow["webhook_secrets"] = [SECRET, SHORT_SECRET]
    glow["api_tokens"] = [SHORT_TOKEN]
    glow["notifications"] = {"url": "https://practice.example.com/h", "secrets": [SHORT_SECRET]}
    path = tmp_path / "weak.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    return path


def refused_paths(stderr: str, config: Path) -> list[str]:
    """The TOML paths of the problem lines, after the file's name."""
    return [line.removeprefix(f"{config}: ").split(":")[0] for line in stderr.splitlines()]


class TestWeakSettingsRefused:
    @pytest.mark.parametrize("command", [["check-config"], ["serve", "--port"]])
    def test_each_weakness_by_its_path_and_no_value(
        self, tmp_path: Path, command: list[str]
    ) -> None:
        """check-config and serve: exit 1, one line per weakness, never the value; serve never
        listens."""
        config, port = weak_config(tmp_path), free_port()
        argv = [*command, str(port)] if command[0] == "serve" else command
        done = aftercare(tmp_path, "--config", str(config), *argv, **CODE)
        assert done.returncode == 1
        assert refused_paths(done.stderr, config) == WEAK_PATHS, done.stderr
        for value in (SHORT_SECRET, SHORT_SECRET.removeprefix("whsec_"), SHORT_TOKEN):
            assert value not in done.stderr + done.stdout
        assert "decodes to 16 bytes; a secret needs at least 24" in done.stderr
        assert "has 31 characters; a token needs at least 32" in done.stderr
        assert not healthy(port)


class TestExampleSecretsBehindAProxy:
    def test_a_public_url_refuses_them_though_bound_to_loopback(self, tmp_path: Path) -> None:
        """A reverse proxy in front of 127.0.0.1 publishes the service: serve and check-config
        both refuse the example's secrets, tokens and number key, by path."""
        port = free_port()
        env = {"AFTERCARE_SERVER__PUBLIC_BASE_URL": PUBLIC, **CODE}
        for argv in (["check-config"], ["serve", "--host", "127.0.0.1", "--port", str(port)]):
            done = aftercare(tmp_path, "--config", str(EXAMPLE), *argv, **env)
            assert done.returncode == 1, done.stderr
            lines = [line for line in done.stderr.splitlines() if not line.startswith("{")]
            assert [line.split(":")[0] for line in lines] == [
                "clinics.glow-downtown.webhook_secrets[0]",
                "clinics.glow-downtown.api_tokens[0]",
                "clinics.glow-madrid.webhook_secrets[0]",
                "clinics.glow-madrid.api_tokens[0]",
                "privacy.number_keys[0]",
            ]
            assert all(line.endswith(f"serving on {PUBLIC}") for line in lines)
            assert "whsec_" not in done.stderr and "example-token" not in done.stderr
        assert not healthy(port)

    def test_own_secrets_behind_a_public_url_pass(self, tmp_path: Path) -> None:
        """The same file with each clinic's secrets and token replaced is valid."""
        env = {
            "AFTERCARE_SERVER__PUBLIC_BASE_URL": PUBLIC,
            "AFTERCARE_CLINICS__GLOW_DOWNTOWN__WEBHOOK_SECRETS": json.dumps([SECRET]),
            "AFTERCARE_CLINICS__GLOW_DOWNTOWN__API_TOKENS": json.dumps([TOKEN]),
            "AFTERCARE_CLINICS__GLOW_MADRID__WEBHOOK_SECRETS": json.dumps([OTHER_SECRET]),
            "AFTERCARE_CLINICS__GLOW_MADRID__API_TOKENS": json.dumps(["m" * 32]),
            "AFTERCARE_PRIVACY__NUMBER_KEYS": json.dumps(["k" * 32]),
            **CODE,
        }
        done = aftercare(tmp_path, "--config", str(EXAMPLE), "check-config", **env)
        assert done.returncode == 0, done.stderr


class TestRules:
    @pytest.mark.parametrize(
        "url", ["https://aftercare.example.com", "http://127.0.0.1:8080", "http://localhost"]
    )
    def test_https_or_loopback_http(self, tmp_path: Path, url: str) -> None:
        """public_base_url: https anywhere, plain http only to this machine."""
        settings = make_settings(tmp_path / "a.db", server={"public_base_url": url})
        assert settings.server.public_base_url == url

    @pytest.mark.parametrize("url", ["http://10.0.0.5", "http://0.0.0.0:8080", "http://aftercare"])
    def test_http_elsewhere_is_refused(self, tmp_path: Path, url: str) -> None:
        with pytest.raises(ValidationError, match="must be https://"):
            make_settings(tmp_path / "a.db", server={"public_base_url": url})

    def test_the_edge_defaults(self, tmp_path: Path) -> None:
        """15 s for a body, 1000 connections, 50 events a second with a burst of 100."""
        settings = make_settings(tmp_path / "a.db")
        assert settings.server.body_timeout.total_seconds() == 15
        assert settings.server.max_connections == 1000
        assert parse_rate(settings.clinics["glow"].rate_limit) == Rate(50.0, 100)

    @pytest.mark.parametrize(
        ("text", "rate"),
        [("50/s", Rate(50.0, 100)), ("600/m", Rate(10.0, 1200)), (" 36 / h ", Rate(0.01, 72))],
    )
    def test_rates(self, text: str, rate: Rate) -> None:
        assert parse_rate(text) == rate

    @pytest.mark.parametrize("text", ["50", "0/s", "-1/s", "50/d", "fast", "1.5/s"])
    def test_not_rates(self, text: str) -> None:
        with pytest.raises(ValueError, match="not a rate"):
            parse_rate(text)

    def test_strength_boundaries(self) -> None:
        """24 bytes and 32 characters pass; one less is refused; undecodable is left to the
        format check, which names it."""
        ok = "whsec_" + base64.b64encode(b"x" * 24).decode()
        assert strong_secret(SecretStr(ok)).get_secret_value() == ok
        with pytest.raises(ValueError, match="decodes to 23 bytes"):
            strong_secret(SecretStr("whsec_" + base64.b64encode(b"x" * 23).decode()))
        assert strong_secret(SecretStr("whsec_hunter2xx")).get_secret_value()
        assert strong_token(SecretStr("t" * 32)).get_secret_value() == "t" * 32
        with pytest.raises(ValueError, match="has 31 characters"):
            strong_token(SecretStr("t" * 31))
