"""The `aftercare` command: check-config, serve, migrate and preview (service.cli)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from service.cli import main
from tests.helpers.ports import free_port

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"
AFTERCARE = Path(sys.executable).with_name("aftercare")
TABLES = {
    "event",
    "patient",
    "treatment",
    "message",
    "message_history",
    "opt_out",
    "inbound",
    "alembic_version",
}
COMPLETED = "2026-11-25T22:30:00Z"  # 14:30 in Los Angeles, 23:30 in Madrid


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in an empty directory, without AFTERCARE_ variables from outside (the
    suite's own AFTERCARE_TEST_* would be reported as not configuration)."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith("AFTERCARE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of config.example.toml; its database is ./aftercare.db in the test directory."""
    return Path(shutil.copy(EXAMPLE, tmp_path / "config.example.toml"))


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


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `aftercare *argv` in-process: exit status, stdout, stderr."""
    try:
        status = main(list(argv))
    except SystemExit as exc:  # argparse refusing the arguments
        status = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


def preview_rows(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, str]]:
    """The preview table as one dict a row, keyed by the header's columns."""
    status, out, err = run(capsys, "--config", "config.example.toml", "preview", *argv)
    assert (status, err) == (0, "")
    header, *lines = out.splitlines()
    columns = re.split(r"\s{2,}", header.strip())
    return [
        dict(zip(columns, re.split(r"\s{2,}", line, maxsplit=len(columns) - 1), strict=True))
        for line in lines
    ]


def clock(row: dict[str, str]) -> tuple[str, str]:
    """A row's local wall-clock time and zone abbreviation, e.g. ("08:30", "PST")."""
    _weekday, _day, hhmm, zone = row["local time"].split()
    return hhmm, zone


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with closing(socket.socket()) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def tables(db: Path) -> set[str]:
    """The table names in an SQLite file."""
    with closing(sqlite3.connect(db)) as conn:
        return {
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }


def schema(db: Path) -> list[tuple[str, str, str]]:
    """Every table and index of an SQLite file with its SQL."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


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


class TestMigrate:
    def test_migrate_creates_every_table_in_a_fresh_sqlite_file(
        self, capsys: pytest.CaptureFixture[str], example: Path, tmp_path: Path
    ) -> None:
        """From nothing to head: the service's tables and Alembic's version."""
        status, out, _ = run(capsys, "--config", str(example), "migrate")
        assert status == 0
        assert "head" in out
        assert tables(tmp_path / "aftercare.db") >= TABLES

    def test_migrate_twice_changes_nothing(
        self, capsys: pytest.CaptureFixture[str], example: Path, tmp_path: Path
    ) -> None:
        """A second run finds the schema at head and leaves it as it is."""
        db = tmp_path / "aftercare.db"
        assert run(capsys, "--config", str(example), "migrate")[0] == 0
        first = schema(db)
        assert run(capsys, "--config", str(example), "migrate")[0] == 0
        assert schema(db) == first
        with closing(sqlite3.connect(db)) as conn:
            assert len(conn.execute("SELECT version_num FROM alembic_version").fetchall()) == 1


class TestPreview:
    def test_the_table_has_its_columns(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """Local time, UTC, step, kind, segments, where it landed and text, in that order."""
        rows = preview_rows(capsys, "--protocol", "microneedling", "--completed-at", COMPLETED)
        assert list(rows[0]) == [
            "local time",
            "UTC",
            "step",
            "kind",
            "segments",
            "landed",
            "text",
        ]

    def test_rows_are_in_time_order_and_both_times_agree(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """Each row's local time is its UTC time in the clinic's zone, earliest first."""
        rows = preview_rows(capsys, "--protocol", "microneedling", "--completed-at", COMPLETED)
        utc = [datetime.strptime(r["UTC"], "%Y-%m-%d %H:%M").replace(tzinfo=UTC) for r in rows]
        assert utc == sorted(utc)
        la = ZoneInfo("America/Los_Angeles")
        assert [r["local time"] for r in rows] == [
            t.astimezone(la).strftime("%a %Y-%m-%d %H:%M %Z") for t in utc
        ]

    def test_only_the_first_row_carries_the_opt_out_footer(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """The patient's first message ends with sms.opt_out_footer."""
        rows = preview_rows(capsys, "--protocol", "microneedling", "--completed-at", COMPLETED)
        assert rows[0]["text"].endswith("Reply STOP to opt out.")
        assert not any("Reply STOP" in r["text"] for r in rows[1:])

    def test_serum_rows_are_at_0830_and_2030_local_for_14_days(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """In Los Angeles (PST) the serum reminders go out morning and evening, days 1-14."""
        rows = preview_rows(capsys, "--protocol", "microneedling", "--completed-at", COMPLETED)
        serum = [r for r in rows if r["step"] == "serum"]
        assert len(serum) == 28
        assert {clock(r) for r in serum} == {("08:30", "PST"), ("20:30", "PST")}
        assert serum[0]["local time"] == "Thu 2026-11-26 08:30 PST"
        assert serum[-1]["local time"] == "Wed 2026-12-09 20:30 PST"

    def test_segments_name_their_count_and_encoding(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """A short English reminder is one GSM-7 segment; every row says how many of which."""
        rows = preview_rows(capsys, "--protocol", "microneedling", "--completed-at", COMPLETED)
        assert all(re.fullmatch(r"[1-9][0-9]* (GSM-7|UCS-2)", r["segments"]) for r in rows)
        assert {r["segments"] for r in rows if r["step"] == "serum"} == {"1 GSM-7"}

    def test_a_spanish_clinic_shows_spanish_text(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """glow-madrid's locale is es: its texts and its time zone are used."""
        rows = preview_rows(
            capsys,
            "--protocol",
            "microneedling",
            "--clinic",
            "glow-madrid",
            "--completed-at",
            COMPLETED,
        )
        assert rows[0]["text"].startswith("Hola Ana, gracias por su visita a Glow Madrid.")
        serum = [r for r in rows if r["step"] == "serum"]
        assert all(r["text"].startswith("Ana, es la hora de su ") for r in serum)
        assert {clock(r) for r in serum} == {("08:30", "CET"), ("20:30", "CET")}

    def test_a_timezone_moves_the_local_times(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """--timezone plans for a patient elsewhere: 08:30 in Berlin is 07:30 UTC."""
        rows = preview_rows(
            capsys,
            "--protocol",
            "microneedling",
            "--completed-at",
            COMPLETED,
            "--timezone",
            "Europe/Berlin",
        )
        serum = [r for r in rows if r["step"] == "serum"]
        assert {clock(r) for r in serum} == {("08:30", "CET"), ("20:30", "CET")}
        assert {r["UTC"][-5:] for r in serum} == {"07:30", "19:30"}

    def test_the_rebook_step_names_the_next_session(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """By default the example is session 1 of 3, so the next session is booked."""
        rows = preview_rows(capsys, "--protocol", "microneedling", "--completed-at", COMPLETED)
        assert rows[-1]["step"] == "next-session"
        assert "session 2 of 3" in rows[-1]["text"]

    def test_the_last_session_has_no_rebook_step(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """--session 3 --of 3: nothing left to book."""
        rows = preview_rows(
            capsys,
            "--protocol",
            "microneedling",
            "--completed-at",
            COMPLETED,
            "--session",
            "3",
            "--of",
            "3",
        )
        assert rows
        assert "next-session" not in {r["step"] for r in rows}

    @pytest.mark.parametrize(
        ("option", "value", "message"),
        [
            ("--protocol", "botox", "unknown protocol 'botox'; known: microneedling, "),
            ("--clinic", "glow-paris", "unknown clinic 'glow-paris'; known: glow-downtown, "),
            ("--timezone", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ],
    )
    def test_an_unknown_name_exits_2_with_a_clear_message(
        self,
        capsys: pytest.CaptureFixture[str],
        example: Path,
        option: str,
        value: str,
        message: str,
    ) -> None:
        """A protocol, clinic or zone that does not exist is named, with what does."""
        protocol = [] if option == "--protocol" else ["--protocol", "microneedling"]
        status, out, err = run(capsys, "preview", *protocol, option, value)
        assert (status, out) == (2, "")
        assert err.startswith(f"aftercare preview: {message}")

    def test_a_completed_at_without_a_zone_is_refused(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """A naive time would be read in some unknown zone, so it exits 2 asking for one."""
        status, _, err = run(
            capsys,
            "preview",
            "--protocol",
            "microneedling",
            "--completed-at",
            "2026-11-25T22:30:00",
        )
        assert status == 2
        assert "give a time zone" in err

    def test_preview_does_not_touch_the_database(
        self, capsys: pytest.CaptureFixture[str], example: Path, tmp_path: Path
    ) -> None:
        """Nothing is written next to the config: no SQLite file appears."""
        preview_rows(capsys, "--protocol", "microneedling", "--completed-at", COMPLETED)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["config.example.toml"]
