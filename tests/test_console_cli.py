"""`aftercare staff` (contract §16): accounts added, listed, disabled and reset from the CLI."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from service.storage.database import migrate
from tests.fixtures.cli import run
from tests.helpers.toml import write_toml
from tests.support import config_data

GOOD = "a long enough passphrase"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A configuration of clinics glow and other, on a migrated SQLite file."""
    db = tmp_path / "aftercare.db"
    migrate(f"sqlite+aiosqlite:///{db}")
    return write_toml(tmp_path / "config.toml", config_data(db))


def staff(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config: Path,
    *argv: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return run(capsys, "--config", str(config), "staff", *argv)


class TestStaffAdd:
    def test_a_short_password_is_refused_with_exit_2(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config: Path
    ) -> None:
        """11 characters: refused, clearly, and no account made."""
        status, out, err = staff(
            capsys,
            monkeypatch,
            config,
            "add",
            "--clinic",
            "glow",
            "--email",
            "a@b.example",
            stdin="elevenchars\n",
        )
        assert (status, out) == (2, "")
        assert "at least 12 characters" in err
        assert "a@b.example" not in staff(capsys, monkeypatch, config, "list")[1]

    def test_an_unknown_clinic_is_refused(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config: Path
    ) -> None:
        """Every --clinic must be in the configuration."""
        status, _, err = staff(
            capsys,
            monkeypatch,
            config,
            "add",
            "--clinic",
            "glow",
            "--clinic",
            "nope",
            "--email",
            "a@b.example",
            stdin=GOOD,
        )
        assert status == 2 and "no clinic 'nope'" in err

    def test_an_empty_stdin_generates_a_password_printed_once(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config: Path
    ) -> None:
        """Added with both clinics; the generated password is shown; list shows no hash."""
        status, out, _ = staff(
            capsys,
            monkeypatch,
            config,
            "add",
            "--clinic",
            "glow",
            "--clinic",
            "other",
            "--email",
            "Nurse@Glow.Example",
            "--name",
            "Ana",
        )
        assert status == 0 and "added nurse@glow.example (glow, other)" in out
        assert len(out.split("password (shown only now): ")[1].strip()) >= 12
        _, listed, _ = staff(capsys, monkeypatch, config, "list")
        assert "nurse@glow.example" in listed and "glow,other" in listed and "active" in listed
        assert "argon2" not in listed

    def test_the_same_email_twice_is_refused(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config: Path
    ) -> None:
        """Emails are unique, whatever their case."""
        args = ("add", "--clinic", "glow", "--email", "a@b.example")
        assert staff(capsys, monkeypatch, config, *args, stdin=GOOD)[0] == 0
        again = ("add", "--clinic", "glow", "--email", "A@B.example")
        status, _, err = staff(capsys, monkeypatch, config, *again, stdin=GOOD)
        assert status == 1 and "exists already" in err


class TestStaffChanges:
    def test_disable_and_password_name_an_existing_account(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config: Path
    ) -> None:
        """Unknown emails exit 1; a reset refuses a short password; disable shows in list."""
        add = ("add", "--clinic", "glow", "--email", "a@b.example")
        assert staff(capsys, monkeypatch, config, *add, stdin=GOOD)[0] == 0
        assert staff(capsys, monkeypatch, config, "disable", "--email", "x@b.example")[0] == 1
        short = staff(capsys, monkeypatch, config, "password", "--email", "a@b.example", stdin="x")
        assert short[0] == 2
        reset = staff(
            capsys, monkeypatch, config, "password", "--email", "a@b.example", stdin=GOOD + "!"
        )
        assert reset[0] == 0 and "sessions have ended" in reset[1]
        assert "shown only now" not in reset[1]
        assert staff(capsys, monkeypatch, config, "disable", "--email", "A@b.example")[0] == 0
        assert "disabled" in staff(capsys, monkeypatch, config, "list")[1]
