"""`aftercare serve` and `check-config` from outside, as an operator runs them (contract §14):
Kubernetes' variables, the example's secrets off loopback, the fallback, the log level, leases."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.error import URLError

import pytest

from tests.helpers.ports import free_port
from tests.support import OTHER_SECRET, SECRET

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"
KUBERNETES = {
    "AFTERCARE_PORT": "tcp://10.0.0.1:8080",
    "AFTERCARE_SERVICE_HOST": "10.0.0.1",
    "AFTERCARE_SERVICE_PORT": "8080",
}
EXAMPLE_SECRETS = [
    "clinics.glow-downtown.webhook_secrets[0]",
    "clinics.glow-downtown.api_tokens[0]",
    "clinics.glow-madrid.webhook_secrets[0]",
    "clinics.glow-madrid.api_tokens[0]",
    "privacy.number_keys[0]",
]
OWN_SECRETS = {
    "AFTERCARE_CLINICS__GLOW_DOWNTOWN__WEBHOOK_SECRETS": json.dumps([SECRET]),
    "AFTERCARE_CLINICS__GLOW_DOWNTOWN__API_TOKENS": '["downtown-own-token-0123456789abcdefghij"]',
    "AFTERCARE_CLINICS__GLOW_MADRID__WEBHOOK_SECRETS": json.dumps([OTHER_SECRET]),
    "AFTERCARE_CLINICS__GLOW_MADRID__API_TOKENS": '["madrid-own-token-0123456789abcdefghijkl"]',
    "AFTERCARE_PRIVACY__NUMBER_KEYS": '["own-number-key-0123456789abcdefghijklmn"]',
}


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without any AFTERCARE_ variable, plus `extra`."""
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("AFTERCARE_")}
    return {**base, **extra}


def aftercare(cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m service *argv` run to its end in `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "service", *argv],
        cwd=cwd,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def healthy(port: int) -> bool:
    """Whether /healthz on 127.0.0.1:`port` answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
            return bool(answer.status == 200)
    except (URLError, OSError):
        return False


@contextmanager
def serving(config: Path | None, port: int, *argv: str, **env: str) -> Iterator[Path]:
    """`[--config CONFIG] serve --port PORT *argv` in the config's directory (else the working
    one) until /healthz answers; stopped after; its log file."""
    cwd = config.parent if config else Path.cwd()
    named = ["--config", str(config)] if config else []
    log = cwd / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", *named, "serve", "--port", str(port), *argv],
            cwd=cwd,
            env=environment(**env),
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 30
        while not healthy(port):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def records(log: Path) -> list[dict[str, Any]]:
    """The JSON log records in `log`, in order."""
    lines = log.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of config.example.toml in the test directory; its database lands there too."""
    return Path(shutil.copy(EXAMPLE, tmp_path / "config.example.toml"))


class TestKubernetesVariables:
    def test_serve_starts_and_names_them_once_without_values(self, example: Path) -> None:
        """A Service's injected AFTERCARE_PORT=tcp://… does not stop the service."""
        with serving(example, free_port(), **KUBERNETES) as log:
            pass
        named = [r for r in records(log) if "variables" in r]
        assert len(named) == 1, log.read_text()
        assert named[0]["level"] == "warning"
        assert set(named[0]["variables"].split(", ")) == set(KUBERNETES)
        assert "10.0.0.1" not in log.read_text()

    def test_check_config_warns_and_passes(self, example: Path) -> None:
        """Each is a warning line on stderr; the configuration is valid all the same."""
        done = aftercare(example.parent, "--config", str(example), "check-config", **KUBERNETES)
        assert done.returncode == 0, done.stderr
        assert "configuration is valid" in done.stdout
        warned = sorted(line.split(":")[1].strip() for line in done.stderr.splitlines())
        assert warned == sorted(KUBERNETES)
        assert all(line.startswith("warning: ") for line in done.stderr.splitlines())
        assert "10.0.0.1" not in done.stderr

    def test_an_unknown_key_of_a_section_is_an_error_naming_the_variable(
        self, example: Path
    ) -> None:
        """AFTERCARE_SERVER__PROT is a typo of ours: exit 1, blaming the variable."""
        done = aftercare(
            example.parent,
            "--config",
            str(example),
            "check-config",
            AFTERCARE_SERVER__PROT="1",
            **KUBERNETES,
        )
        assert done.returncode == 1
        assert done.stderr == (
            "AFTERCARE_SERVER__PROT: unknown setting server.prot (from the environment)\n"
        )


class TestExampleSecretsOffLoopback:
    def test_serve_on_all_interfaces_refuses_naming_each_secret(self, example: Path) -> None:
        """0.0.0.0 with the published secrets: exit 1, one line per path, no value shown."""
        port = free_port()
        done = aftercare(
            example.parent,
            "--config",
            str(example),
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
        )
        assert done.returncode == 1
        refused = [line for line in done.stderr.splitlines() if not line.startswith("{")]
        assert [line.split(":")[0] for line in refused] == EXAMPLE_SECRETS
        assert all(line.endswith("set your own before serving on 0.0.0.0") for line in refused)
        for secret in ("whsec_", "example-token"):
            assert secret not in done.stderr
        assert not healthy(port)
        assert not (example.parent / "aftercare.db").exists()  # refused before migrating

    def test_the_example_on_loopback_serves(self, example: Path) -> None:
        """`make run` as shipped: 127.0.0.1 keeps the example's secrets to this machine."""
        with serving(example, free_port(), "--host", "127.0.0.1") as log:
            pass
        assert "serving" in {r["message"] for r in records(log)}

    def test_own_secrets_from_the_environment_serve_on_all_interfaces(self, example: Path) -> None:
        """Each clinic's secrets and tokens replaced through AFTERCARE_CLINICS__<ID>__…."""
        with serving(example, free_port(), "--host", "0.0.0.0", **OWN_SECRETS) as log:
            pass
        # The example runs a worker per core: the supervisor and each worker say it.
        hosts = [r["host"] for r in records(log) if r["message"] == "serving"]
        assert hosts and set(hosts) == {"0.0.0.0"}


class TestFallbackToTheExample:
    def test_the_first_log_line_says_the_example_is_served(
        self, example: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No --config, no $AFTERCARE_CONFIG, no ./config.toml: a warning comes first."""
        monkeypatch.chdir(example.parent)
        with serving(None, free_port()) as log:
            pass
        first = records(log)[0]
        assert first["level"] == "warning"
        assert "config.example.toml" in first["message"]

    def test_a_config_toml_is_no_fallback(
        self, example: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With ./config.toml present nothing is said about the example."""
        shutil.copy(example, example.with_name("config.toml"))
        monkeypatch.chdir(example.parent)
        with serving(None, free_port()) as log:
            pass
        assert not any("config.example.toml" in r["message"] for r in records(log))


class TestLogLevel:
    def test_warning_drops_the_info_lines_and_keeps_the_warnings(self, example: Path) -> None:
        """AFTERCARE_SERVER__LOG_LEVEL=WARNING: no `serving` line, the warning still there."""
        with serving(
            example,
            free_port(),
            AFTERCARE_SERVER__LOG_LEVEL="WARNING",
            AFTERCARE_SERVICE_HOST="10.0.0.1",
        ) as log:
            pass
        found = records(log)
        assert not {r["level"] for r in found} & {"debug", "info"}, found
        assert "serving" not in {r["message"] for r in found}
        assert any("variables" in r for r in found if r["level"] == "warning"), found

    def test_debug_keeps_the_info_lines(self, example: Path) -> None:
        """AFTERCARE_SERVER__LOG_LEVEL=DEBUG lets the `serving` line through."""
        with serving(example, free_port(), AFTERCARE_SERVER__LOG_LEVEL="DEBUG") as log:
            pass
        assert "serving" in {r["message"] for r in records(log)}


class TestLeaseFromOutside:
    def test_a_lease_shorter_than_two_requests_is_refused(self, example: Path) -> None:
        """claim_lease = "5s" with the 10 s request timeout: check-config exits 1 saying why."""
        text = example.read_text(encoding="utf-8")
        assert 'claim_lease = "60s"' in text
        short = example.with_name("short-lease.toml")
        short.write_text(text.replace('claim_lease = "60s"', 'claim_lease = "5s"'))
        done = aftercare(example.parent, "--config", str(short), "check-config")
        assert done.returncode == 1
        assert done.stderr == (
            f"{short}: scheduler.claim_lease: 5s is shorter than twice "
            "twilio.request_timeout (10s); use at least 20s\n"
        )
