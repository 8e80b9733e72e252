"""The keywords of an inbound text (contract §7, §10, §12), read from its words alone; pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

STOP = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"}
START = {"START", "UNSTOP", "YES"}
HELP = {"HELP", "INFO"}
ACK = {"ACK"}
ACK_CODE = re.compile(r"[0-9]{1,8}")  # `ACK 4821`: the escalation's code


class Action(StrEnum):
    """What a keyword asks for."""

    STOP = "stop"
    START = "start"
    HELP = "help"
    ACK = "ack"


@dataclass(frozen=True)
class Keyword:
    """A keyword: its action, and for `STOP <WORD>` / `START <WORD>` the word, for
    `ACK <code>` the code (else None)."""

    action: Action
    text: str  # as recorded: "STOP", "STOP SERUM"
    word: str | None = None


def words(body: str) -> str:
    """A text's words, upper case, single-spaced, without punctuation."""
    return " ".join(re.sub(r"[^\w\s]", " ", body).split()).upper()


def keyword(body: str, stop_words: Mapping[str, object]) -> Keyword | None:
    """The keyword `body` is, ignoring case, spaces and punctuation; None for other text.

    `STOP <WORD>` and `START <WORD>` need WORD to be one of `stop_words`' keys; `ACK <code>`
    a code of digits."""
    text = words(body)
    for family, action in ((STOP, Action.STOP), (START, Action.START), (HELP, Action.HELP)):
        if text in family:
            return Keyword(action, text)
    if text in ACK:
        return Keyword(Action.ACK, text)
    first, _, word = text.partition(" ")
    if first == "ACK" and ACK_CODE.fullmatch(word):
        return Keyword(Action.ACK, text, word)
    if first in ("STOP", "START") and word in stop_words:
        return Keyword(Action.STOP if first == "STOP" else Action.START, text, word)
    return None
