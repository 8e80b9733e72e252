"""Staff accounts (contract §16): added, listed, disabled and given a new password by the CLI, found
by email at sign-in. Disabling an account or resetting its password ends its sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from service.storage.staff_tables import SESSION, STAFF, STAFF_CLINIC, clinic_ids_of


@dataclass(frozen=True, kw_only=True)
class Account:
    """An account as sign-in and `staff list` see it (`password_hash` is for sign-in only)."""

    id: int
    email: str
    name: str | None
    password_hash: str
    disabled_at: datetime | None
    created_at: datetime
    clinic_ids: tuple[str, ...]


class AccountExists(Exception):
    """Raised when `add` is given an email another account already has."""


def add(
    s: Session,
    *,
    email: str,
    name: str | None,
    password_hash: str,
    clinic_ids: tuple[str, ...],
    now: datetime,
) -> int:
    """Create an account of `clinic_ids`; its id. Raises AccountExists for a taken email."""
    conn = s.connection()
    if conn.execute(sa.select(STAFF.c.id).where(STAFF.c.email == email)).first():
        raise AccountExists(email)
    values = {"email": email, "name": name, "password_hash": password_hash}
    times = {"created_at": now, "password_changed_at": now}
    staff_id = int(conn.execute(STAFF.insert().returning(STAFF.c.id), {**values, **times}).one()[0])
    rows = [{"staff_id": staff_id, "clinic_id": c} for c in dict.fromkeys(clinic_ids)]
    conn.execute(STAFF_CLINIC.insert(), rows)
    return staff_id


def find(s: Session, email: str) -> Account | None:
    """The account of `email` (lower-cased already), disabled or not; None when there is none."""
    row = s.connection().execute(sa.select(STAFF).where(STAFF.c.email == email)).first()
    return None if row is None else _account(s, row)


def listed(s: Session) -> list[Account]:
    """Every account, by email."""
    rows = s.connection().execute(sa.select(STAFF).order_by(STAFF.c.email)).all()
    return [_account(s, row) for row in rows]


def _account(s: Session, row: sa.Row[tuple[object, ...]]) -> Account:
    m = row._mapping
    return Account(
        id=m["id"],
        email=m["email"],
        name=m["name"],
        password_hash=m["password_hash"],
        disabled_at=m["disabled_at"],
        created_at=m["created_at"],
        clinic_ids=clinic_ids_of(s.connection(), m["id"]),
    )


def disable(s: Session, email: str, *, now: datetime) -> bool:
    """Disable the account of `email` and end its sessions; whether there is such an account."""
    conn = s.connection()
    staff_id = conn.execute(sa.select(STAFF.c.id).where(STAFF.c.email == email)).scalar()
    if staff_id is None:
        return False
    where = (STAFF.c.id == staff_id) & STAFF.c.disabled_at.is_(None)
    conn.execute(STAFF.update().where(where).values(disabled_at=now))
    conn.execute(SESSION.delete().where(SESSION.c.staff_id == staff_id))
    return True


def set_password(s: Session, email: str, *, password_hash: str, now: datetime) -> bool:
    """Give the account of `email` a new password and end its sessions; whether it exists."""
    conn = s.connection()
    staff_id = conn.execute(sa.select(STAFF.c.id).where(STAFF.c.email == email)).scalar()
    if staff_id is None:
        return False
    values = {"password_hash": password_hash, "password_changed_at": now}
    conn.execute(STAFF.update().where(STAFF.c.id == staff_id).values(**values))
    conn.execute(SESSION.delete().where(SESSION.c.staff_id == staff_id))
    return True


def rehash(s: Session, staff_id: int, *, old: str, new: str) -> None:
    """Store `new` (the same password, hashed with today's parameters) unless it changed since."""
    where = (STAFF.c.id == staff_id) & (STAFF.c.password_hash == old)
    s.connection().execute(STAFF.update().where(where).values(password_hash=new))
