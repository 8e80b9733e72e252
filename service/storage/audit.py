"""The audit trail (contract §16, §19): who did what to which patient of a clinic, and when.

A row names its actor (`cli`, `api`, later a staff account's email), never a secret; its
patient by the clinic's own id; its `detail` carries no personal data (an erasure's counts).
Listed newest first by clinic, by the index on (clinic_id, at, id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from service.storage.models import UTCDateTime

PATIENT_ERASED = "patient_erased"


class Audit(SQLModel, table=True):
    """One audited act."""

    __table_args__ = (
        sa.Index("ix_audit_clinic_at", "clinic_id", "at", "id"),
        sa.Index("ix_audit_at", "at"),  # [retention] audit prunes by age
    )

    id: int | None = Field(default=None, primary_key=True)
    clinic_id: str = Field(max_length=64)
    at: datetime = Field(sa_type=UTCDateTime())
    actor: str = Field(max_length=255)
    action: str = Field(max_length=32)
    patient_id: str | None = Field(default=None, max_length=128)  # the clinic's id
    detail: str | None = Field(default=None, sa_type=sa.Text)


AUDIT = cast(sa.Table, Audit.__table__)  # type: ignore[attr-defined]


def record(
    conn: sa.Connection,
    *,
    clinic_id: str,
    actor: str,
    action: str,
    patient_id: str | None,
    detail: str | None,
    now: datetime,
) -> None:
    """Append an audit row in the transaction `conn` is in."""
    row = {"clinic_id": clinic_id, "at": now, "actor": actor, "action": action}
    conn.execute(AUDIT.insert(), {**row, "patient_id": patient_id, "detail": detail})


def page(
    conn: sa.Connection, clinic_id: str, *, limit: int, after: tuple[datetime, int] | None
) -> list[Any]:
    """Up to `limit` of the clinic's rows, newest first by (at, id), after the position
    `after` (the last row of the page before), by the index on (clinic_id, at, id)."""
    a = AUDIT.c
    query = sa.select(a.id, a.at, a.actor, a.action, a.patient_id, a.detail).where(
        a.clinic_id == clinic_id
    )
    if after is not None:
        query = query.where(sa.tuple_(a.at, a.id) < sa.tuple_(*after))
    return list(conn.execute(query.order_by(a.at.desc(), a.id.desc()).limit(limit)).all())
