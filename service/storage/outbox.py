"""The outbox of notifications to clinic systems (contract §11, design invariant 9).

A notification is a row written by `record` in the transaction of the change it reports: a
crash loses none, a change that rolls back sends none. Its body is frozen when it is written,
so every attempt posts the same bytes under the same `webhook-id` (the row's id). The
deliverer (service.notifications) claims due rows like sends and appends each attempt.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from service.config import Settings
from service.storage.models import UTCDateTime


class NotificationState(StrEnum):
    """Where a notification stands (contract §11)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Notification(SQLModel, table=True):
    """One notification to a clinic system, with its delivery state and claim."""

    __table_args__ = (
        # The deliverer's claim: pending rows by due time.
        sa.Index("ix_notification_state_due_at", "state", "due_at"),
        # The API's lists, newest first by (created_at, id), of every state or of one.
        sa.Index("ix_notification_clinic_created", "clinic_id", "created_at", "id"),
        sa.Index("ix_notification_clinic_state_created", "clinic_id", "state", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=32)  # the `webhook-id` of every attempt
    clinic_id: str = Field(max_length=64)
    type: str = Field(max_length=32)
    body: str = Field(sa_type=sa.Text)  # the JSON posted, frozen at `record`
    state: str = Field(default=NotificationState.PENDING, max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime())
    due_at: datetime = Field(sa_type=UTCDateTime())  # the next attempt's time, or a lease's end
    give_up_at: datetime = Field(sa_type=UTCDateTime())  # no retry after this: failed
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime())
    outcome: str | None = Field(default=None, max_length=16)  # delivered, gave_up, no_endpoint
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_error: str | None = Field(default=None, max_length=255)


class NotificationAttempt(SQLModel, table=True):
    """One POST of a notification: when, and the HTTP status or the error."""

    __tablename__ = "notification_attempt"

    id: int | None = Field(default=None, primary_key=True)
    notification_id: str = Field(foreign_key="notification.id", index=True, max_length=32)
    at: datetime = Field(sa_type=UTCDateTime())
    http_status: int | None = None
    error: str | None = Field(default=None, max_length=255)


NOTIFICATION = cast(sa.Table, Notification.__table__)  # type: ignore[attr-defined]
ATTEMPT = cast(sa.Table, NotificationAttempt.__table__)  # type: ignore[attr-defined]


def new_id() -> str:
    """A notification id: `ntf_` and 24 random hex digits."""
    return "ntf_" + secrets.token_hex(12)


def body(type_: str, data: dict[str, Any], *, at: datetime) -> str:
    """The JSON a notification posts: `{"type", "timestamp", "data"}` (contract §11)."""
    stamp = at.isoformat(timespec="seconds").replace("+00:00", "Z")
    return json.dumps({"type": type_, "timestamp": stamp, "data": data}, separators=(",", ":"))


class Notice(NamedTuple):
    """A notification to write: for whom, of what type, saying what."""

    clinic_id: str
    type_: str
    data: dict[str, Any]


def record(
    conn: sa.Connection,
    settings: Settings,
    *,
    clinic_id: str,
    type_: str,
    data: dict[str, Any],
    now: datetime,
) -> str | None:
    """Write a notification of `type_` for `clinic_id`, due now, in the transaction `conn` is
    in; its id, or None when the clinic has no endpoint or did not ask for this type.

    Called inside a store function, on its session's `s.connection()` (`transactions`)."""
    ids = record_all(conn, settings, [Notice(clinic_id, type_, data)], now=now)
    return ids[0] if ids else None


def record_all(
    conn: sa.Connection, settings: Settings, notices: Sequence[Notice], *, now: datetime
) -> list[str]:
    """`record` for many, in one statement: the ids of those the clinics asked for."""
    rows: list[dict[str, Any]] = []
    give_up_at = now + settings.notifications.give_up_after
    for notice in notices:
        target = settings.clinics[notice.clinic_id].notifications
        if target is None or not target.wants(notice.type_):
            continue
        rows.append(
            {
                "id": new_id(),
                "clinic_id": notice.clinic_id,
                "type": notice.type_,
                "body": body(notice.type_, notice.data, at=now),
                "state": NotificationState.PENDING,
                "created_at": now,
                "due_at": now,
                "give_up_at": give_up_at,
                "attempts": 0,
            }
        )
    if rows:
        conn.execute(NOTIFICATION.insert(), rows)
    return [row["id"] for row in rows]
