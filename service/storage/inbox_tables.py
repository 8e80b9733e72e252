"""The console inbox's own table (contract §16): items a person marked done, by whom and when.

An item is a row of another table (an open escalation, a reply that needs a person, a message
that failed); marking it done adds a row here, which takes it out of the inbox. The key is the
item's kind and its row's id, so marking it done twice keeps the first mark.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from service.storage.models import UTCDateTime


class ItemKind(StrEnum):
    """Where an inbox item comes from."""

    ESCALATION = "escalation"
    REPLY = "reply"
    MESSAGE = "message"  # a message `failed` or `undelivered`


class InboxDone(SQLModel, table=True):
    """An inbox item marked done."""

    __tablename__ = "inbox_done"
    __table_args__ = (sa.Index("ix_inbox_done_clinic_at", "clinic_id", "done_at"),)

    kind: str = Field(primary_key=True, max_length=16)
    ref: str = Field(primary_key=True, max_length=32)  # the escalation, inbound or message id
    clinic_id: str = Field(max_length=64)
    done_at: datetime = Field(sa_type=UTCDateTime())
    done_by: str = Field(max_length=255)  # the staff account's email


INBOX_DONE = cast(sa.Table, InboxDone.__table__)  # type: ignore[attr-defined]
