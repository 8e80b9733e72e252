"""Triage of a check-in's replies (contract §10): keys, free text and red flags; pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.planning.triage import has_red_flag, normal, triage

LEVELS = {"1": "ok", "2": "watch", "3": "urgent"}
FLAGS = ["swollen", "swelling", "pus", "fever", "hinchada", "hinchazón", "spreading redness"]


class TestKeys:
    @pytest.mark.parametrize("reply", ["3", "3.", " 3 ", "3!", "(3)", "\t3\n", "'3'"])
    def test_a_key_matches_ignoring_spaces_and_punctuation(self, reply: str) -> None:
        """ "3." and " 3 " are the key "3", of level urgent."""
        found = triage(reply, LEVELS, FLAGS)
        assert (found.key, found.level) == ("3", "urgent")

    def test_keys_match_ignoring_case(self) -> None:
        """A word key ("ok") matches "OK!"."""
        assert triage("OK!", {"ok": "ok"}, []).key == "ok"

    @given(st.sampled_from(sorted(LEVELS)), st.text(" .!?,;:", max_size=4))
    def test_any_key_wrapped_in_spaces_and_punctuation_is_that_key(
        self, key: str, wrap: str
    ) -> None:
        """Whatever surrounds it, a key is its own level."""
        assert triage(wrap + key + wrap[::-1], LEVELS, FLAGS).level == LEVELS[key]

    def test_a_number_inside_words_is_not_a_key(self) -> None:
        """ "3 days ago it was fine" is free text, not the key 3."""
        assert triage("3 days ago it was fine", LEVELS, FLAGS).key is None


class TestRedFlags:
    @pytest.mark.parametrize(
        "reply",
        [
            "my cheek is really SWOLLEN",
            "Hinchazón!",
            "hinchazon en la mejilla",
            "there is some pus.",
            "Fever since last night",
            "spreading   redness on my neck",
        ],
    )
    def test_a_red_flag_makes_free_text_urgent(self, reply: str) -> None:
        """A red flag of any locale, case and accents ignored, makes a reply urgent."""
        found = triage(reply, LEVELS, FLAGS)
        assert (found.key, found.level) == (None, "urgent")

    @pytest.mark.parametrize("reply", ["a bit red, is that ok?", "pushing through", "feverish?"])
    def test_only_whole_words_count(self, reply: str) -> None:
        """ "pushing" holds "pus" but not as a word: free text."""
        assert triage(reply, LEVELS, FLAGS).level == "free_text"

    @given(st.text(alphabet=st.characters(categories=["L", "Zs"]), max_size=30))
    def test_a_flag_anywhere_between_words_is_found(self, around: str) -> None:
        """Any text with " swollen " between its words is urgent."""
        assert has_red_flag(f"{around} SWOLLEN {around}", FLAGS)

    def test_normal_drops_edges_spaces_and_case(self) -> None:
        assert normal("  ¡Sí! ") == "sí"
