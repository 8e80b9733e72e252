"""`aftercare check-config` (service.cli): a valid file exits 0, an invalid one exits 1 listing
every problem by its path, a missing one is named once; the file is --config, $AFTERCARE_CONFIG or
the example in the directory, and environment overrides are checked too; `python -m service` is the
command, and the installed `aftercare serve` refuses a bad file at once with check-config's
messages, never listening.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.fixtures.cli import _isolated, example, run
from tests.helpers.ports import free_port

__all__ = ["_isolated", "example"]  # the fixtures, from tests/fixtures/cli.py


AFTERCARE = Path(sys.executable).with_name("aftercare")


@pytest.fixture
def broken(example: Path) -> Path:
    """The example with three mistakes: a time zone, a duration and a placeholder."""
    text = example.read_text(encoding="utf-8")
    for old, new in [
        ('"Europe/Madrid"', '"Europe/Madird"'),
        ('after = "2h"', 'after = "2 hrs"'),
        ("time for your {serum}: apply", "time for your {serums}: apply"),
    ]:
        assert old in text
        text = text.replace(old, new, 1)
    path = example.with_name("broken.toml")
    path.write_text(text, encoding="utf-8")
    return path


BROKEN_PROBLEMS = [
    "clinics.glow-madrid.timezone: unknown time zone 'Europe/Madird'",
    "protocols.microneedling.steps[0].after: not a duration: '2 hrs'",
    "protocols.microneedling.steps[1].text.en: unknown placeholder {serums}",
]


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with closing(socket.socket()) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class TestCheckConfig:
    def test_a_valid_file_exits_0(self, capsys: pytest.CaptureFixture[str], example: Path) -> None:
        """The shipped example passes and says what it found."""
        status, out, err = run(capsys, "--config", str(example), "check-config")
        assert (status, err) == (0, "")
        assert "valid" in out and "2 clinic(s)" in out

    def test_an_invalid_file_exits_1_listing_every_problem_by_path(
        self, capsys: pytest.CaptureFixture[str], broken: Path
    ) -> None:
        """Each mistake is one line: the file, the TOML path, what is wrong."""
        status, out, err = run(capsys, "--config", str(broken), "check-config")
        assert (status, out) == (1, "")
        lines = err.splitlines()
        assert len(lines) == len(BROKEN_PROBLEMS)
        for line, problem in zip(lines, BROKEN_PROBLEMS, strict=True):
            assert line.startswith(f"{broken}: {problem}")

    def test_a_missing_file_is_named_once(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unreadable file gives one line, not a traceback."""
        status, _, err = run(capsys, "--config", "missing.toml", "check-config")
        assert status == 1
        assert err == "missing.toml: cannot read: No such file or directory\n"

    def test_without_config_the_example_in_the_directory_is_used(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """No --config, no $AFTERCARE_CONFIG, no ./config.toml: ./config.example.toml."""
        status, out, _ = run(capsys, "check-config")
        assert status == 0
        assert "3 protocol(s)" in out

    def test_aftercare_config_names_the_file(
        self, capsys: pytest.CaptureFixture[str], broken: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """$AFTERCARE_CONFIG is read when --config is not given."""
        monkeypatch.setenv("AFTERCARE_CONFIG", str(broken))
        status, _, err = run(capsys, "check-config")
        assert status == 1
        assert err.startswith(f"{broken}: ")

    def test_environment_overrides_are_checked_too(
        self, capsys: pytest.CaptureFixture[str], example: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An AFTERCARE_ variable is part of the configuration being checked, and named."""
        monkeypatch.setenv("AFTERCARE_SERVER__PORT", "eighty")
        status, _, err = run(capsys, "--config", str(example), "check-config")
        assert status == 1
        assert err.startswith("AFTERCARE_SERVER__PORT: server.port: ")


class TestConsoleScript:
    def test_python_m_service_runs_the_command(self, example: Path) -> None:
        """`python -m service` is `aftercare`."""
        done = subprocess.run(
            [sys.executable, "-m", "service", "check-config"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (done.returncode, done.stderr) == (0, "")
        assert "valid" in done.stdout

    def test_serve_with_a_bad_config_exits_with_check_configs_messages(
        self, capsys: pytest.CaptureFixture[str], broken: Path, tmp_path: Path
    ) -> None:
        """The installed `aftercare serve` refuses a bad file at once and never listens."""
        port = free_port()
        broken.write_text(broken.read_text().replace("port = 8080", f"port = {port}"))
        _, _, checked = run(capsys, "--config", str(broken), "check-config")
        started = time.monotonic()
        done = subprocess.run(
            [str(AFTERCARE), "--config", str(broken), "serve"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert done.returncode != 0
        assert time.monotonic() - started < 10
        assert done.stderr == checked
        assert not listening(port)
        assert not (tmp_path / "aftercare.db").exists()  # no migration either
