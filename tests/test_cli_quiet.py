"""`aftercare preview` shows where each step landed and why, and plans an appointment's prep
steps (`--appointment-at`); contract §3, §13, §15."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.config import load_settings
from service.previews import preview
from tests.fixtures.cli import _isolated, example, preview_rows, run

__all__ = ["_isolated", "example"]  # the fixtures, from tests/fixtures/cli.py

LATE = "2026-11-25T03:30:00Z"  # 19:30 on Tuesday 24 November in Los Angeles
APPOINTMENT = "2030-03-13T18:00:00Z"  # 11:00 PDT on Wednesday 13 March 2030


def late_rows(capsys: pytest.CaptureFixture[str], *more: str) -> list[dict[str, str]]:
    return preview_rows(
        capsys,
        "--protocol",
        "microneedling",
        "--completed-at",
        LATE,
        "--timezone",
        "America/Los_Angeles",
        *more,
    )


class TestLanded:
    def test_a_1930_treatments_tonight_step_lands_at_2045(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """2h after 19:30 is 21:30, in quiet hours from 21:00: "earlier" sends it at 20:45."""
        assert run(capsys, "--config", str(example), "check-config")[0] == 0
        tonight = next(r for r in late_rows(capsys) if r["step"] == "tonight")
        assert tonight["local time"] == "Tue 2026-11-24 20:45 PST"
        assert tonight["UTC"] == "2026-11-25 04:45"
        assert tonight["landed"] == "earlier: 21:30 is in quiet hours"
        assert tonight["text"].endswith("Reply STOP to opt out.")  # still the first message

    def test_steps_at_their_time_say_on_time(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """The serum reminders at 08:30 and 20:30 are not moved, and say so."""
        serum = [r for r in late_rows(capsys) if r["step"] == "serum"]
        assert {r["landed"] for r in serum} == {"on time"}

    def test_a_deferred_step_names_the_time_it_was_planned_for(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """PRP's tonight note (1h) of a 20:50 treatment is due at 21:50; 20:45 would be before
        the treatment, so it is deferred to 08:00, and the row says from when."""
        rows = preview_rows(
            capsys,
            "--protocol",
            "microneedling-prp",
            "--completed-at",
            "2026-11-25T04:50:00Z",  # 20:50 PST
        )
        tonight = next(r for r in rows if r["step"] == "tonight")
        assert tonight["local time"] == "Wed 2026-11-25 08:00 PST"
        assert tonight["landed"] == "deferred: Tue 21:50 is in quiet hours"


class TestAppointment:
    def test_appointment_at_plans_the_prep_steps_only(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """A week, four days and one day before, and 2h before: nothing of the aftercare."""
        rows = preview_rows(capsys, "--protocol", "microneedling", "--appointment-at", APPOINTMENT)
        assert {r["kind"] for r in rows} == {"prep"}
        assert [(r["step"], r["local time"]) for r in rows] == [
            ("prep-sun", "Wed 2030-03-06 10:00 PST"),
            ("prep-actives", "Sat 2030-03-09 18:00 PST"),
            ("prep-tomorrow", "Tue 2030-03-12 18:00 PDT"),
            ("prep-today", "Wed 2030-03-13 09:00 PDT"),
        ]
        assert {r["landed"] for r in rows} == {"on time"}

    def test_the_session_is_the_appointments(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """--session 2 --of 3: the prep texts name session 2 of 3."""
        rows = preview_rows(
            capsys,
            "--protocol",
            "microneedling",
            "--appointment-at",
            APPOINTMENT,
            "--session",
            "2",
            "--of",
            "3",
        )
        today = next(r for r in rows if r["step"] == "prep-today")
        assert "session 2 of 3" in today["text"]

    def test_an_appointment_at_without_a_zone_is_refused(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """A naive time exits 2 asking for a zone, as --completed-at does."""
        status, _, err = run(
            capsys, "preview", "--protocol", "microneedling", "--appointment-at", "2030-03-13T11:00"
        )
        assert status == 2
        assert "give a time zone" in err

    def test_past_and_skipped_prep_times_are_shown_not_sent(self, example: Path) -> None:
        """Booked on Tuesday at noon for an 08:00 Wednesday session: the week's notes are past,
        the 2h-before note (06:00, pushed to 08:00) is skipped, the footer goes on the first
        message that is sent."""
        settings = load_settings(example, environ={}).settings
        table = preview(
            settings,
            protocol="microneedling",
            clinic_id=None,
            completed_at=None,
            timezone=None,
            session=2,
            of=3,
            appointment_at=datetime(2030, 3, 13, 15, tzinfo=UTC),  # 08:00 PDT
            now=datetime(2030, 3, 12, 19, tzinfo=UTC),  # 12:00 PDT the day before
        )
        rows = table.split("\n\n")[0].splitlines()[1:]
        lines = {line.split()[7]: line for line in rows}
        assert "past: its time had gone by (not sent)" in lines["prep-sun"]
        assert "past: its time had gone by (not sent)" in lines["prep-actives"]
        assert "on time" in lines["prep-tomorrow"]
        assert lines["prep-tomorrow"].endswith("Reply STOP to opt out.")
        assert "skipped: 06:00 is in quiet hours, after them is too late" in lines["prep-today"]
