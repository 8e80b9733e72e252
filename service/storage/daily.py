"""The daily limit where plans are stored (docs/day.md): a patient's scheduled messages at a
clinic read as plain values for `planning.day`, and the messages it skips cancelled.

Every path that writes or moves a plan calls it in the event's transaction: a new treatment
(`intake.new_treatments`), an appointment's prep and a rebook after a cancellation, and a plan
that moves (a new time zone, a correction, an appointment moved). It counts every scheduled
message of the patient at the clinic, whichever plan it belongs to, and what went out already
on those days (it cannot be taken back, so it counts and stays). A message the limit
cancelled stays cancelled even if room frees later: statuses only move forward.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from service.planning.day import Due, merged_into, over_limit
from service.storage import reasons, store
from service.storage.models import UNPLANNED, Message, Status, UTCDateTime
from service.storage.moves import Move, move_many
from service.storage.tables import MESSAGE

GONE = (Status.SENDING, Status.SENT, Status.DELIVERED)
"""Statuses of a text that went out (or is going): it counts on its day and stays."""

_COUNTED = (
    sa.select(
        MESSAGE.c.patient_id,
        MESSAGE.c.id,
        MESSAGE.c.kind,
        sa.type_coerce(sa.func.coalesce(MESSAGE.c.sent_at, MESSAGE.c.send_at), UTCDateTime()),
        MESSAGE.c.status,
    )
    .where(
        MESSAGE.c.patient_id.in_(sa.bindparam("patients", expanding=True)),
        MESSAGE.c.status.in_([Status.SCHEDULED, *GONE]),
        MESSAGE.c.send_at >= sa.bindparam("since"),
        MESSAGE.c.kind.not_in(UNPLANNED),
    )
    .order_by(MESSAGE.c.send_at, MESSAGE.c.id)
)


def scheduled_due(
    conn: sa.Connection, patient_ids: Iterable[int], *, now: datetime
) -> dict[int, list[Due[str]]]:
    """Each patient's messages the limit counts, as `Due`s, by time (a patient row is one
    clinic's): the scheduled ones, and those gone out since a day before `now` (`gone`)."""
    ids = sorted(set(patient_ids))
    due: dict[int, list[Due[str]]] = defaultdict(list)
    if not ids:
        return due
    found = conn.execute(_COUNTED, {"patients": ids, "since": now - timedelta(days=2)})
    for patient_id, message_id, kind, at, status in found:
        gone = status != Status.SCHEDULED
        due[patient_id].append(Due(message_id, kind, at, gone=gone))
    return due


def cancel(conn: sa.Connection, message_ids: Sequence[str], *, now: datetime, source: str) -> None:
    """Cancel still-scheduled messages for the daily limit (a Core connection's path)."""
    detail = f"{reasons.DAILY_LIMIT} ({source})"
    move_many(
        conn,
        [
            Move(
                i,
                Status.CANCELLED,
                detail,
                values={"reason": reasons.DAILY_LIMIT},
                allowed_from=(Status.SCHEDULED,),
            )
            for i in sorted(set(message_ids))
        ],
        now=now,
    )


def reapply(
    s: Session,
    patient_id: int,
    *,
    tz: ZoneInfo,
    limit: int | None,
    window: timedelta,
    now: datetime,
    source: str,
) -> list[str]:
    """Apply the limit to the patient's scheduled messages as they now stand; the ids it
    cancelled (a day within the limit is left as it is)."""
    if limit is None:
        return []
    due = scheduled_due(s.connection(), [patient_id], now=now).get(patient_id, [])
    skipped = over_limit(due, limit=limit, window=window, tz=tz)
    return [
        i
        for i in sorted(skipped)
        if store.move(
            s,
            i,
            to=Status.CANCELLED,
            now=now,
            allowed_from=[Status.SCHEDULED],
            detail=f"{reasons.DAILY_LIMIT} ({source})",
            values={"reason": reasons.DAILY_LIMIT},
        )
    ]


def merges(messages: Iterable[Message], window: timedelta) -> dict[str, str]:
    """Which of one plan's stored messages merge into which (`planning.day.merged_into`):
    the scheduled ones, in plan order."""
    due = [Due(m.id, m.kind, m.send_at) for m in messages if m.status == Status.SCHEDULED]
    return merged_into(due, window)
