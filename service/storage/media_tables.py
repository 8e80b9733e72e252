"""Patients' photos (contract §17): one `media` row per item of an inbound MMS.

A row is written with the reply, `pending` (or `refused`: a type not kept, a URL off Twilio's
API host), claimed by the downloader like a send (`due_at`, `claimed_by`, `lease_until`), and
ends `stored` (its cleaned bytes in `data`), `refused` (too large, not an image) or `failed`
(retries spent, a redirect off `twilio.media_hosts`). `data` is the database `MediaStore`'s;
an object store would keep a key there instead (docs/photos.md). No foreign keys: retention
and erasure delete replies, patients and photos on their own schedules.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from service.storage.models import UTCDateTime


class MediaState(StrEnum):
    """Where a photo stands."""

    PENDING = "pending"
    STORED = "stored"
    REFUSED = "refused"
    FAILED = "failed"


class Media(SQLModel, table=True):
    """One photo (or other item) of an inbound MMS."""

    __table_args__ = (
        sa.Index("ix_media_state_due", "state", "due_at"),  # the downloader's claim
        sa.Index("ix_media_received", "received_at"),  # retention
    )

    id: str = Field(primary_key=True, max_length=32)
    inbound_id: int = Field(index=True)
    clinic_id: str | None = Field(default=None, max_length=64)
    patient_id: int | None = Field(default=None, index=True)
    url: str | None = Field(default=None, sa_type=sa.Text)  # None: refused before any download
    content_type: str = Field(max_length=100)  # as Twilio declared it, then as stored
    state: str = Field(max_length=16)
    reason: str | None = Field(default=None, max_length=32)
    size: int | None = Field(default=None)  # bytes stored
    data: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    attempts: int = Field(default=0)
    due_at: datetime = Field(sa_type=UTCDateTime())
    claimed_by: str | None = Field(default=None, max_length=64)
    received_at: datetime = Field(sa_type=UTCDateTime())
    stored_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime())  # from Twilio


MEDIA = cast(sa.Table, Media.__table__)  # type: ignore[attr-defined]
