"""Protocols and the plan they make for one treatment; pure.

A protocol is a list of steps; each step says when (a delay after the
treatment, a series, or local clock times on local days) and what (a
template per locale). `plan` turns a completed treatment into the messages
to send, in UTC, landed out of the patient's quiet hours by each step's rule
(`service.planning.quiet`). It takes no clock and does no I/O: the same inputs
always give the same plan. Prep steps are planned from an appointment instead
(`service.planning.prep`), into the same `PlannedMessage`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from service.planning.quiet import Landed, Landing, land
from service.planning.steps import Step, StepKind, timing_problems
from service.planning.templates import pick_text, render
from service.planning.timing import QuietHours, local_to_utc

__all__ = [
    "ClinicView",
    "Landed",
    "PlannedMessage",
    "Protocol",
    "Recipient",
    "Step",
    "StepKind",
    "Treatment",
    "message",
    "occurrences",
    "ordered",
    "plan",
    "render_values",
    "text_of",
    "timing_problems",
]


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
    send_at: datetime  # UTC, after quiet hours (the planned time when skipped or past)
    expires_at: datetime  # send_at + (step.expires_after or default_expires_after)
    locale: str
    body: str  # rendered text, without the opt-out footer
    moved: bool  # whether quiet hours moved it
    landed: Landed = "on time"  # where and why; "skipped" and "past" are never sent


def plan(
    protocol: Protocol,
    treatment: Treatment,
    recipient: Recipient,
    clinic: ClinicView,
    *,
    default_expires_after: timedelta,
) -> list[PlannedMessage]:
    """Plan every message of `protocol` for one treatment, ordered by send time.

    Steps of kind `prep` are left out: they are planned from an appointment
    (`service.planning.prep.plan_prep`). Each time in quiet hours lands by its
    step's `in_quiet_hours` rule, the anchor of "earlier" being `completed_at`.
    Ties keep the protocol's step order, then each step's own order. Raises
    ValueError for a step with an invalid timing form or template, and
    LookupError for a step without a text for the recipient or the clinic.
    """
    values = render_values(protocol, treatment, recipient, clinic)
    tz, quiet = recipient.timezone, clinic.quiet_hours
    planned = []
    for order, step in enumerate(protocol.steps):
        if not _applies(step, treatment):
            continue
        locale, body = text_of(step, recipient, clinic, values)
        expires_after = default_expires_after if step.expires_after is None else step.expires_after
        for seq, planned_at in enumerate(occurrences(step, treatment.completed_at, tz)):
            landing = land(
                planned_at, tz, quiet, step.in_quiet_hours, anchor=treatment.completed_at
            )
            expires_at = landing.send_at + expires_after
            planned.append(
                (order, message(step, seq, planned_at, landing, locale, body, expires_at))
            )
    return ordered(planned)


def ordered(planned: list[tuple[int, PlannedMessage]]) -> list[PlannedMessage]:
    """Messages by send time, ties by their step's place in the protocol, then by seq."""
    planned.sort(key=lambda item: (item[1].send_at, item[0], item[1].seq))
    return [m for _, m in planned]


def _applies(step: Step, treatment: Treatment) -> bool:
    if step.kind == "prep":
        return False
    if step.only_if == "more_sessions_planned":
        return treatment.session_number < treatment.sessions_planned
    return True


def text_of(
    step: Step, recipient: Recipient, clinic: ClinicView, values: Mapping[str, str]
) -> tuple[str, str]:
    """The locale and the rendered body of a step's messages for this recipient."""
    locale, template = pick_text(step.texts, recipient.locale, clinic.locale)
    return locale, render(template, values)


def message(
    step: Step,
    seq: int,
    planned_at: datetime,
    landing: Landing,
    locale: str,
    body: str,
    expires_at: datetime,
) -> PlannedMessage:
    """One occurrence of a step as a planned message, where `landing` put it."""
    return PlannedMessage(
        step=step.key,
        kind=step.kind,
        seq=seq,
        planned_at=planned_at,
        send_at=landing.send_at,
        expires_at=expires_at,
        locale=locale,
        body=body,
        moved=landing.send_at != planned_at,
        landed=landing.landed,
    )


def occurrences(step: Step, completed_at: datetime, tz: ZoneInfo) -> list[datetime]:
    """Return a step's planned instants (UTC, before quiet hours) in time order.

    Local days count from the treatment day in `tz`, the patient's zone. Times
    on day 0 that were already past when the treatment ended are left out.
    """
    problems = timing_problems(step)
    if problems:
        raise ValueError(f"step {step.key!r}: " + "; ".join(problems))
    if step.kind == "prep":
        raise ValueError(f"step {step.key!r}: a prep step is planned from an appointment")
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
