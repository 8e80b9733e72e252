"""The conversation's settings (contract §10, §12): how a check-in's replies are read, who is told
of an urgent one, and the words that stop one kind of message.

Mixed into the step and clinic sections (`service.config.protocols`, `service.config.clinics`;
their fields sit flat in the TOML tables); `[sms]` is defined here whole, with its stop words
and per-locale footers.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.config.fields import Duration
from service.planning.templates import pick_text

Level = Literal["ok", "watch", "urgent", "free_text"]
LEVELS: tuple[Level, ...] = ("ok", "watch", "urgent", "free_text")
# A reply's levels a clinic may escalate: a triage level, or `photo` (contract §17).
EscalateLevel = Literal["ok", "watch", "urgent", "free_text", "photo"]
Localized = str | dict[str, str]  # a text in the clinic's locale, or a table of locales
DEFAULT_REPLY_WINDOW = timedelta(hours=48)
DEFAULT_STOP_WORDS = {"SERUM": ["serum"], "BOOKING": ["rebook", "prep"], "CHECKIN": ["checkin"]}


def e164(value: str) -> str:
    """`value` as an E.164 number; ValueError when it is not a valid one."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not an E.164 number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid E.164 number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def localized(text: Localized, locale: str | None, fallback: str) -> str:
    """The text for a patient's `locale` (their language, the clinic's `fallback`...)."""
    if isinstance(text, str):
        return text
    return pick_text(text, locale, fallback)[1]


class ReplySettings(BaseModel):
    """One key a check-in's reply may be: how urgent it is and what to answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    level: Literal["ok", "watch", "urgent"]
    answer: Localized


class CheckinFields(BaseModel):
    """A check-in step's replies (contract §10); only kind `checkin` may carry them."""

    reply_window: Duration | None = None
    fallback_answer: Localized | None = None
    red_flags: dict[str, list[str]] = {}
    replies: dict[str, ReplySettings] = {}

    @model_validator(mode="after")
    def _only_checkins(self) -> CheckinFields:
        carried = [f for f in ("reply_window", "fallback_answer") if getattr(self, f) is not None]
        carried += [f for f in ("red_flags", "replies") if getattr(self, f)]
        if carried and getattr(self, "kind", "checkin") != "checkin":
            raise ValueError(f"only a checkin step may set {', '.join(carried)}")
        return self

    @property
    def window(self) -> timedelta:
        """How long after it was sent a reply belongs to this check-in."""
        return self.reply_window or DEFAULT_REPLY_WINDOW


class ClinicEscalationFields(BaseModel):
    """Who hears of a reply that needs a person, and when again (contract §10)."""

    escalate_levels: list[EscalateLevel] = ["urgent"]
    on_call_numbers: list[str] = []
    escalation_reminder: Duration = timedelta(minutes=15)

    @field_validator("on_call_numbers")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        return [e164(v) for v in value]

    @field_validator("escalation_reminder")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value


class SmsSettings(BaseModel):
    """`[sms]`: the backend, the opt-out footer (one text or per locale), keyword answers, and
    the words of `STOP <WORD>` (contract §12)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["console", "twilio"] = "console"
    opt_out_footer: Localized = "Reply STOP to opt out."
    reply_to_keywords: bool = True
    gsm7: Literal["prefer", "off"] = "prefer"  # typographic punctuation to GSM-7 (contract §18)
    # A patient's messages due within this of the earliest go as one text ("0s": off).
    merge_window: Duration = Field(timedelta(0), ge=timedelta(0), le=timedelta(hours=12))
    # Texts a patient gets from a clinic per local day (None: no limit); merged texts count once.
    max_per_day: int | None = Field(None, ge=1, le=50)
    stop_words: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_STOP_WORDS))

    @field_validator("stop_words")
    @classmethod
    def _words(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        out = {}
        for word, kinds in value.items():
            if not word.isalpha() or not kinds:
                raise ValueError(f"{word!r}: a word of letters naming at least one kind")
            out[word.upper()] = [k.lower() for k in kinds]
        return out

    def footer(self, locale: str | None, fallback: str) -> str:
        """The opt-out footer for a patient's `locale` ('' when there is none)."""
        try:
            return localized(self.opt_out_footer, locale, fallback)
        except LookupError:
            return ""
