"""`check-config` warns of a step text that is UCS-2 only because of typographic punctuation
(contract §18), naming its TOML path; a warning, so the exit status stays 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.cli import _isolated, example, run

__all__ = ["_isolated", "example"]  # the fixtures, from tests/fixtures/cli.py

PATH = "protocols.microneedling.steps[1].text.en"


def _dashed(example: Path, *, gsm7: str = "prefer") -> Path:
    text = example.read_text(encoding="utf-8")
    old = "time for your {serum}: apply"
    assert old in text
    text = text.replace(old, "time for your {serum} \u2013 apply", 1)
    text = text.replace('gsm7 = "prefer"', f'gsm7 = "{gsm7}"', 1)
    path = example.with_name("dashed.toml")
    path.write_text(text, encoding="utf-8")
    return path


def test_a_dash_making_a_text_ucs2_is_a_warning_with_its_path(
    capsys: pytest.CaptureFixture[str], example: Path
) -> None:
    status, out, err = run(capsys, "--config", str(_dashed(example)), "check-config")
    assert status == 0 and "valid" in out
    assert f"warning: {PATH}: UCS-2 only because of typographic" in err
    assert 'replaced when sent (sms.gsm7 = "prefer")' in err


def test_with_gsm7_off_the_warning_says_it_is_sent_as_written(
    capsys: pytest.CaptureFixture[str], example: Path
) -> None:
    path = _dashed(example, gsm7="off")
    status, _, err = run(capsys, "--config", str(path), "check-config")
    assert status == 0
    assert f"warning: {PATH}: UCS-2 only" in err and 'sent as written (sms.gsm7 = "off")' in err
