"""`aftercare preview`'s table: a protocol's plan for an example patient; pure.

It takes plain values (the protocol, the clinic as a plan sees it, how texts go out) and
returns text; `service.previews` reads them from the settings. With an appointment it shows
the prep messages of an appointment booked at `now`, else the plan of a completed treatment.
Its `landed` column says where each message landed and why: on time, moved by quiet hours
(deferred to their end, or earlier), skipped, or past; merged rows point at the text they go
in, and the last line is the plan's total of texts and segments (docs/day.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from service.planning import day, prep, protocols
from service.planning.day import DAILY_LIMIT_REASON
from service.planning.gsm7 import prefer_gsm7
from service.planning.templates import segments

NOT_SENT = ("skipped", "past")


@dataclass(frozen=True)
class Texting:
    """How the texts go out, as the table counts them: the footer on the first, the merge
    window, the daily limit, and whether typographic punctuation goes out as GSM-7."""

    footer: str
    merge_window: timedelta = timedelta(0)
    max_per_day: int | None = None
    prefer_gsm7: bool = True


@dataclass(frozen=True)
class Example:
    """Whose plan and when: the example patient's zone, the session of the series, and the
    treatment's completion (or, with `appointment_at`, the appointment booked at `now`)."""

    tz: ZoneInfo
    session: int
    sessions: int
    completed_at: datetime
    now: datetime
    appointment_at: datetime | None = None


def table(
    steps: protocols.Protocol,
    view: protocols.ClinicView,
    example: Example,
    texting: Texting,
    *,
    default_expires_after: timedelta,
) -> str:
    """The plan of `steps` for an example patient named Ana, one row a message, and the
    total."""
    recipient = protocols.Recipient(first_name="Ana", timezone=example.tz, locale=view.locale)
    expires = default_expires_after
    if example.appointment_at is not None:
        appointment = prep.Appointment(example.appointment_at, example.session, example.sessions)
        planned = prep.plan_prep(
            steps, appointment, recipient, view, now=example.now, default_expires_after=expires
        )
    else:
        treatment = protocols.Treatment(example.completed_at, example.session, example.sessions)
        planned = protocols.plan(steps, treatment, recipient, view, default_expires_after=expires)
    rows, total = _rows(planned, steps, example.tz, texting)
    return _table(rows) + "\n\n" + total


def _rows(
    planned: Sequence[protocols.PlannedMessage],
    protocol: protocols.Protocol,
    tz: ZoneInfo,
    sms: Texting,
) -> tuple[list[tuple[str, ...]], str]:
    """The header, then one row a message (the footer on the first text sent, as it would
    be); and the total line. Rows merged into one text point at the row it goes as (its
    first), which shows the merged text's segments; the daily limit's skips are not sent."""
    rows: list[tuple[str, ...]] = [
        ("#", "local time", "UTC", "step", "kind", "segments", "landed", "text")
    ]
    rules = {s.key: s.in_quiet_hours for s in protocol.steps}
    footer = sms.footer
    sent = [
        day.Due(i, p.kind, p.send_at) for i, p in enumerate(planned) if p.landed not in NOT_SENT
    ]
    limited = day.over_limit(sent, limit=sms.max_per_day, window=sms.merge_window, tz=tz)
    groups = day.merge_groups([d for d in sent if d.id not in limited], sms.merge_window)
    head = {m.id: g[0].id for g in groups for m in g}
    texts: dict[int, str] = {}
    for n, group in enumerate(groups):
        text = "\n\n".join(planned[m.id].body for m in group)
        text = f"{text}\n{footer}" if n == 0 and footer else text
        texts[group[0].id] = prefer_gsm7(text) if sms.prefer_gsm7 else text
    for i, p in enumerate(planned):
        first = head.get(i)
        where = landed(p, tz, skips=rules.get(p.step) == "skip")
        if i in limited:
            where = f"skipped: {DAILY_LIMIT_REASON} (not sent)"
        if first is not None and first != i:
            cost, where = f"in #{first + 1}", f"{where}, merged into #{first + 1}"
        else:
            cost = _cost(texts.get(i) or p.body)
        body = f"{p.body}\n{footer}" if footer and groups and i == groups[0][0].id else p.body
        rows.append(
            (
                str(i + 1),
                p.send_at.astimezone(tz).strftime("%a %Y-%m-%d %H:%M %Z"),
                p.send_at.strftime("%Y-%m-%d %H:%M"),
                p.step,
                p.kind,
                cost,
                where,
                body.replace("\n", " / "),
            )
        )
    total = sum(segments(t).count for t in texts.values())
    return rows, f"total: {len(texts)} texts, {total} segments"


def _cost(text: str) -> str:
    seg = segments(text)
    return f"{seg.count} {seg.encoding}"


def landed(message: protocols.PlannedMessage, tz: tzinfo, *, skips: bool) -> str:
    """Where a message landed and why, in a few words (`skips`: its step's rule is "skip")."""
    planned = message.planned_at.astimezone(tz)
    when = planned.strftime("%H:%M")
    if planned.date() != message.send_at.astimezone(tz).date():
        when = planned.strftime("%a %H:%M")
    if message.landed == "deferred":
        return f"deferred: {when} is in quiet hours"
    if message.landed == "earlier":
        return f"earlier: {when} is in quiet hours"
    if message.landed == "skipped" and skips:
        return f"skipped: {when} is in quiet hours (not sent)"
    if message.landed == "skipped":
        return f"skipped: {when} is in quiet hours, after them is too late (not sent)"
    if message.landed == "past":
        return "past: its time had gone by (not sent)"
    return "on time"


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows
    ]
    return "\n".join(lines)
