"""`[protocols.X]`: a protocol's title and its steps, each read into planning's `Step`; a
check-in's replies (`CheckinFields`, service.config.conversations) sit flat in its step's table.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from service.config.conversations import CheckinFields
from service.config.fields import Clock, Duration, Section
from service.planning.protocols import Step
from service.planning.steps import QuietRule, StepKind
from service.planning.timing import parse_days

_APPOINTMENT_DAY = "the appointment's day"


class StepSettings(Section, CheckinFields):
    key: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: StepKind
    text: str | dict[str, str]
    after: Duration | None = None
    every: Duration | None = None
    count: int | None = Field(None, ge=1, le=100)
    days: str | list[int] | None = None
    at: list[Clock] = []  # noqa: RUF012 (a pydantic field: copied per model)
    only_if: Literal["more_sessions_planned"] | None = None
    expires_after: Duration | None = None
    in_quiet_hours: QuietRule = "defer"
    before: Duration | None = None  # prep steps: once, this long before the appointment
    days_before: str | list[int] | None = None  # prep steps: local days before its day

    @field_validator("days", "days_before")
    @classmethod
    def _days(cls, value: str | list[int] | None, info: ValidationInfo) -> str | list[int] | None:
        if value is not None and info.field_name == "days_before":
            parse_days(value, origin=_APPOINTMENT_DAY)
        elif value is not None:
            parse_days(value)
        return value

    def step(self, fallback_locale: str) -> Step:
        """The pure-planning view of this step."""
        texts = {fallback_locale: self.text} if isinstance(self.text, str) else dict(self.text)
        return Step(
            key=self.key,
            kind=self.kind,
            texts=texts,
            after=self.after,
            every=self.every,
            count=self.count or 1,
            days=parse_days(self.days) if self.days is not None else (),
            at=tuple(self.at),
            only_if=self.only_if,
            expires_after=self.expires_after,
            in_quiet_hours=self.in_quiet_hours,
            before=self.before,
            days_before=(
                ()
                if self.days_before is None
                else parse_days(self.days_before, origin=_APPOINTMENT_DAY)
            ),
        )


class ProtocolSettings(Section):
    title: str = Field(min_length=1)
    default_serum: str = "serum"
    steps: list[StepSettings] = Field(min_length=1)
