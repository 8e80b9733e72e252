"""How urgent a patient's reply to a check-in is (contract §10); pure.

A reply that is one of the check-in's keys (case, spaces and surrounding punctuation ignored)
has that key's level. Anything else is `free_text`, unless it holds one of the red flags as a
whole word (case and accents ignored, any locale's): then it is `urgent`, because patients
often answer in words, and "my cheek is swollen" must not wait for office hours.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_EDGES = re.compile(r"^[\W_]+|[\W_]+$")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Triage:
    """What a reply was read as: the key it matched (None: free text) and its level."""

    key: str | None
    level: str


def normal(text: str) -> str:
    """A key or reply as compared: casefolded, without surrounding punctuation or spaces."""
    return _SPACE.sub("", _EDGES.sub("", text.strip())).casefold()


def _words(text: str) -> str:
    """The words of `text`, accents dropped and casefolded, joined by single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_WORD.findall(bare.casefold()))


def has_red_flag(text: str, flags: Iterable[str]) -> bool:
    """Whether `text` holds one of `flags` (a word or a phrase) as whole words."""
    padded = f" {_words(text)} "
    return any((flag := _words(f)) and f" {flag} " in padded for f in flags)


def triage(text: str, levels: Mapping[str, str], red_flags: Iterable[str]) -> Triage:
    """Read a reply against a check-in's keys (key → level) and red flags."""
    wanted = normal(text)
    for key, level in levels.items():
        if normal(key) == wanted:
            return Triage(key, level)
    return Triage(None, "urgent" if has_red_flag(text, red_flags) else "free_text")
