"""SQLModel tables, and the message status machine of `planning.lifecycle` (re-exported).

Every time is an aware UTC datetime. Status changes only move forward (`can_move`), and each
move is appended to `MessageHistory`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from service.planning.lifecycle import ALERT as ALERT
from service.planning.lifecycle import STAFF as STAFF
from service.planning.lifecycle import UNPLANNED as UNPLANNED
from service.planning.lifecycle import Status as Status
from service.planning.lifecycle import can_move as can_move


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every dialect (SQLite keeps no zone of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: Aftercare stores aware UTC datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)

    # SQLite stores text: one C call each way instead of SQLAlchemy's chain of a conversion,
    # a %-format and a regular expression (a planned message binds five datetimes). The text
    # is the very format SQLAlchemy's SQLite DATETIME writes, so stored rows compare as before.
    def bind_processor(self, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return sqlite_text

    def result_processor(self, dialect: sa.Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        return _sqlite_datetime


def sqlite_text(value: datetime | None) -> str | None:
    """`2026-11-25 15:00:00.000000`: the UTC time as SQLAlchemy's SQLite DATETIME stores it."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime: Aftercare stores aware UTC datetimes only")
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _sqlite_datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _tz() -> UTCDateTime:
    return UTCDateTime()


class Event(SQLModel, table=True):
    """A clinic event, kept for idempotency: the same webhook id answers the same again."""

    __table_args__ = (
        sa.UniqueConstraint("clinic_id", "webhook_id"),
        # An erasure finds the stored answers about its patient (contract §19).
        sa.Index("ix_event_clinic_patient", "clinic_id", "patient_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    clinic_id: str = Field(max_length=64)
    webhook_id: str = Field(max_length=255)
    body_sha256: str = Field(max_length=64)
    type: str = Field(max_length=64)
    status_code: int
    response: str = Field(sa_type=sa.Text)
    received_at: datetime = Field(sa_type=_tz(), index=True)  # retention prunes by age
    # The clinic's id of the patient the event concerned (every answer names one).
    patient_id: str | None = Field(default=None, max_length=128)


class Patient(SQLModel, table=True):
    """A clinic's patient as last reported by the clinic's system."""

    __table_args__ = (sa.UniqueConstraint("clinic_id", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    clinic_id: str = Field(max_length=64)
    external_id: str = Field(max_length=128)
    first_name: str = Field(max_length=100)
    phone: str = Field(max_length=20)
    timezone: str = Field(max_length=64)
    locale: str | None = Field(default=None, max_length=16)
    sms_consent: bool
    updated_at: datetime = Field(sa_type=_tz(), index=True)  # retention prunes by age
    # Set by an erasure (contract §19), with what it erased (JSON counts): a second erase of a
    # patient nothing new was reported of answers the same.
    erased_at: datetime | None = Field(default=None, sa_type=_tz())
    erasure: str | None = Field(default=None, sa_type=sa.Text)


class Treatment(SQLModel, table=True):
    """A completed treatment and the protocol its plan came from."""

    __table_args__ = (sa.UniqueConstraint("clinic_id", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    clinic_id: str = Field(max_length=64)
    external_id: str = Field(max_length=128)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    protocol: str = Field(max_length=64)
    completed_at: datetime = Field(sa_type=_tz())
    session_number: int
    sessions_planned: int
    serum: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=_tz(), index=True)  # retention prunes by age
    cancelled_at: datetime | None = Field(default=None, sa_type=_tz())


class Message(SQLModel, table=True):
    """One planned SMS. `due_at` is when to try next (send_at, or a retry); `send_at` stays."""

    __table_args__ = (
        sa.UniqueConstraint("treatment_id", "step", "seq"),
        sa.Index("ix_message_status_due", "status", "due_at"),
        sa.Index("ix_message_clinic_phone", "clinic_id", "phone"),
        # The read API's lists: a clinic's messages newest first, paged by (send_at, id).
        sa.Index("ix_message_clinic_send", "clinic_id", "send_at", "id"),
        # A merged text's parts, found from its lead (docs/merging.md).
        sa.Index("ix_message_merged_into", "merged_into"),
    )

    id: str = Field(primary_key=True, max_length=32)
    clinic_id: str = Field(max_length=64)
    treatment_id: int = Field(foreign_key="treatment.id")  # the unique index serves it
    patient_id: int = Field(foreign_key="patient.id", index=True)
    step: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    seq: int
    phone: str = Field(max_length=20)
    locale: str = Field(max_length=16)
    body: str = Field(sa_type=sa.Text)
    send_at: datetime = Field(sa_type=_tz())
    due_at: datetime = Field(sa_type=_tz())
    expires_at: datetime = Field(sa_type=_tz())
    status: str = Field(max_length=16)
    reason: str | None = Field(default=None, max_length=255)
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = Field(default=None, sa_type=_tz())
    lease_until: datetime | None = Field(default=None, sa_type=_tz())
    provider_id: str | None = Field(default=None, max_length=64, index=True)
    error_code: int | None = None
    sent_at: datetime | None = Field(default=None, sa_type=_tz())
    footer: bool = False
    encoding: str | None = Field(default=None, max_length=8)  # as sent, footer included
    segments: int | None = None  # as sent, footer included; None until sent
    # The lead message this one went out inside, as one text (docs/merging.md); None: its own.
    merged_into: str | None = Field(default=None, max_length=32)
    updated_at: datetime = Field(sa_type=_tz())


class MessageHistory(SQLModel, table=True):
    """One status change of a message, appended and never rewritten."""

    __tablename__ = "message_history"

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(foreign_key="message.id", index=True, max_length=32)
    at: datetime = Field(sa_type=_tz())
    status: str = Field(max_length=16)
    detail: str | None = Field(default=None, max_length=255)
    error_code: int | None = None


class OptOut(SQLModel, table=True):
    """A number that said STOP to a clinic (or 21610 from Twilio); removed by START."""

    __tablename__ = "opt_out"

    clinic_id: str = Field(primary_key=True, max_length=64)
    phone: str = Field(primary_key=True, max_length=20)
    at: datetime = Field(sa_type=_tz())
    source: str = Field(max_length=32)


class Inbound(SQLModel, table=True):
    """A patient's reply, recorded for the history; kept once per Twilio `MessageSid`, with
    the answer it got, so that Twilio's retry is answered the same and changes nothing."""

    __table_args__ = (
        sa.Index("ux_inbound_provider_id", "provider_id", unique=True),
        # The inbox's replies: a clinic's texts of a level that needs a person, newest first.
        sa.Index("ix_inbound_clinic_level", "clinic_id", "level", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    clinic_id: str | None = Field(default=None, max_length=64, index=True)
    provider_id: str | None = Field(default=None, max_length=64)
    phone: str = Field(max_length=20, index=True)  # the number, without a channel's prefix
    channel: str | None = Field(default=None, max_length=16)  # "whatsapp" of whatsapp:+1…
    body: str = Field(sa_type=sa.Text)
    keyword: str | None = Field(default=None, max_length=16)
    received_at: datetime = Field(sa_type=_tz(), index=True)  # retention prunes by age
    answer: str | None = Field(default=None, sa_type=sa.Text)  # the TwiML's text, if any
    # What the text came to when it was no keyword (the console's inbox, contract §16): its
    # triage level in a check-in's window, or "outside" any window; the message it answered
    # (the check-in, else the last one sent) and that message's patient. No foreign keys:
    # retention and erasure delete messages and patients on their own schedules.
    level: str | None = Field(default=None, max_length=16)
    message_id: str | None = Field(default=None, max_length=32)
    patient_id: int | None = Field(default=None)


class ProviderStatus(SQLModel, table=True):
    """A status callback as Twilio sent it, kept even when it arrives before its message's sid
    is known (a fast carrier can beat the create answer); applied once the sid is recorded."""

    __tablename__ = "provider_status"

    id: int | None = Field(default=None, primary_key=True)
    provider_id: str = Field(max_length=64, index=True)
    status: str = Field(max_length=16)
    error_code: int | None = None
    received_at: datetime = Field(sa_type=_tz())


def row_id(value: int | None) -> int:
    """The primary key of a row that has been flushed."""
    assert value is not None, "row was flushed"
    return value
