"""A plan's messages as rows: one builder (`new_message`) for every path that stores a
plan (the batched intake, the one-by-one ingest, a re-plan after a correction), their first
history entries, and their inserts; and what a plan sees of a stored treatment and patient.

PostgreSQL takes them through SQLAlchemy Core (one executemany each). SQLite takes rows made
ahead of the write, each value already as SQLAlchemy would store it (its per-value processing
of an event's hundreds of parameters was a large share of ingest's CPU; docs/benchmarks.md),
many rows to a statement (`rows.insert_rows`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from service.planning import protocols
from service.planning.timing import zone
from service.storage import reasons
from service.storage.models import Patient, Status, Treatment, sqlite_text
from service.storage.moves import write_history
from service.storage.rows import insert_rows
from service.storage.tables import MESSAGE


@dataclass(slots=True)
class NewMessage:
    """A planned message about to be inserted, as plain values (no ORM object)."""

    id: str
    clinic_id: str
    treatment_id: int
    patient_id: int
    step: str
    kind: str
    seq: int
    phone: str
    locale: str
    body: str
    send_at: datetime
    expires_at: datetime
    status: Status
    reason: str | None
    updated_at: datetime

    def values(self) -> dict[str, Any]:
        """Its row: every column a new message sets (`due_at` starts at `send_at`)."""
        return {
            "id": self.id,
            "clinic_id": self.clinic_id,
            "treatment_id": self.treatment_id,
            "patient_id": self.patient_id,
            "step": self.step,
            "kind": self.kind,
            "seq": self.seq,
            "phone": self.phone,
            "locale": self.locale,
            "body": self.body,
            "send_at": self.send_at,
            "due_at": self.send_at,
            "expires_at": self.expires_at,
            "status": self.status,
            "reason": self.reason,
            "attempts": 0,
            "footer": False,
            "updated_at": self.updated_at,
        }


def new_message(
    planned: protocols.PlannedMessage,
    *,
    clinic_id: str,
    treatment_id: int,
    patient_id: int,
    phone: str,
    reason: str | None,
    now: datetime,
    message_id: str | None = None,
) -> NewMessage:
    """One planned message as a new row: scheduled, suppressed (`reason`), cancelled (its
    step skips quiet hours), or expired (too late, or a prep time already past)."""
    status, why = Status.SCHEDULED, reason
    if reason is not None:
        status = Status.SUPPRESSED
    elif planned.landed == "skipped":
        status, why = Status.CANCELLED, reasons.QUIET_HOURS
    elif planned.landed == "past" or planned.expires_at <= now:
        status, why = Status.EXPIRED, reasons.TOO_LATE_ON_ARRIVAL
    return NewMessage(
        message_id or new_message_ids(now, 1)[0],
        clinic_id,
        treatment_id,
        patient_id,
        planned.step,
        planned.kind,
        planned.seq,
        phone,
        planned.locale,
        planned.body,
        planned.send_at,
        planned.expires_at,
        status,
        why,
        now,
    )


def new_message_ids(now: datetime, count: int) -> list[str]:
    """`count` message ids that sort by creation time: their index grows at one end, so
    inserting a plan touches a few pages instead of one per message (`msg_`, then 12 hex
    digits of milliseconds and 12 random ones, drawn in one call for the lot)."""
    stamp = f"msg_{int(now.timestamp() * 1000) & 0xFFFF_FFFF_FFFF:012x}"
    random = secrets.token_hex(6 * count)
    return [stamp + random[12 * i : 12 * i + 12] for i in range(count)]


Plan = dict[tuple[str, int], protocols.PlannedMessage]  # by (step, seq): its occurrence


def treatment_for_plan(treatment: Treatment) -> protocols.Treatment:
    """The stored treatment as a plan sees it."""
    return protocols.Treatment(
        completed_at=treatment.completed_at,
        session_number=treatment.session_number,
        sessions_planned=treatment.sessions_planned,
        serum=treatment.serum,
    )


def recipient(patient: Patient) -> protocols.Recipient:
    """The stored patient as a plan sees them."""
    return protocols.Recipient(
        first_name=patient.first_name, timezone=zone(patient.timezone), locale=patient.locale
    )


def by_occurrence(planned: Sequence[protocols.PlannedMessage]) -> Plan:
    """A plan's messages by occurrence (step, seq), as stored messages are matched to it."""
    return {(p.step, p.seq): p for p in planned}


Row = tuple[Any, ...]
_MESSAGE_COLUMNS = (
    "id",
    "clinic_id",
    "step",
    "kind",
    "seq",
    "phone",
    "locale",
    "body",
    "send_at",
    "due_at",
    "expires_at",
    "status",
    "reason",
    "attempts",
    "footer",
    "updated_at",
    "treatment_id",
    "patient_id",
)  # the ids last: they are added to rows made before they existed
_INSERT_MESSAGE = sa.insert(MESSAGE)


def sqlite_rows(messages: Sequence[NewMessage]) -> list[Row]:
    """Messages as SQLite rows (without treatment and patient ids), ready for `insert`."""
    rows = []
    stamped, now = None, None  # a plan's messages share one `updated_at`
    for m in messages:
        if m.updated_at is not stamped:
            stamped, now = m.updated_at, sqlite_text(m.updated_at)
        send_at = sqlite_text(m.send_at)
        rows.append(
            (
                m.id,
                m.clinic_id,
                m.step,
                m.kind,
                m.seq,
                m.phone,
                m.locale,
                m.body,
                send_at,
                send_at,
                sqlite_text(m.expires_at),
                m.status.value,
                m.reason,
                0,
                0,
                now,
            )
        )
    return rows


def made_ahead(messages: Sequence[NewMessage], *, dialect: str) -> tuple[Row, ...]:
    """The rows `insert` takes as `made` for these messages, made ahead of the write where
    the database takes them so (SQLite: `sqlite_rows`); none elsewhere (Core binds them)."""
    return tuple(sqlite_rows(messages)) if dialect == "sqlite" else ()


def insert(
    conn: sa.Connection,
    plans: Sequence[tuple[Sequence[NewMessage], Row]],
    *,
    made: Sequence[Sequence[Row]] | None = None,
) -> None:
    """Insert plans, each as (its messages, its (treatment id, patient id)), with their first
    history entries. On SQLite the rows go in as `sqlite_rows` makes them (`made`: made ahead
    of the write by `made_ahead`, one list a plan), many to a statement; elsewhere through
    SQLAlchemy Core (`made` unused)."""
    if not any(messages for messages, _ in plans):
        return
    for messages, (treatment_id, patient_id) in plans:
        for m in messages:
            m.treatment_id, m.patient_id = treatment_id, patient_id
    if conn.dialect.name == "sqlite":
        made = made if made is not None else [sqlite_rows(messages) for messages, _ in plans]
        insert_rows(
            conn,
            MESSAGE.name,
            _MESSAGE_COLUMNS,
            [row + ids for rows, (_, ids) in zip(made, plans, strict=True) for row in rows],
        )
    else:
        conn.execute(_INSERT_MESSAGE, [m.values() for messages, _ in plans for m in messages])
    write_history(
        conn,
        [(m.id, m.updated_at, m.status, m.reason, None) for messages, _ in plans for m in messages],
    )
