"""The `media` rows' statements (contract §17): kept with the reply, claimed by the downloader
like the outbox's notifications (`claims.due_first`: SKIP LOCKED on PostgreSQL, the one
writer on SQLite; the claim moves `due_at` to the lease's end, so a holder that died leaves the
row due again), finished only by their holder, read by the API and the console."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from service.storage.claims import due_first
from service.storage.media_tables import MEDIA, MediaState

C = MEDIA.c
PENDING = MediaState.PENDING.value


def _at(name: str) -> sa.BindParameter[datetime]:
    return sa.bindparam(name, type_=C.due_at.type)


@dataclass(frozen=True, slots=True)
class Item:
    """An item of an inbound MMS as Twilio names it, and what intake decided of it."""

    url: str | None
    content_type: str
    refused: str | None = None  # the reason it is not downloaded


@dataclass(frozen=True, slots=True)
class MediaView:
    """A photo as notifications, the API and the console name it (never its bytes)."""

    id: str
    inbound_id: int
    content_type: str
    state: str
    bytes: int | None
    reason: str | None

    def data(self) -> dict[str, Any]:
        """As a notification's `media` item."""
        return {
            "id": self.id,
            "content_type": self.content_type,
            "bytes": self.bytes,
            "state": self.state,
        }


@dataclass(frozen=True, slots=True)
class Photos:
    """A reply's items as kept: whether any is a photo, and how notifications name them."""

    views: tuple[MediaView, ...]

    @property
    def kept(self) -> bool:
        """Whether any item is an image on its way (or stored): the reply has a photo."""
        return any(v.state in (PENDING, MediaState.STORED) for v in self.views)

    def data(self) -> dict[str, Any]:
        """`media` for a notification's data, when the reply had items (else nothing)."""
        return {"media": [v.data() for v in self.views]} if self.views else {}


@dataclass(frozen=True, slots=True)
class Claimed:
    """A photo claimed for download."""

    id: str
    url: str
    content_type: str
    attempts: int


def keep(
    conn: sa.Connection,
    items: list[Item],
    *,
    inbound_id: int,
    clinic_id: str | None,
    now: datetime,
) -> Photos:
    """One row per item of a reply: pending, due now; or refused with its reason."""
    rows: list[dict[str, Any]] = [
        {
            "id": secrets.token_hex(16),
            "inbound_id": inbound_id,
            "clinic_id": clinic_id,
            "url": None if i.refused else i.url,
            "content_type": i.content_type[:100],
            "state": MediaState.REFUSED if i.refused else PENDING,
            "reason": i.refused,
            "attempts": 0,
            "due_at": now,
            "received_at": now,
        }
        for i in items
    ]
    if rows:
        conn.execute(MEDIA.insert(), rows)
    views = (
        MediaView(r["id"], inbound_id, r["content_type"], r["state"], None, r["reason"])
        for r in rows
    )
    return Photos(tuple(views))


def assign(
    conn: sa.Connection, inbound_id: int, *, clinic_id: str | None, patient_id: int | None
) -> None:
    """The clinic and patient a reply came to, on its photos (who may see them)."""
    conn.execute(
        sa.update(MEDIA)
        .where(C.inbound_id == inbound_id)
        .values(clinic_id=clinic_id, patient_id=patient_id)
    )


_VIEW = (C.id, C.inbound_id, C.content_type, C.state, C.size, C.reason)


def of_replies(s: Session, inbound_ids: list[int]) -> list[MediaView]:
    """The photos of these replies, in the order they came."""
    if not inbound_ids:
        return []
    query = sa.select(*_VIEW).where(C.inbound_id.in_(inbound_ids)).order_by(C.inbound_id, C.id)
    return [MediaView(*row) for row in s.connection().execute(query)]


def pending_count(s: Session, clinic_ids: list[str]) -> int:
    """How many photos of these clinics are still to download (by the state's index)."""
    query = sa.select(sa.func.count()).where(C.state == PENDING, C.clinic_id.in_(clinic_ids))
    return int(s.connection().execute(query).scalar_one())


def state_of(s: Session, clinic_ids: list[str], media_id: str) -> tuple[str, str] | None:
    """A photo's state and content type, if one of these clinics'."""
    query = sa.select(C.state, C.content_type).where(C.id == media_id, C.clinic_id.in_(clinic_ids))
    row = s.connection().execute(query).first()
    return None if row is None else (row.state, row.content_type)


_DUE = due_first(C.id, C.due_at, C.state == PENDING)
_CLAIM = (
    sa.update(MEDIA)
    .where(C.id.in_(_DUE.scalar_subquery()))
    .values(claimed_by=sa.bindparam("instance"), due_at=_at("lease"))
    .returning(C.id, C.url, C.content_type, C.attempts)
)
_NEXT_DUE = sa.select(sa.func.min(C.due_at)).where(C.state == PENDING)


def claim_due(
    s: Session, *, now: datetime, instance: str, lease: timedelta, limit: int
) -> list[Claimed]:
    """Claim up to `limit` due pending photos for `instance`, for `lease`."""
    params = {"now": now, "limit": limit, "instance": instance, "lease": now + lease}
    return [Claimed(*row) for row in s.connection().execute(_CLAIM, params)]


def next_due(s: Session) -> datetime | None:
    """When the soonest pending photo is due."""
    value: datetime | None = s.connection().execute(_NEXT_DUE).scalar()
    return value


def _held(media_id: str, instance: str) -> sa.ColumnElement[bool]:
    return sa.and_(C.id == media_id, C.state == PENDING, C.claimed_by == instance)


def again(s: Session, media_id: str, *, instance: str, due_at: datetime) -> bool:
    """A failed attempt: due again at `due_at`; whether `instance` still held it."""
    values = {"due_at": due_at, "claimed_by": None, "attempts": C.attempts + 1}
    done = s.connection().execute(sa.update(MEDIA).where(_held(media_id, instance)).values(values))
    return bool(done.rowcount)


def end(s: Session, media_id: str, *, instance: str, state: MediaState, reason: str) -> bool:
    """Refused or failed for good, with `reason`; whether `instance` still held it."""
    values = {"state": state, "reason": reason, "claimed_by": None, "attempts": C.attempts + 1}
    done = s.connection().execute(sa.update(MEDIA).where(_held(media_id, instance)).values(values))
    return bool(done.rowcount)


def deleted_from_twilio(s: Session, media_id: str, *, now: datetime) -> None:
    """Note that Twilio's copy is gone."""
    s.connection().execute(sa.update(MEDIA).where(C.id == media_id).values(deleted_at=now))
