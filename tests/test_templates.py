"""Placeholders, locale choice and SMS segments (service.planning.templates)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.planning.templates import (
    PLACEHOLDERS,
    Segments,
    pick_text,
    render,
    segments,
    template_problems,
)

KNOWN = (
    "{clinic_name}, {first_name}, {next_session_number}, {serum}, "
    "{session_number}, {sessions_planned}"
)
VALUES = {
    "first_name": "Ana",
    "clinic_name": "Glow Skin Studio",
    "serum": "hyaluronic acid serum",
    "session_number": "1",
    "sessions_planned": "3",
    "next_session_number": "2",
}


class TestTemplateProblems:
    def test_a_template_using_every_placeholder_is_fine(self) -> None:
        """Each known placeholder, bare, is accepted."""
        text = " ".join(f"{{{name}}}" for name in sorted(PLACEHOLDERS))
        assert template_problems(text) == []

    def test_literal_braces_are_fine(self) -> None:
        """Doubled braces are text, not placeholders."""
        assert template_problems("Use {{gentle}} cleanser, {first_name}.") == []

    @pytest.mark.parametrize("text", ["", "   ", "\n"])
    def test_an_empty_text_is_a_problem(self, text: str) -> None:
        """A template with nothing to say is refused."""
        assert template_problems(text) == ["text is empty"]

    def test_an_unknown_placeholder_names_the_known_ones(self) -> None:
        """A misspelt placeholder is reported with the list to choose from."""
        assert template_problems("Hi {firstname}") == [
            f"unknown placeholder {{firstname}}; use one of {KNOWN}"
        ]

    def test_the_same_mistake_twice_is_reported_once(self) -> None:
        """Repeats of one bad placeholder give one problem."""
        assert len(template_problems("{foo} and {foo}")) == 1

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ("{first_name!r}", "conversion !r in {first_name} is not allowed"),
            ("{serum:>10}", "format spec :>10 in {serum} is not allowed"),
            ("{serum:{first_name}}", "format spec :{first_name} in {serum} is not allowed"),
        ],
    )
    def test_conversions_and_format_specs_are_problems(self, text: str, problem: str) -> None:
        """Only bare placeholders are allowed: no !r, no :spec, no nested fields."""
        assert template_problems(text) == [problem]

    @pytest.mark.parametrize("text", ["{first_name.upper}", "{first_name[0]}", "{x[0]}"])
    def test_attribute_and_index_access_are_problems(self, text: str) -> None:
        """A template may not reach into a value's attributes or items."""
        (problem,) = template_problems(text)
        assert problem.startswith("attribute or index access in ")

    @pytest.mark.parametrize("text", ["Hi {}", "Hi {0}", "{1}"])
    def test_positional_placeholders_are_problems(self, text: str) -> None:
        """Placeholders must be named."""
        (problem,) = template_problems(text)
        assert problem.startswith("positional placeholder ")

    @pytest.mark.parametrize("text", ["Hi {first_name", "Hi }", "{", "a } b {first_name}"])
    def test_unbalanced_braces_are_a_problem(self, text: str) -> None:
        """A stray brace is reported with how to write a literal one."""
        (problem,) = template_problems(text)
        assert problem.startswith("unbalanced braces: ")
        assert "{{ and }}" in problem

    def test_several_problems_come_in_reading_order(self) -> None:
        """Every bad placeholder is reported, first to last."""
        problems = template_problems("{foo} {first_name!s} {}")
        assert [p.split()[0] for p in problems] == ["unknown", "conversion", "positional"]


class TestRender:
    def test_placeholders_are_filled(self) -> None:
        """Each placeholder becomes its value."""
        text = "Hi {first_name}, time for your {serum}. {clinic_name}"
        assert render(text, VALUES) == (
            "Hi Ana, time for your hyaluronic acid serum. Glow Skin Studio"
        )

    def test_literal_braces_come_out_single(self) -> None:
        """Doubled braces render as one brace."""
        assert render("{{note}} {first_name}", VALUES) == "{note} Ana"

    def test_values_are_never_read_as_templates(self) -> None:
        """A name that looks like a placeholder is inserted as it is."""
        values = {**VALUES, "first_name": "{clinic_name} {0} {{x}}"}
        assert render("Hi {first_name}", values) == "Hi {clinic_name} {0} {{x}}"

    def test_a_missing_value_raises_key_error(self) -> None:
        """Every placeholder used needs a value."""
        with pytest.raises(KeyError):
            render("Hi {first_name}", {})

    @pytest.mark.parametrize("text", ["{first_name.__class__}", "{foo}", "", "{"])
    def test_an_invalid_template_is_refused(self, text: str) -> None:
        """Rendering checks the template first, so attribute access never runs."""
        with pytest.raises(ValueError, match="bad template"):
            render(text, VALUES)

    @given(st.text())
    def test_text_without_braces_renders_as_itself(self, text: str) -> None:
        """Plain text passes through unchanged."""
        plain = text.replace("{", "").replace("}", "")
        if plain.strip():
            assert render(plain, VALUES) == plain


class TestPickText:
    TEXTS: Mapping[str, str] = MappingProxyType({"en": "Hello", "es": "Hola", "pt-BR": "Olá"})

    def test_the_exact_locale_wins(self) -> None:
        """A text for the patient's locale is used."""
        assert pick_text(self.TEXTS, "es", "en") == ("es", "Hola")

    @pytest.mark.parametrize("locale", ["PT-br", "pt_BR", "pt_br"])
    def test_case_and_underscores_do_not_matter(self, locale: str) -> None:
        """Locale tags match case-insensitively with _ as -, spelt as in the texts."""
        assert pick_text(self.TEXTS, locale, "en") == ("pt-BR", "Olá")

    def test_a_regional_locale_falls_back_to_its_language(self) -> None:
        """es-MX uses the es text."""
        assert pick_text(self.TEXTS, "es-MX", "en") == ("es", "Hola")

    @pytest.mark.parametrize("locale", [None, "", "fr", "fr-CA"])
    def test_otherwise_the_clinic_locale_is_used(self, locale: str | None) -> None:
        """No locale, or one without a text, falls back to the clinic's."""
        assert pick_text(self.TEXTS, locale, "en") == ("en", "Hello")

    def test_the_clinic_locale_also_falls_back_to_its_language(self) -> None:
        """A clinic in en-US uses the en text."""
        assert pick_text(self.TEXTS, "fr", "en-US") == ("en", "Hello")

    def test_the_language_of_the_patient_beats_the_clinic_locale(self) -> None:
        """The patient's language comes before the clinic's exact locale."""
        assert pick_text({"es": "Hola", "en-US": "Hi"}, "es-MX", "en-US") == ("es", "Hola")

    def test_no_match_at_all_raises_lookup_error(self) -> None:
        """Without a text for the patient or the clinic there is nothing to send."""
        with pytest.raises(LookupError, match=r"no text for locale 'fr'.*have: en, es"):
            pick_text({"en": "Hello", "es": "Hola"}, "fr", "de")


class TestSegments:
    @pytest.mark.parametrize(
        ("length", "count"), [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3)]
    )
    def test_gsm_text_fits_160_alone_or_153_per_part(self, length: int, count: int) -> None:
        """Plain GSM-7 text is one segment up to 160 characters, then 153 per segment."""
        assert segments("a" * length) == Segments(count, "GSM-7", length)

    def test_gsm_accented_letters_stay_gsm(self) -> None:
        """Letters in the GSM-7 alphabet such as ñ, é and Ä do not force UCS-2."""
        assert segments("Mañana é Ä ü £ ¿").encoding == "GSM-7"

    @pytest.mark.parametrize("char", list("^{}\\[~]|€\f"))
    def test_extension_characters_count_double(self, char: str) -> None:
        """An extension character takes an escape septet as well as its own."""
        assert segments(char * 80) == Segments(1, "GSM-7", 160)
        assert segments(char * 81) == Segments(2, "GSM-7", 162)

    def test_an_escape_pair_is_not_split_across_segments(self) -> None:
        """A two-septet character that does not fit a part starts the next one."""
        # 306 septets would be 2 parts of 153, but the € cannot straddle them.
        assert segments("a" * 152 + "€" + "a" * 152) == Segments(3, "GSM-7", 306)

    def test_one_emoji_makes_the_message_ucs2(self) -> None:
        """A character outside GSM-7 switches the whole text to UCS-2."""
        assert segments("See you soon 😊") == Segments(1, "UCS-2", 15)

    @pytest.mark.parametrize(("length", "count"), [(70, 1), (71, 2), (134, 2), (135, 3)])
    def test_ucs2_text_fits_70_alone_or_67_per_part(self, length: int, count: int) -> None:
        """UCS-2 text is one segment up to 70 code units, then 67 per segment."""
        assert segments("д" * length) == Segments(count, "UCS-2", length)

    def test_an_emoji_counts_two_code_units(self) -> None:
        """Characters outside the BMP take a surrogate pair."""
        assert segments("д" * 68 + "😊") == Segments(1, "UCS-2", 70)
        assert segments("д" * 69 + "😊") == Segments(2, "UCS-2", 71)

    def test_a_surrogate_pair_is_not_split_across_segments(self) -> None:
        """An emoji that does not fit a part starts the next one."""
        assert segments("д" * 66 + "😊" + "д" * 66) == Segments(3, "UCS-2", 134)

    def test_an_empty_text_is_no_segments(self) -> None:
        """Nothing to send bills nothing (Twilio refuses an empty body anyway)."""
        assert segments("") == Segments(0, "GSM-7", 0)

    @given(
        st.one_of(
            st.text(alphabet=st.sampled_from([*"aé€{^\f\n"]), max_size=480),
            st.text(
                alphabet=st.sampled_from([*"aé€{\n", "д", "😊", "\u2019", "\U00010000"]),
                max_size=240,
            ),
        )
    )
    def test_counts_as_character_by_character(self, text: str) -> None:
        """The count over distinct characters (segments runs for every send) is the count of
        each character's width in turn, as it was first written."""
        assert segments(text) == _segments_char_by_char(text)


def _segments_char_by_char(text: str) -> Segments:
    """segments as first written: every character's width, then the greedy parts."""
    gsm = frozenset(
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
        "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    )
    extension = frozenset("\f^{}\\[]~|€")
    if all(char in gsm or char in extension for char in text):
        widths, single, part, encoding = (
            [2 if c in extension else 1 for c in text],
            160,
            153,
            "GSM-7",
        )
    else:
        widths, single, part, encoding = (
            [2 if ord(c) > 0xFFFF else 1 for c in text],
            70,
            67,
            "UCS-2",
        )
    if sum(widths) <= single:
        return Segments(1 if widths else 0, encoding, sum(widths))  # type: ignore[arg-type]
    parts, used = 1, 0
    for width in widths:
        if used + width > part:
            parts, used = parts + 1, 0
        used += width
    return Segments(parts, encoding, sum(widths))  # type: ignore[arg-type]
