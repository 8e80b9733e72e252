"""The outbox of notifications to clinic systems (SPEC §11, DESIGN invariant 9).

A notification is a row written by `record` in the transaction of the change it reports: a
crash loses none, a change that rolls back sends none. Its body is frozen when it is written,
so every attempt posts the same bytes under the same `webhook-id` (the row's id). The
deliverer (service.notifications) claims due rows like sends and appends each attempt.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from service.config import Settings
from service.storage.models import UTCDateTime


class NotificationState(StrEnum):
    """Where a notification stands (SPEC §11)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Notification(SQLModel, table=True):
    """One notification to a clinic system, with its delivery state and claim."""

    __table_args__ = (sa.Index("ix_notification_state_due_at", "state", "due_at"),)

    id: str = Field(primary_key=True, max_length=32)  # the `webhook-id` of every attempt
    clinic_id: str = Field(max_length=64, index=True)
    type: str = Field(max_length=32)
    body: str = Field(sa_type=sa.Text)  # the JSON posted, frozen at `record`
    state: str = Field(default=NotificationState.PENDING, max_length=16)
    created_at: datetime = Field(sa_type=UTCDateTime())
    due_at: datetime = Field(sa_type=UTCDateTime())  # the next attempt's time
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime())
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
    """The JSON a notification posts: `{"type", "timestamp", "data"}` (SPEC §11)."""
    stamp = at.isoformat(timespec="seconds").replace("+00:00", "Z")
    return json.dumps({"type": type_, "timestamp": stamp, "data": data}, separators=(",", ":"))


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
    target = settings.clinics[clinic_id].notifications
    if target is None or not target.wants(type_):
        return None
    nid = new_id()
    conn.execute(
        NOTIFICATION.insert().values(
            id=nid,
            clinic_id=clinic_id,
            type=type_,
            body=body(type_, data, at=now),
            state=NotificationState.PENDING,
            created_at=now,
            due_at=now,
            attempts=0,
        )
    )
    return nid
