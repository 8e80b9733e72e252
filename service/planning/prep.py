"""The prep steps of a protocol planned for one appointment (contract §13); pure.

A step of kind `prep` is timed from the appointment's `starts_at`: `before = D` is one message
at `starts_at - D` (real time, across DST); `days_before = [3, 1]` with `at = [...]` is one
message at each local clock time on each of those local days before the appointment's local
day in the patient's zone (0 is the appointment's own day, at times before it starts).

`plan_prep` is what appointment events call; it returns the same `PlannedMessage` as a
treatment's plan, so the same row builder stores both (`storage.message_rows.new_message`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from service.planning.protocols import (
    ClinicView,
    PlannedMessage,
    Protocol,
    Recipient,
    message,
    ordered,
    text_of,
)
from service.planning.quiet import Landing, land
from service.planning.steps import Step, timing_problems
from service.planning.timing import local_to_utc

__all__ = ["Appointment", "plan_prep", "prep_occurrences", "prep_values"]


@dataclass(frozen=True)
class Appointment:
    """What the prep plan needs to know about a booked appointment, already validated."""

    starts_at: datetime  # aware
    session_number: int = 1  # the session the appointment is for
    sessions_planned: int = 1
    serum: str | None = None  # None: the protocol's default_serum


def plan_prep(
    protocol: Protocol,
    appointment: Appointment,
    recipient: Recipient,
    clinic: ClinicView,
    *,
    now: datetime,
    default_expires_after: timedelta,
) -> list[PlannedMessage]:
    """Plan the `prep` steps of `protocol` for one appointment, ordered by send time.

    Times are in the recipient's zone with the clinic's quiet hours, each step landing by
    its `in_quiet_hours` rule with `now` as the anchor of "earlier" (a prep message may go
    out earlier, never in the past). Every occurrence is in the answer, and `landed` says
    which are not to be sent: "past" for a time already gone by at `now` (never sent late),
    "skipped" for one its rule skips, or that quiet hours would push to or past `starts_at`
    (a prep note after the session helps no one). A message expires at `starts_at` at the
    latest. `{session_number}` and `{next_session_number}` are both the appointment's
    session (`prep_values`). Other steps are left out; errors as `protocols.plan`.
    """
    if appointment.starts_at.utcoffset() is None or now.utcoffset() is None:
        raise ValueError("starts_at and now must be timezone-aware")
    values = prep_values(protocol, appointment, recipient, clinic)
    starts_at, tz = appointment.starts_at.astimezone(UTC), recipient.timezone
    planned = []
    for order, step in enumerate(protocol.steps):
        if step.kind != "prep":
            continue
        locale, body = text_of(step, recipient, clinic, values)
        expires_after = default_expires_after if step.expires_after is None else step.expires_after
        for seq, planned_at in enumerate(prep_occurrences(step, starts_at, tz)):
            landing = _landing(step, planned_at, starts_at, tz, clinic, now=now)
            expires_at = min(landing.send_at + expires_after, starts_at)
            planned.append(
                (order, message(step, seq, planned_at, landing, locale, body, expires_at))
            )
    return ordered(planned)


def _landing(
    step: Step,
    planned_at: datetime,
    starts_at: datetime,
    tz: ZoneInfo,
    clinic: ClinicView,
    *,
    now: datetime,
) -> Landing:
    if planned_at < now:
        return Landing(planned_at, "past")
    landing = land(planned_at, tz, clinic.quiet_hours, step.in_quiet_hours, anchor=now)
    if landing.send_at >= starts_at:
        return Landing(planned_at, "skipped")
    return landing


def prep_occurrences(step: Step, starts_at: datetime, tz: ZoneInfo) -> list[datetime]:
    """Return a prep step's planned instants (UTC, before quiet hours) in time order.

    Local days count back from the appointment's day in `tz`, the patient's zone; times on
    that day at or after `starts_at` are left out (they are not before the appointment).
    """
    problems = timing_problems(step)
    if step.kind != "prep":
        problems.append('not a step of kind "prep"')
    if problems:
        raise ValueError(f"step {step.key!r}: " + "; ".join(problems))
    starts_at = starts_at.astimezone(UTC)
    if step.before is not None:
        return [starts_at - step.before]
    day = starts_at.astimezone(tz).date()
    instants = sorted(
        local_to_utc(day - timedelta(days=n), clock, tz)
        for n in step.days_before
        for clock in step.at
    )
    return [instant for instant in instants if instant < starts_at]


def prep_values(
    protocol: Protocol, appointment: Appointment, recipient: Recipient, clinic: ClinicView
) -> dict[str, str]:
    """The value of every placeholder for one appointment's prep messages.

    A prep message is about the coming session, so `{session_number}` and
    `{next_session_number}` are both the appointment's `session_number`.
    """
    return {
        "first_name": recipient.first_name,
        "clinic_name": clinic.name,
        "serum": appointment.serum or protocol.default_serum,
        "session_number": str(appointment.session_number),
        "sessions_planned": str(appointment.sessions_planned),
        "next_session_number": str(appointment.session_number),
    }
