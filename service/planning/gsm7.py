"""GSM-7 forms of typographic punctuation (contract §18 "Segments"); pure.

One character outside the GSM-7 alphabet makes a whole text UCS-2 (70 characters a
segment instead of 160), and the usual culprits are pasted from word processors: curly
quotes, en and em dashes, an ellipsis, a non-breaking space. `prefer_gsm7` replaces
only those with their plain forms; letters, accented or not, are never changed.
"""

from __future__ import annotations

from service.planning.templates import segments

__all__ = ["GSM7_FORMS", "plain_punctuation", "prefer_gsm7", "ucs2_only_for_punctuation"]

_SPACES = (
    "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
)
GSM7_FORMS: dict[str, str] = {
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'"),  # single quotes, prime
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"'),  # double quotes, double prime
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),  # hyphens, dashes, minus
    "\u2026": "...",  # ellipsis
    **dict.fromkeys(_SPACES, " "),
}
_TABLE = str.maketrans(GSM7_FORMS)


def plain_punctuation(text: str) -> str:
    """`text` with typographic quotes, dashes, ellipses and odd spaces in their GSM-7 forms."""
    return text.translate(_TABLE)


def prefer_gsm7(text: str) -> str:
    """`plain_punctuation(text)`, unless that would cost more segments than `text`.

    It can: a text that stays UCS-2 (for an "á", say) gets longer when each "…"
    becomes "...", and the point of the replacement is to save segments."""
    plain = plain_punctuation(text)
    if plain == text:  # nothing to replace (most texts): no segments to count
        return text
    return plain if segments(plain).count <= segments(text).count else text


def ucs2_only_for_punctuation(text: str) -> bool:
    """Whether `text` is UCS-2 as written but GSM-7 once its punctuation is replaced."""
    return segments(text).encoding == "UCS-2" and segments(prefer_gsm7(text)).encoding == "GSM-7"
