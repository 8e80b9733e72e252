"""The one-time tokens of the console's `Send` form (contract §16): a double submit sends once.

Each rendering of a patient page's form carries a fresh random token; the staff text it sends
is filed in the same transaction as a row keyed by that token. A second POST of the same form
(a double click, a reload of the POST, a retry over a bad connection) finds the row and is
answered as the first was, sending nothing; two submits racing each other both try to insert
the row, and the loser's whole transaction (its message included) rolls back on the key.
Rows live a day: long enough for any repeat, short enough to hold little.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError as IntegrityError  # what `record` raises on a twin
from sqlmodel import Field, SQLModel

from service.storage.models import UTCDateTime

KEPT_FOR = timedelta(days=1)


class StaffTextRequest(SQLModel, table=True):
    """A `Send` form used: the staff text it filed and what the page said about it."""

    __tablename__ = "staff_text_request"
    __table_args__ = (sa.Index("ix_staff_text_request_created", "created_at"),)

    token: str = Field(primary_key=True, max_length=64)
    clinic_id: str = Field(max_length=64)
    patient_id: str = Field(max_length=128)  # the clinic's id, as the audit names it
    message_id: str = Field(max_length=32)
    send_at: datetime = Field(sa_type=UTCDateTime())
    held: bool  # quiet hours hold it until `send_at`
    created_at: datetime = Field(sa_type=UTCDateTime())


STAFF_TEXT_REQUEST = cast(sa.Table, StaffTextRequest.__table__)  # type: ignore[attr-defined]
R = STAFF_TEXT_REQUEST.c


def find(conn: sa.Connection, token: str) -> Any | None:
    """The row of a used token, if any."""
    return conn.execute(sa.select(STAFF_TEXT_REQUEST).where(R.token == token)).first()


def record(
    conn: sa.Connection,
    *,
    token: str,
    clinic_id: str,
    patient_id: str,
    message_id: str,
    send_at: datetime,
    held: bool,
    now: datetime,
) -> None:
    """Mark `token` used by the staff text `message_id` (raises IntegrityError if it was
    already), and forget the tokens older than KEPT_FOR."""
    conn.execute(STAFF_TEXT_REQUEST.delete().where(R.created_at < now - KEPT_FOR))
    row = {"token": token, "clinic_id": clinic_id, "patient_id": patient_id}
    conn.execute(
        STAFF_TEXT_REQUEST.insert(),
        {**row, "message_id": message_id, "send_at": send_at, "held": held, "created_at": now},
    )
