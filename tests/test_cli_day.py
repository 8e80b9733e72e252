"""`aftercare preview` shows the patient's day as it will be sent (docs/day.md): which rows merge
into one text (and that text's segments on its first row), which the daily limit skips, and the
treatment's total of texts and segments. The example configuration merges within 30 minutes and
allows 4 texts a day; the limit's test lowers it to 2 through the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures.cli import _isolated, example, preview_rows, preview_total

__all__ = ["_isolated", "example"]  # the fixtures, from tests/fixtures/cli.py

COMPLETED = "2026-11-25T22:30:00Z"  # 14:30 in Los Angeles
ARGS = ("--protocol", "microneedling", "--completed-at", COMPLETED)


def total_of(rows: list[dict[str, str]]) -> tuple[int, int]:
    """Texts and segments counted from the rows: each row sent as a text of its own or the
    first of a merged one, with its segments."""
    sent = [
        r
        for r in rows
        if not r["segments"].startswith("in #") and not r["landed"].endswith("(not sent)")
    ]
    return len(sent), sum(int(r["segments"].split()[0]) for r in sent)


class TestMerging:
    def test_a_note_within_the_window_merges_into_the_serum_before_it(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """Thursday's 09:00 sun note goes with the 08:30 serum: its row points at the serum's,
        which shows the merged text's segments (two short texts and a blank line: 2)."""
        rows = preview_rows(capsys, *ARGS)
        serum = next(r for r in rows if r["step"] == "serum")
        sun = next(r for r in rows if r["step"] == "sun")
        assert (serum["local time"][:14], sun["local time"][:14]) == ("Thu 2026-11-26",) * 2
        assert sun["segments"] == f"in #{serum['#']}"
        assert sun["landed"] == f"on time, merged into #{serum['#']}"
        assert serum["segments"] == "2 GSM-7"

    def test_the_total_counts_merged_texts_once(
        self, capsys: pytest.CaptureFixture[str], example: Path
    ) -> None:
        """35 messages, two pairs merged: 33 texts; the total agrees with the rows."""
        rows = preview_rows(capsys, *ARGS)
        texts, segments = total_of(rows)
        assert (len(rows), texts) == (35, 33)
        assert preview_total(capsys, *ARGS) == f"total: {texts} texts, {segments} segments"

    def test_merging_off_shows_every_message_as_its_own_text(
        self, capsys: pytest.CaptureFixture[str], example: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`merge_window = "0s"`: no row merges, and the total is one text a row."""
        monkeypatch.setenv("AFTERCARE_SMS__MERGE_WINDOW", "0s")
        rows = preview_rows(capsys, *ARGS)
        assert all(re.fullmatch(r"\d+ (GSM-7|UCS-2)", r["segments"]) for r in rows)
        assert preview_total(capsys, *ARGS).startswith("total: 35 texts, ")


class TestDailyLimit:
    def test_past_the_limit_the_evening_serum_is_skipped(
        self, capsys: pytest.CaptureFixture[str], example: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With 2 a day, Saturday (serum and sun note merged, check-in, evening serum) loses
        its evening serum; the check-in and the notes still go, and the total drops by one."""
        monkeypatch.setenv("AFTERCARE_SMS__MAX_PER_DAY", "2")
        rows = preview_rows(capsys, *ARGS)
        skipped = [r for r in rows if r["landed"] == "skipped: daily limit (not sent)"]
        assert {r["kind"] for r in skipped} <= {"serum", "rebook"}
        assert any(r["local time"].startswith("Sat 2026-11-28 20:30") for r in skipped)
        assert all(r["kind"] in ("serum", "rebook") for r in skipped)
        kept = [r for r in rows if r not in skipped]
        assert {r["step"] for r in kept} >= {"tonight", "sun", "actives", "check-in", "week-check"}
        texts, segments = total_of(rows)
        assert preview_total(capsys, *ARGS) == f"total: {texts} texts, {segments} segments"
        assert texts == 33 - len(skipped)
