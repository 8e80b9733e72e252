"""`aftercare preview` (service.cli): the table of a protocol's messages for a treatment, its
columns, rows in time order with both times agreeing, the footer on the first row only, serum at
08:30 and 20:30 local, segments, a clinic's language and a patient's zone, the rebook step while
sessions remain; an unknown name or a time without a zone is refused, and the database is never
touched.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.fixtures.cli import _isolated, example, preview_rows, run

__all__ = ["_isolated", "example"]  # the fixtures, from tests/fixtures/cli.py


COMPLETED = "2026-11-25T22:30:00Z"  # 14:30 in Los Angeles, 23:30 in Madrid


def clock(row: dict[str, str]) -> tuple[str, str]:
    """A row's local wall-clock time and zone abbreviation, e.g. ("08:30", "PST")."""
    _weekday, _day, hhmm, zone = row["local time"].split()
    return hhmm, zone


class TestPreview:
    def test_the_table_has_its_columns(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """Row number, local time, UTC, step, kind, segments, where it landed and text, in that
        order."""
        rows = preview_rows(capsys, "--protocol", "microneedling", "--completed-at", COMPLETED)
        assert list(rows[0]) == [
            "#",
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
        """A short English reminder is one GSM-7 segment; every row says how many of which, or
        the row whose text it is merged into."""
        rows = preview_rows(capsys, "--protocol", "microneedling", "--completed-at", COMPLETED)
        assert all(
            re.fullmatch(r"[1-9][0-9]* (GSM-7|UCS-2)|in #[1-9][0-9]*", r["segments"]) for r in rows
        )
        evening = [r for r in rows if r["step"] == "serum" and "20:30" in r["local time"]]
        assert {r["segments"] for r in evening} == {"1 GSM-7"}

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

    @pytest.mark.parametrize("option", ["--completed-at", "--appointment-at"])
    def test_an_instant_planning_cannot_take_exits_2(
        self, capsys: pytest.CaptureFixture[str], example: Path, option: str
    ) -> None:
        """Year 1 in Los Angeles is before datetime's first day: a traceback before, now the
        range."""
        protocol = ["--protocol", "microneedling", "--timezone", "America/Los_Angeles"]
        status, out, err = run(capsys, "preview", *protocol, option, "0001-01-01T00:01:00Z")
        assert (status, out) == (2, "")
        assert "must be a date-time from 1970 to 8999 in UTC" in err

    def test_preview_does_not_touch_the_database(
        self, capsys: pytest.CaptureFixture[str], example: Path, tmp_path: Path
    ) -> None:
        """Nothing is written next to the config: no SQLite file appears."""
        preview_rows(capsys, "--protocol", "microneedling", "--completed-at", COMPLETED)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["config.example.toml"]
