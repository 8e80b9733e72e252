"""Protocols and the plan they make for one treatment; pure.

A protocol is a list of steps; each step says when (a delay after the
treatment, a series, or local clock times on local days) and what (a
template per locale). `plan` turns a completed treatment into the messages
to send, in UTC, moved out of the patient's quiet hours. It takes no clock
and does no I/O: the same inputs always give the same plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from service.planning.templates import pick_text, render
from service.planning.timing import MAX_DAY, QuietHours, local_to_utc, push_out_of_quiet_hours

__all__ = [
    "ClinicView",
    "PlannedMessage",
    "Protocol",
    "Recipient",
    "Step",
    "Treatment",
    "occurrences",
    "plan",
    "render_values",
    "timing_problems",
]

StepKind = Literal["aftercare", "serum", "checkin", "rebook"]


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


@dataclass(frozen=True)
class Protocol:
    """A named sequence of steps, with the serum to name when the treatment has none."""

    key: str
    title: str
    default_serum: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Treatment:
    """What the plan needs to know about a completed treatment, already validated."""

    completed_at: datetime  # aware
    session_number: int = 1
    sessions_planned: int = 1
    serum: str | None = None  # None: the protocol's default_serum


@dataclass(frozen=True)
class Recipient:
    """The patient as the plan sees them."""

    first_name: str
    timezone: ZoneInfo
    locale: str | None


@dataclass(frozen=True)
class ClinicView:
    """The clinic settings the plan depends on."""

    name: str
    locale: str  # the fallback locale
    quiet_hours: QuietHours


@dataclass(frozen=True)
class PlannedMessage:
    """One message of a plan, with its times in UTC and its rendered body."""

    step: str
    kind: str
    seq: int  # 0-based occurrence index within the step, in time order
    planned_at: datetime  # UTC, before quiet hours
    send_at: datetime  # UTC, after quiet hours
    expires_at: datetime  # send_at + (step.expires_after or default_expires_after)
    locale: str
    body: str  # rendered text, without the opt-out footer
    moved: bool  # whether quiet hours moved it


def plan(
    protocol: Protocol,
    treatment: Treatment,
    recipient: Recipient,
    clinic: ClinicView,
    *,
    default_expires_after: timedelta,
) -> list[PlannedMessage]:
    """Plan every message of `protocol` for one treatment, ordered by send time.

    Ties keep the protocol's step order, then each step's own order. Raises
    ValueError for a step with an invalid timing form or template, and
    LookupError for a step without a text for the recipient or the clinic.
    """
    values = render_values(protocol, treatment, recipient, clinic)
    planned = [
        (order, message)
        for order, step in enumerate(protocol.steps)
        if _applies(step, treatment)
        for message in _plan_step(
            step,
            treatment,
            recipient=recipient,
            clinic=clinic,
            values=values,
            default_expires_after=default_expires_after,
        )
    ]
    planned.sort(key=lambda item: (item[1].send_at, item[0], item[1].seq))
    return [message for _, message in planned]


def _applies(step: Step, treatment: Treatment) -> bool:
    if step.only_if == "more_sessions_planned":
        return treatment.session_number < treatment.sessions_planned
    return True


def _plan_step(
    step: Step,
    treatment: Treatment,
    *,
    recipient: Recipient,
    clinic: ClinicView,
    values: Mapping[str, str],
    default_expires_after: timedelta,
) -> list[PlannedMessage]:
    locale, template = pick_text(step.texts, recipient.locale, clinic.locale)
    body = render(template, values)
    expires_after = default_expires_after if step.expires_after is None else step.expires_after
    tz = recipient.timezone
    messages = []
    for seq, planned_at in enumerate(occurrences(step, treatment.completed_at, tz)):
        send_at = push_out_of_quiet_hours(planned_at, tz, clinic.quiet_hours)
        messages.append(
            PlannedMessage(
                step=step.key,
                kind=step.kind,
                seq=seq,
                planned_at=planned_at,
                send_at=send_at,
                expires_at=send_at + expires_after,
                locale=locale,
                body=body,
                moved=send_at != planned_at,
            )
        )
    return messages


def occurrences(step: Step, completed_at: datetime, tz: ZoneInfo) -> list[datetime]:
    """Return a step's planned instants (UTC, before quiet hours) in time order.

    Local days count from the treatment day in `tz`, the patient's zone. Times
    on day 0 that were already past when the treatment ended are left out.
    """
    problems = timing_problems(step)
    if problems:
        raise ValueError(f"step {step.key!r}: " + "; ".join(problems))
    if completed_at.utcoffset() is None:
        raise ValueError(f"completed_at must be timezone-aware, not {completed_at!r}")
    if step.after is not None:
        # Add in UTC: adding to a datetime in a ZoneInfo zone adds wall-clock
        # time, and "2h after" must mean two real hours across a DST change.
        first = completed_at.astimezone(UTC) + step.after
        every = step.every or timedelta(0)  # no every means count == 1
        return [first + i * every for i in range(step.count)]
    day0 = completed_at.astimezone(tz).date()
    instants = sorted(
        local_to_utc(day0 + timedelta(days=day), clock, tz)
        for day in step.days
        for clock in step.at
    )
    # A morning reminder on day 0 of an afternoon treatment would otherwise be
    # due before the treatment and go out late, the moment the plan is stored.
    return [instant for instant in instants if instant >= completed_at]


def render_values(
    protocol: Protocol, treatment: Treatment, recipient: Recipient, clinic: ClinicView
) -> dict[str, str]:
    """Return the value of every placeholder for one treatment's messages."""
    return {
        "first_name": recipient.first_name,
        "clinic_name": clinic.name,
        # An empty serum from a clinic system means "not given", like None.
        "serum": treatment.serum or protocol.default_serum,
        "session_number": str(treatment.session_number),
        "sessions_planned": str(treatment.sessions_planned),
        "next_session_number": str(treatment.session_number + 1),
    }


def timing_problems(step: Step) -> list[str]:
    """List what is wrong with a step's timing form; empty when it is fine.

    A step uses exactly one form: `after` (with `every` and `count` for a
    series), or `days` with `at`.
    """
    uses_after = step.after is not None or step.every is not None or step.count != 1
    uses_days = bool(step.days or step.at)
    if uses_after and uses_days:
        problems = ["use either after (with every and count) or days with at, not both"]
    elif uses_after:
        problems = _after_problems(step)
    elif uses_days:
        problems = _days_problems(step)
    else:
        problems = ["no timing: set after (with every and count for a series), or days with at"]
    if step.expires_after is not None and step.expires_after <= timedelta(0):
        problems.append("expires_after must be positive")
    return problems


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


def _days_problems(step: Step) -> list[str]:
    problems = []
    if not step.days:
        problems.append("at needs days (local days after the treatment day)")
    elif min(step.days) < 0 or max(step.days) > MAX_DAY:
        problems.append(f"days must be from 0 to {MAX_DAY}")
    if not step.at:
        problems.append("days needs at (local clock times)")
    return problems
