"""`prefer_gsm7`: punctuation to GSM-7 forms, letters untouched, never more segments."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from service.planning.gsm7 import GSM7_FORMS, prefer_gsm7, ucs2_only_for_punctuation
from service.planning.templates import segments


def test_curly_apostrophe_and_en_dash_become_plain_and_gsm7() -> None:
    text = "Don\u2019t pick the scab \u2013 it heals by itself\u2026 \u201cgently\u201d"
    out = prefer_gsm7(text)
    assert out == 'Don\'t pick the scab - it heals by itself... "gently"'
    assert segments(text).encoding == "UCS-2"
    assert segments(out).encoding == "GSM-7"
    assert ucs2_only_for_punctuation(text)


def test_accents_outside_gsm7_stay_and_are_not_blamed_on_punctuation() -> None:
    text = "Cuídese la piel \u2013 gracias"
    assert prefer_gsm7(text) == "Cuídese la piel - gracias"
    assert not ucs2_only_for_punctuation(text)
    assert not ucs2_only_for_punctuation("plain text")


def test_ellipses_in_a_text_that_stays_ucs2_are_kept_when_plain_would_cost_more() -> None:
    text = "á" + "\u2026" * 69
    assert prefer_gsm7(text) == text


@given(st.text())
def test_letters_never_change(text: str) -> None:
    out = prefer_gsm7(text)
    assert [c for c in out if c.isalpha()] == [c for c in text if c.isalpha()]
    assert prefer_gsm7(out) == out


@given(
    st.text(alphabet=st.sampled_from([*GSM7_FORMS, "a", "é", "á", " ", "€", "😀"]), max_size=400)
)
def test_never_more_segments(text: str) -> None:
    assert segments(prefer_gsm7(text)).count <= segments(text).count
