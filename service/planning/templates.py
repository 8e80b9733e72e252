"""Message templates: placeholders, locale choice and SMS segment counts; pure.

Templates use `str.format` braces but only the bare named placeholders in
`PLACEHOLDERS`: no format specs, conversions, attribute or index access, so a
clinic's text can never reach into Python objects, and a value (a patient's
name, say) is inserted as-is, never read as a template itself.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "PLACEHOLDERS",
    "Segments",
    "pick_text",
    "render",
    "segments",
    "template_problems",
]

PLACEHOLDERS = frozenset(
    {
        "first_name",
        "clinic_name",
        "serum",
        "session_number",
        "sessions_planned",
        "next_session_number",
    }
)
_KNOWN = ", ".join(f"{{{name}}}" for name in sorted(PLACEHOLDERS))
_FIELD_BASE_RE = re.compile(r"[^.\[]*")


def template_problems(text: str) -> list[str]:
    """List what is wrong with a template, in reading order; empty when it is fine."""
    if not text.strip():
        return ["text is empty"]
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(text)
            if name is not None
        ]
    except ValueError as exc:
        return [f"unbalanced braces: {exc} (write {{{{ and }}}} for literal braces)"]
    problems: list[str] = []
    for name, spec, conversion in fields:
        problems.extend(_field_problems(name, spec, conversion))
    # A placeholder misspelt twice is one mistake, not two.
    return list(dict.fromkeys(problems))


def _field_problems(name: str, spec: str | None, conversion: str | None) -> list[str]:
    name_problem = _name_problem(name)
    problems = [name_problem] if name_problem else []
    if conversion is not None:
        problems.append(f"conversion !{conversion} in {{{name}}} is not allowed")
    if spec:
        problems.append(f"format spec :{spec} in {{{name}}} is not allowed")
    return problems


def _name_problem(name: str) -> str | None:
    if name == "" or name.isdigit():
        return f"positional placeholder {{{name}}} is not allowed; use one of {_KNOWN}"
    base = _FIELD_BASE_RE.match(name)
    if base is not None and base.group() != name:
        return f"attribute or index access in {{{name}}} is not allowed; use one of {_KNOWN}"
    if name not in PLACEHOLDERS:
        return f"unknown placeholder {{{name}}}; use one of {_KNOWN}"
    return None


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill a template's placeholders from `values` (a missing one raises KeyError).

    The template is checked first (ValueError listing its problems), and the
    values are pasted in as they are, never formatted or interpreted.
    """
    problems = template_problems(text)
    if problems:
        raise ValueError("bad template: " + "; ".join(problems))
    return "".join(
        literal + (values[name] if name is not None else "")
        for literal, name, _, _ in string.Formatter().parse(text)
    )


def pick_text(texts: Mapping[str, str], locale: str | None, fallback: str) -> tuple[str, str]:
    """Choose a text for a patient's locale: return ``(locale used, text)``.

    Tried in order: the locale, its language (``es-MX`` -> ``es``), the
    fallback (the clinic's locale), its language. Case and ``_``/``-`` do not
    matter; the locale used is spelt as in `texts`. Raises LookupError if none
    has a text.
    """
    by_key = {_normal(key): key for key in texts}
    for wanted in _candidates(locale, fallback):
        key = by_key.get(wanted)
        if key is not None:
            return key, texts[key]
    have = ", ".join(sorted(texts)) or "none"
    raise LookupError(f"no text for locale {locale!r} or fallback {fallback!r} (have: {have})")


def _normal(locale: str) -> str:
    return locale.strip().replace("_", "-").lower()


def _candidates(locale: str | None, fallback: str) -> Iterable[str]:
    for tag in (locale, fallback):
        if tag and tag.strip():
            normal = _normal(tag)
            yield normal
            yield normal.split("-", 1)[0]


@dataclass(frozen=True)
class Segments:
    """How an SMS body is split and billed.

    `characters` is the length in the encoding's units: GSM-7 septets (an
    extension character such as ``€`` or ``{`` takes two) or UCS-2 UTF-16 code
    units (a character outside the BMP, such as an emoji, takes two).
    """

    count: int
    encoding: Literal["GSM-7", "UCS-2"]
    characters: int


# 3GPP TS 23.038 default alphabet (without ESC, which only introduces the
# extension table) and the extension characters that cost an escape septet.
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("\f^{}\\[]~|€")
_GSM_ALL = _GSM_BASIC | _GSM_EXTENSION
_BMP_LAST = "\uffff"  # a character after it is a surrogate pair in UTF-16
_GSM_SINGLE, _GSM_PART = 160, 153  # a multipart header takes 7 septets
_UCS2_SINGLE, _UCS2_PART = 70, 67  # ... or 3 UTF-16 code units


def segments(text: str) -> Segments:
    """Count the SMS segments a body takes, choosing GSM-7 when every character allows it.

    An empty text is 0 segments: it is not a sendable message (Twilio refuses an
    empty body), and templates are never empty.
    """
    # Counted over the text's distinct characters, and character by character only for a
    # text of several segments: this runs for every message sent (docs/benchmarks.md).
    distinct = set(text)
    if distinct <= _GSM_ALL:
        wide = distinct & _GSM_EXTENSION
        units = len(text) + sum(text.count(char) for char in wide)
        if units <= _GSM_SINGLE:
            return Segments(1 if text else 0, "GSM-7", units)
        widths = [2 if char in wide else 1 for char in text]
        return Segments(_count(widths, _GSM_SINGLE, _GSM_PART), "GSM-7", units)
    wide = {char for char in distinct if char > _BMP_LAST}
    units = len(text) + sum(text.count(char) for char in wide)
    if units <= _UCS2_SINGLE:
        return Segments(1, "UCS-2", units)
    widths = [2 if char in wide else 1 for char in text]
    return Segments(_count(widths, _UCS2_SINGLE, _UCS2_PART), "UCS-2", units)


def _count(widths: list[int], single: int, part: int) -> int:
    if sum(widths) <= single:
        return 1 if widths else 0
    # Fill parts greedily without splitting a two-unit character (an escape
    # pair or a surrogate pair) across them, as handsets and Twilio do.
    parts, used = 1, 0
    for width in widths:
        if used + width > part:
            parts, used = parts + 1, 0
        used += width
    return parts
