"""A protocol's step, already parsed, and the checks of its timing form; pure.

Steps of kind `prep` are timed from an appointment (`before`, or `days_before` with `at`);
every other kind from a completed treatment (`after`, with `every` and `count` for a series,
or `days` with `at`). `timing_problems` names what is wrong with a step's form, in the words
`check-config` prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Literal

from service.planning.timing import MAX_DAY

__all__ = ["QuietRule", "Step", "StepKind", "timing_problems"]

StepKind = Literal["aftercare", "serum", "checkin", "rebook", "prep"]
QuietRule = Literal["defer", "earlier", "skip"]
"""What a step does when its time falls in quiet hours (contract §15)."""


@dataclass(frozen=True)
class Step:
    """One message (or series of messages) of a protocol, already parsed."""

    key: str
    kind: StepKind
    texts: Mapping[str, str]  # locale -> template
    after: timedelta | None = None  # once, or the first of a series with every/count
    every: timedelta | None = None
    count: int = 1
    days: tuple[int, ...] = ()  # local days after the treatment day (day 0)
    at: tuple[time, ...] = ()  # local clock times on each of those days
    only_if: Literal["more_sessions_planned"] | None = None
    expires_after: timedelta | None = None
    in_quiet_hours: QuietRule = "defer"
    before: timedelta | None = None  # prep: once, this long before the appointment
    days_before: tuple[int, ...] = ()  # prep: local days before the appointment's day (0)


def timing_problems(step: Step) -> list[str]:
    """List what is wrong with a step's timing form; empty when it is fine.

    A step of kind `prep` uses exactly one of `before`, or `days_before` with `at`; any other
    step exactly one of `after` (with `every` and `count` for a series), or `days` with `at`.
    """
    problems = _prep_problems(step) if step.kind == "prep" else _treatment_problems(step)
    if step.expires_after is not None and step.expires_after <= timedelta(0):
        problems.append("expires_after must be positive")
    return problems


def _treatment_problems(step: Step) -> list[str]:
    if step.before is not None or step.days_before:
        return ['before and days_before are for steps of kind "prep" only (use after or days)']
    uses_after = step.after is not None or step.every is not None or step.count != 1
    uses_days = bool(step.days or step.at)
    if uses_after and uses_days:
        return ["use either after (with every and count) or days with at, not both"]
    if uses_after:
        return _after_problems(step)
    if uses_days:
        return _days_problems(step, "days", "local days after the treatment day")
    return ["no timing: set after (with every and count for a series), or days with at"]


def _prep_problems(step: Step) -> list[str]:
    if step.after is not None or step.every is not None or step.count != 1 or step.days:
        return [
            'a step of kind "prep" is timed from the appointment: use before, or '
            "days_before with at (not after, every, count or days)"
        ]
    uses_days = bool(step.days_before or step.at)
    if step.before is not None and uses_days:
        return ["use either before or days_before with at, not both"]
    if step.before is not None:
        return [] if step.before > timedelta(0) else ["before must be positive"]
    if uses_days:
        return _days_problems(step, "days_before", "local days before the appointment")
    return ['no timing: a step of kind "prep" needs before, or days_before with at']


def _after_problems(step: Step) -> list[str]:
    problems = []
    if step.after is None:
        problems.append("every and count need after (the delay of the first message)")
    elif step.after < timedelta(0):
        problems.append("after must not be negative")
    if step.count < 1:
        problems.append("count must be at least 1")
    if step.every is None and step.count > 1:
        problems.append("count needs every (the time between messages)")
    if step.every is not None and step.count == 1:
        problems.append("every needs count (the number of messages)")
    if step.every is not None and step.every <= timedelta(0):
        problems.append("every must be positive")
    return problems


def _days_problems(step: Step, name: str, meaning: str) -> list[str]:
    days = step.days_before if name == "days_before" else step.days
    problems = []
    if not days:
        problems.append(f"at needs {name} ({meaning})")
    elif min(days) < 0 or max(days) > MAX_DAY:
        problems.append(f"{name} must be from 0 to {MAX_DAY}")
    if not step.at:
        problems.append(f"{name} needs at (local clock times)")
    return problems
