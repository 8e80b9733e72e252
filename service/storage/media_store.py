"""Where a photo's bytes live: the seam for object storage (docs/photos.md).

`DatabaseMediaStore` keeps them in the `media` row (`data`, a LargeBinary): one backup, one
retention, one erasure, no second system to secure. An object store (S3 and the like) would
implement the same protocol: `put` uploads under the row's id and records the key, `get`
answers a download (or a short-lived signed URL), and retention and erasure delete the objects
of the rows they delete.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlmodel import Session

from service.storage.media_tables import MEDIA, MediaState

C = MEDIA.c


class MediaStore(Protocol):
    """Keeps and hands out the cleaned bytes of photos."""

    def put(
        self,
        s: Session,
        media_id: str,
        *,
        instance: str,
        content_type: str,
        data: bytes,
        now: datetime,
    ) -> bool:
        """Store a claimed photo's bytes and mark it stored; whether `instance` held it."""
        ...

    def get(self, s: Session, clinic_ids: list[str], media_id: str) -> tuple[str, bytes] | None:
        """A stored photo of one of these clinics: its content type and bytes."""
        ...


class DatabaseMediaStore:
    """The bytes in the `media` row itself."""

    def put(
        self,
        s: Session,
        media_id: str,
        *,
        instance: str,
        content_type: str,
        data: bytes,
        now: datetime,
    ) -> bool:
        """Store a claimed photo's bytes and mark it stored; whether `instance` held it."""
        held = sa.and_(C.id == media_id, C.state == MediaState.PENDING, C.claimed_by == instance)
        values = {
            "state": MediaState.STORED,
            "content_type": content_type,
            "data": data,
            "size": len(data),
            "stored_at": now,
            "claimed_by": None,
            "attempts": C.attempts + 1,
            "reason": None,
        }
        done = s.connection().execute(sa.update(MEDIA).where(held).values(values))
        return bool(done.rowcount)

    def get(self, s: Session, clinic_ids: list[str], media_id: str) -> tuple[str, bytes] | None:
        """A stored photo of one of these clinics: its content type and bytes."""
        query = sa.select(C.content_type, C.data).where(
            C.id == media_id, C.clinic_id.in_(clinic_ids), C.state == MediaState.STORED
        )
        row = s.connection().execute(query).first()
        return None if row is None or row.data is None else (row.content_type, bytes(row.data))


STORE: MediaStore = DatabaseMediaStore()
