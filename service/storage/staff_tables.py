"""The staff console's tables (contract §16): accounts, their clinics, sessions, sign-in failures.

A session row is named by the SHA-256 of its cookie's token (the token itself is never stored:
a copy of the database signs no one in). Failures are rows, not memory, so that every replica
counts the same lockout.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from service.storage.models import UTCDateTime


class Staff(SQLModel, table=True):
    """A staff account: its email (unique, lower-cased) and its argon2id password hash."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    name: str | None = Field(default=None, max_length=200)
    password_hash: str = Field(max_length=255)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(sa_type=UTCDateTime())
    password_changed_at: datetime = Field(sa_type=UTCDateTime())


class StaffClinic(SQLModel, table=True):
    """A clinic an account belongs to (it sees nothing of any other)."""

    __tablename__ = "staff_clinic"

    staff_id: int = Field(foreign_key="staff.id", primary_key=True)
    clinic_id: str = Field(max_length=64, primary_key=True)


class StaffSession(SQLModel, table=True):
    """A signed-in browser: the hash of its cookie's token, its CSRF token, its times."""

    __tablename__ = "staff_session"
    __table_args__ = (sa.Index("ix_staff_session_staff", "staff_id"),)

    token_hash: str = Field(max_length=64, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id")
    csrf: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime())
    seen_at: datetime = Field(sa_type=UTCDateTime())


class SignInFailure(SQLModel, table=True):
    """One failed sign-in, counted against `key` (`account:<email>` or `address:<ip>`)."""

    __tablename__ = "sign_in_failure"
    __table_args__ = (
        sa.Index("ix_sign_in_failure_key_at", "key", "at"),
        sa.Index("ix_sign_in_failure_at", "at"),  # pruned by age
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=400)
    at: datetime = Field(sa_type=UTCDateTime())


STAFF = cast(sa.Table, Staff.__table__)  # type: ignore[attr-defined]
STAFF_CLINIC = cast(sa.Table, StaffClinic.__table__)  # type: ignore[attr-defined]
SESSION = cast(sa.Table, StaffSession.__table__)  # type: ignore[attr-defined]
FAILURE = cast(sa.Table, SignInFailure.__table__)  # type: ignore[attr-defined]


def clinic_ids_of(conn: sa.Connection, staff_id: int) -> tuple[str, ...]:
    """The clinics an account belongs to, in order (its sessions see only these)."""
    found = conn.execute(
        sa.select(STAFF_CLINIC.c.clinic_id)
        .where(STAFF_CLINIC.c.staff_id == staff_id)
        .order_by(STAFF_CLINIC.c.clinic_id)
    )
    return tuple(found.scalars())
