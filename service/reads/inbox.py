"""The console's inbox (contract §16) as a page renders it: what needs a person, newest first, and
a cheap version string that changes whenever the inbox does (for live updates).

An item's id is `<kind>:<row id>` (`escalation:esc_…`, `reply:42`, `message:msg_…`); the
actions (`conversations.inbox_actions`) take it back. A patient shows by first name, the last
four digits of the number and the clinic's patient id, never the whole number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from typing_extensions import TypedDict

from service.storage import inbox
from service.storage.inbox import ItemRow
from service.storage.transactions import Session

INBOX_LIMIT = 100


class InboxPatient(TypedDict):
    """Who an item is about: never the whole number."""

    patient_id: str | None  # the clinic's id; None for a text from an unknown number
    first_name: str | None
    last_four: str


class InboxItem(TypedDict):
    """One thing that needs a person. `level`, `text` and `code` are an escalation's or a
    reply's; `step`, `message_kind`, `status` and `error_code` a failed message's."""

    id: str
    kind: Literal["escalation", "reply", "message"]
    clinic_id: str
    at: datetime  # opened (escalation), received (reply), last changed (message); UTC
    open_seconds: float  # how long it has waited, at `now`
    patient: InboxPatient
    level: str | None  # ok, watch, urgent, free_text, or `outside` any check-in's window
    text: str | None
    code: str | None  # `ACK <code>` names the escalation
    step: str | None
    message_kind: str | None
    status: str | None  # failed or undelivered
    error_code: int | None


def last_four(phone: str | None) -> str:
    """The last four digits of a number ("" for none, or an erased one)."""
    digits = "".join(c for c in phone or "" if c.isdigit())
    return digits[-4:] if len(digits) > 4 else ""


def view(row: ItemRow, *, now: datetime) -> InboxItem:
    """An item as the inbox shows it at `now`."""
    patient: InboxPatient = {
        "patient_id": row.patient_id,
        "first_name": row.first_name,
        "last_four": last_four(row.phone),
    }
    return {
        "id": f"{row.kind}:{row.ref}",
        "kind": row.kind,  # type: ignore[typeddict-item]
        "clinic_id": row.clinic_id,
        "at": row.at,
        "open_seconds": max(0.0, (now - row.at).total_seconds()),
        "patient": patient,
        "level": row.level,
        "text": row.text,
        "code": row.code,
        "step": row.step,
        "message_kind": row.message_kind,
        "status": row.status,
        "error_code": row.error_code,
    }


def items(
    s: Session, clinic_ids: Collection[str], *, now: datetime, limit: int = INBOX_LIMIT
) -> list[InboxItem]:
    """The open items of the staff account's clinics, newest first, at most `limit`."""
    if not clinic_ids:
        return []
    rows = inbox.items(s.connection(), clinic_ids, limit=limit)
    return [view(row, now=now) for row in rows]


def inbox_version(s: Session, clinic_ids: Collection[str]) -> str:
    """A short string that changes whenever the clinics' inbox does (an item arrives or
    leaves): each source's open count and newest time, hashed. Three indexed aggregates; a
    page polls it every few seconds and reloads the list when it differs."""
    if not clinic_ids:
        return "empty"
    found = inbox.stats(s.connection(), clinic_ids)
    parts = [f"{k.value}={v.count}@{v.newest and v.newest.isoformat()}" for k, v in found.items()]
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:16]


def open_count(s: Session, clinic_ids: Collection[str]) -> int:
    """How many items the clinics' inbox holds (a badge)."""
    if not clinic_ids:
        return 0
    return sum(v.count for v in inbox.stats(s.connection(), clinic_ids).values())


@dataclass(frozen=True)
class InboxCounts:
    """The inbox across clinics, for /metrics: open items by kind, the oldest item's time,
    and each clinic's instant its oldest open escalation becomes overdue (twice its
    `escalation_reminder` after it opened)."""

    open: dict[str, int]
    oldest: datetime | None
    deadlines: list[datetime]


def counts(s: Session, reminders: Mapping[str, timedelta]) -> InboxCounts:
    """`InboxCounts` now; `reminders` is each clinic's `escalation_reminder`."""
    conn = s.connection()
    found = inbox.stats(conn, None)
    oldest = min((v.oldest for v in found.values() if v.oldest is not None), default=None)
    deadlines = [
        at + 2 * reminders[clinic_id]
        for clinic_id, at in inbox.oldest_escalations(conn).items()
        if clinic_id in reminders
    ]
    return InboxCounts({k.value: v.count for k, v in found.items()}, oldest, deadlines)
