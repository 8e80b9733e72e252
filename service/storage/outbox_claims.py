"""The deliverer's queries: notifications claimed like sends, each attempt appended.

A claim is one conditional UPDATE … RETURNING over the due pending rows (on PostgreSQL picked
with FOR UPDATE SKIP LOCKED, so replicas claiming at once split them; on SQLite the writer
lock makes the claimer the only writer). It moves the row's `due_at` to the lease's end: a
claim whose holder died is due again then, and re-claimed by the same query. Only the holder
finishes a claim (`claimed_by` checked), so a row taken over after its lease ran out is
finished once. Plain functions of a sync Session, run through `Transactions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import Session

from service.storage.claims import due_first
from service.storage.outbox import ATTEMPT, NOTIFICATION, NotificationState

N = NOTIFICATION.c
PENDING = NotificationState.PENDING


def _at(name: str) -> sa.BindParameter[datetime]:
    return sa.bindparam(name, type_=N.due_at.type)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed notification: what posting it needs."""

    id: str
    clinic_id: str
    type: str
    body: str
    attempts: int  # attempts made before this one
    give_up_at: datetime


@dataclass(frozen=True, slots=True)
class Finished:
    """One attempt's result and what follows: `delivered`, `retry` at `due_at`, or `failed`
    with `outcome` (gave_up, no_endpoint)."""

    id: str
    at: datetime
    http_status: int | None
    error: str | None
    next: Literal["delivered", "retry", "failed"]
    due_at: datetime | None = None
    outcome: str | None = None


_DUE = due_first(N.id, N.due_at, N.state == PENDING)
_CLAIM = (
    sa.update(NOTIFICATION)
    .where(N.id.in_(_DUE.scalar_subquery()))
    .values(claimed_by=sa.bindparam("instance"), lease_until=_at("lease"), due_at=_at("lease"))
    .returning(N.id, N.clinic_id, N.type, N.body, N.attempts, N.give_up_at)
)
_NEXT_DUE = sa.select(sa.func.min(N.due_at)).where(N.state == PENDING)
_HELD = sa.and_(
    N.id == sa.bindparam("n_id"), N.state == PENDING, N.claimed_by == sa.bindparam("me")
)
_RELEASE = {"claimed_by": None, "lease_until": None, "attempts": N.attempts + 1}
_DONE = (
    sa.update(NOTIFICATION)
    .where(_HELD)
    .values(
        state=sa.bindparam("n_state"),
        outcome=sa.bindparam("n_outcome"),
        finished_at=_at("n_at"),
        last_error=sa.bindparam("n_error"),
        **_RELEASE,
    )
)
_AGAIN = (
    sa.update(NOTIFICATION)
    .where(_HELD)
    .values(due_at=_at("n_due"), last_error=sa.bindparam("n_error"), **_RELEASE)
)


def claim_due(
    s: Session, *, now: datetime, instance: str, lease: timedelta, limit: int
) -> list[Claimed]:
    """Claim up to `limit` due pending notifications for `instance`, for `lease`."""
    params = {"now": now, "limit": limit, "instance": instance, "lease": now + lease}
    rows = s.connection().execute(_CLAIM, params).all()
    return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)


def next_due(s: Session) -> datetime | None:
    """When the soonest pending notification is due (a claimed one: when its lease ends)."""
    value: datetime | None = s.connection().execute(_NEXT_DUE).scalar()
    return value


def finish(s: Session, results: Sequence[Finished], *, instance: str) -> list[bool]:
    """Append each attempt and move its notification on, where `instance` still holds it;
    whether each moved (False: the claim had run out and was taken over)."""
    conn = s.connection()
    if results:
        conn.execute(
            ATTEMPT.insert(),
            [
                {
                    "notification_id": r.id,
                    "at": r.at,
                    "http_status": r.http_status,
                    "error": r.error,
                }
                for r in results
            ],
        )
    moved = []
    for r in results:
        params: dict[str, Any] = {"n_id": r.id, "me": instance, "n_error": r.error}
        if r.next == "retry":
            result = conn.execute(_AGAIN, {**params, "n_due": r.due_at})
        else:
            state = (
                NotificationState.DELIVERED if r.next == "delivered" else NotificationState.FAILED
            )
            outcome = r.outcome or r.next
            result = conn.execute(
                _DONE, {**params, "n_state": state, "n_outcome": outcome, "n_at": r.at}
            )
        moved.append(bool(result.rowcount))
    return moved


_RETRY = (
    sa.update(NOTIFICATION)
    .where(
        N.id == sa.bindparam("n_id"),
        N.clinic_id == sa.bindparam("clinic"),
        sa.or_(
            N.state == NotificationState.FAILED, sa.and_(N.state == PENDING, N.claimed_by.is_(None))
        ),
    )
    .values(
        state=PENDING,
        due_at=_at("now"),
        give_up_at=_at("give_up_at"),
        outcome=None,
        finished_at=None,
    )
)
_STATE = sa.select(N.state).where(
    N.id == sa.bindparam("n_id"), N.clinic_id == sa.bindparam("clinic")
)


def retry(
    s: Session, clinic_id: str, notification_id: str, *, now: datetime, give_up_after: timedelta
) -> str | None:
    """Make the clinic's notification due now: a failed one pending again (with a new
    `give_up_after` window), a pending one not being attempted sooner. Its state before
    (None: no such notification of that clinic); a delivered one is left as it is."""
    conn = s.connection()
    params = {"n_id": notification_id, "clinic": clinic_id}
    state: str | None = conn.execute(_STATE, params).scalar()
    if state in (NotificationState.FAILED, PENDING):
        conn.execute(_RETRY, {**params, "now": now, "give_up_at": now + give_up_after})
    return state


_PENDING_STATS = sa.select(sa.func.count(), sa.func.min(N.created_at)).where(N.state == PENDING)


def pending_stats(s: Session) -> tuple[int, datetime | None]:
    """How many notifications are pending, and when the oldest of them was written."""
    count, oldest = s.connection().execute(_PENDING_STATS).one()
    return int(count), oldest
