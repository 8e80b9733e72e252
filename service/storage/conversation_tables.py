"""The conversation's tables (contract §10, §12): escalations of check-in replies, and numbers that
opted out of one kind of message at a clinic."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum
from typing import cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from service.storage.models import UTCDateTime


class EscalationState(StrEnum):
    """Where an escalation stands: open until a person acknowledges it."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"


class Escalation(SQLModel, table=True):
    """A reply that needs a person: its check-in, level and text, and who acknowledged it."""

    __table_args__ = (
        # ACK (the clinic's oldest open one) and the API's list (newest first).
        sa.Index("ix_escalation_clinic_state_opened", "clinic_id", "state", "opened_at", "id"),
        # The reminder job: open ones, oldest first, across clinics.
        sa.Index("ix_escalation_state_opened", "state", "opened_at"),
        # `ACK <code>`: a code names one open escalation of the clinic.
        sa.Index(
            "ux_escalation_open_code",
            "clinic_id",
            "code",
            unique=True,
            sqlite_where=sa.text("state = 'open'"),
            postgresql_where=sa.text("state = 'open'"),
        ),
    )

    id: str = Field(primary_key=True, max_length=32)
    clinic_id: str = Field(max_length=64)
    # The check-in; indexed so that deleting a message (retention) finds its escalations.
    message_id: str = Field(foreign_key="message.id", max_length=32, index=True)
    level: str = Field(max_length=16)
    reply: str = Field(sa_type=sa.Text)
    state: str = Field(default=EscalationState.OPEN, max_length=16)
    opened_at: datetime = Field(sa_type=UTCDateTime())
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    acknowledged_by: str | None = Field(default=None, max_length=100)
    reminded_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    code: str | None = Field(default=None, max_length=8)  # `ACK 4821` (none before 0008)


class KindOptOut(SQLModel, table=True):
    """A number that said `STOP <WORD>` to a clinic: no more messages of `kind` (the word's)."""

    __tablename__ = "kind_opt_out"

    clinic_id: str = Field(primary_key=True, max_length=64)
    phone: str = Field(primary_key=True, max_length=20)
    kind: str = Field(primary_key=True, max_length=16)
    word: str = Field(max_length=32)  # as configured, upper case: the reason names it
    at: datetime = Field(sa_type=UTCDateTime())


ESCALATION = cast(sa.Table, Escalation.__table__)  # type: ignore[attr-defined]
KIND_OPT_OUT = cast(sa.Table, KindOptOut.__table__)  # type: ignore[attr-defined]


def new_escalation_id() -> str:
    """An escalation id: `esc_` and 24 random hex digits."""
    return "esc_" + secrets.token_hex(12)
