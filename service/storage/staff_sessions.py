"""Console sessions and sign-in failures (contract §16), kept in the database so that every
replica sees the same sessions and counts the same lockouts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from service.storage.staff_tables import FAILURE, SESSION, STAFF, clinic_ids_of

# Failures older than this are of no use to any lockout (15 min windows) and are deleted.
FAILURES_KEPT = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class SessionRow:
    """A session with its account, as a request's check needs it."""

    staff_id: int
    email: str
    name: str | None
    csrf: str
    created_at: datetime
    seen_at: datetime
    clinic_ids: tuple[str, ...]


def open_session(
    s: Session, *, token_hash: str, staff_id: int, csrf: str, now: datetime, ended_before: datetime
) -> None:
    """Store a new session; delete every session last seen before `ended_before` (expired)."""
    conn = s.connection()
    conn.execute(SESSION.delete().where(SESSION.c.seen_at < ended_before))
    row = {"token_hash": token_hash, "staff_id": staff_id, "csrf": csrf}
    conn.execute(SESSION.insert(), {**row, "created_at": now, "seen_at": now})


def find_session(s: Session, token_hash: str) -> SessionRow | None:
    """The session named by `token_hash` of an account not disabled; None when there is none."""
    conn = s.connection()
    found = conn.execute(
        sa.select(SESSION, STAFF.c.email, STAFF.c.name)
        .join(STAFF, STAFF.c.id == SESSION.c.staff_id)
        .where((SESSION.c.token_hash == token_hash) & STAFF.c.disabled_at.is_(None))
    ).first()
    if found is None:
        return None
    m = found._mapping
    return SessionRow(
        staff_id=m["staff_id"],
        email=m["email"],
        name=m["name"],
        csrf=m["csrf"],
        created_at=m["created_at"],
        seen_at=m["seen_at"],
        clinic_ids=clinic_ids_of(conn, m["staff_id"]),
    )


def touch_session(s: Session, token_hash: str, *, now: datetime) -> None:
    """Mark the session seen at `now` (its idle time starts again)."""
    where = SESSION.c.token_hash == token_hash
    s.connection().execute(SESSION.update().where(where).values(seen_at=now))


def end_session(s: Session, token_hash: str) -> None:
    """Delete the session (signing out, or found expired)."""
    s.connection().execute(SESSION.delete().where(SESSION.c.token_hash == token_hash))


def record_failure(s: Session, keys: tuple[str, ...], *, now: datetime) -> None:
    """Count a failed sign-in against each of `keys`; delete failures too old to matter."""
    conn = s.connection()
    conn.execute(FAILURE.delete().where(FAILURE.c.at < now - FAILURES_KEPT))
    conn.execute(FAILURE.insert(), [{"key": key, "at": now} for key in keys])


def failures(s: Session, key: str, *, since: datetime) -> list[datetime]:
    """The times of `key`'s failures since `since`, oldest first."""
    query = (
        sa.select(FAILURE.c.at)
        .where((FAILURE.c.key == key) & (FAILURE.c.at >= since))
        .order_by(FAILURE.c.at)
    )
    return list(s.connection().execute(query).scalars())


def forget_failures(s: Session, key: str) -> None:
    """Clear `key`'s failures (an account's, once it signed in)."""
    s.connection().execute(FAILURE.delete().where(FAILURE.c.key == key))
