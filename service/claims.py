"""The claim protocol's queries, in batches (DESIGN invariant 3).

A claim is one conditional UPDATE … RETURNING over the due rows: on PostgreSQL the rows are
picked with FOR UPDATE SKIP LOCKED, so replicas claiming at once split them; on SQLite the
write lock taken at BEGIN makes the claimer the only writer. These run as Core statements on
the session's connection: a batch of claims costs a handful of round trips, not a few per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from service.models import Status
from service.store import add_history
from service.tables import MESSAGE, OPT_OUT, PATIENT, TREATMENT

EXPIRED_REASON = "could not be sent before its expiry"
REACHED = (Status.SENDING, Status.SENT, Status.DELIVERED, Status.UNDELIVERED)
M = MESSAGE.c


@dataclass(slots=True)
class Claim:
    """A claimed message: what sending it needs."""

    id: str
    clinic_id: str
    phone: str
    body: str
    send_at: datetime
    expires_at: datetime
    attempts: int
    claimed_at: datetime | None
    footer: bool


CLAIM_COLUMNS = (M.id, M.clinic_id, M.phone, M.body, M.send_at, M.expires_at, M.attempts,
                 M.claimed_at, M.footer)


class Standing(NamedTuple):
    """What may have changed about a claimed message's patient while it waited."""

    cancelled: bool  # its treatment was cancelled
    consents: bool  # the patient consents to SMS
    phone: str  # the patient's phone now
    stopped: bool  # that phone said STOP to the clinic
    reached: bool  # the clinic has texted (or is texting) that phone in another message


def _at(name: str) -> sa.BindParameter[datetime]:
    return sa.bindparam(name, type_=M.due_at.type)


# Built once: a statement object carries its compiled form's cache key, so running it again
# costs binding its parameters, not building and hashing the statement.
_EXPIRE = (
    sa.update(MESSAGE)
    # due_at <= now keeps this an index range scan however many rows are pending.
    .where(M.status == Status.SCHEDULED, M.due_at <= _at("now"), M.expires_at <= _at("now"))
    .values(status=Status.EXPIRED, reason=EXPIRED_REASON, updated_at=_at("now"))
    .returning(M.id)
)
_DUE = (
    sa.select(M.id)
    .where(M.status == Status.SCHEDULED, M.due_at <= _at("now"))
    .order_by(M.due_at)
    .limit(sa.bindparam("limit", type_=sa.Integer))
    .with_for_update(skip_locked=True)
)
# The subquery picks (and on PostgreSQL locks) rows still scheduled; checking the status
# again outside it would only lead SQLite to walk every scheduled row by that index.
_CLAIM = (
    sa.update(MESSAGE)
    .where(M.id.in_(_DUE.scalar_subquery()))
    .values(status=Status.SENDING, claimed_by=sa.bindparam("instance"), claimed_at=_at("now"),
            lease_until=_at("lease_until"), attempts=M.attempts + 1, updated_at=_at("now"))
    .returning(*CLAIM_COLUMNS)
)
_TAKE_OVER = (
    sa.update(MESSAGE)
    .where(M.id == sa.bindparam("message_id"), M.status == Status.SENDING,
           M.lease_until < _at("now"))
    .values(claimed_by=sa.bindparam("instance"), lease_until=_at("lease_until"),
            updated_at=_at("now"))
    .returning(*CLAIM_COLUMNS)
)


async def expire_due(conn: AsyncConnection, *, now: datetime) -> list[str]:
    """Mark every due scheduled message past its expiry `expired`; their ids."""
    ids = [row[0] for row in (await conn.execute(_EXPIRE, {"now": now})).all()]
    await add_history(conn, [(i, Status.EXPIRED, EXPIRED_REASON, None) for i in ids], now=now)
    return ids


async def claim_due(
    conn: AsyncConnection, *, now: datetime, instance: str, lease: timedelta, limit: int
) -> list[Claim]:
    """Claim up to `limit` due scheduled messages for `instance`, soonest first."""
    params = {"now": now, "limit": limit, "instance": instance, "lease_until": now + lease}
    claimed = sorted((Claim(*row) for row in (await conn.execute(_CLAIM, params)).all()),
                     key=lambda c: (c.send_at, c.id))
    await add_history(conn, [(c.id, Status.SENDING, f"claimed by {instance}, attempt "
                              f"{c.attempts}", None) for c in claimed], now=now)
    return claimed


async def take_over(
    conn: AsyncConnection, message_id: str, *, now: datetime, instance: str, lease: timedelta
) -> Claim | None:
    """Take over a stale claim so that only one instance reconciles it."""
    params = {"message_id": message_id, "now": now, "instance": instance,
              "lease_until": now + lease}
    row = (await conn.execute(_TAKE_OVER, params)).first()
    return None if row is None else Claim(*row)


def _standing_query() -> sa.Select[Any]:
    ids: sa.BindParameter[list[str]] = sa.bindparam("ids", expanding=True)
    other = MESSAGE.alias("other")
    stopped = sa.exists().where(OPT_OUT.c.clinic_id == M.clinic_id,
                                OPT_OUT.c.phone == PATIENT.c.phone)
    reached = sa.exists().where(other.c.clinic_id == M.clinic_id,
                                other.c.phone == PATIENT.c.phone,
                                other.c.status.in_(REACHED), other.c.id.not_in(ids))
    return (
        sa.select(M.id, TREATMENT.c.cancelled_at.is_not(None), PATIENT.c.sms_consent,
                  PATIENT.c.phone, stopped, reached)
        .join_from(MESSAGE, TREATMENT, TREATMENT.c.id == M.treatment_id)
        .join(PATIENT, PATIENT.c.id == M.patient_id)
        .where(M.id.in_(ids))
    )


_STANDING = _standing_query()
_FOOTER = (sa.update(MESSAGE).where(M.id.in_(sa.bindparam("ids", expanding=True)))
           .values(footer=True))
_NEW_PHONE = (sa.update(MESSAGE).where(M.id == sa.bindparam("m_id"))
              .values(phone=sa.bindparam("m_phone"), updated_at=_at("m_now")))


async def standing(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, Standing]:
    """For each claimed message, in one query: its treatment, its patient's consent and phone
    now, whether that phone said STOP, and whether another message reached it already."""
    if not ids:
        return {}
    rows = (await conn.execute(_STANDING, {"ids": list(ids)})).all()
    return {i: Standing(bool(c), bool(ok), phone, bool(s), bool(r))
            for i, c, ok, phone, s, r in rows}


async def mark_footer(conn: AsyncConnection, ids: Sequence[str]) -> None:
    """Record that these messages carry the opt-out footer (it is part of what was sent)."""
    if ids:
        await conn.execute(_FOOTER, {"ids": list(ids)})


async def set_phone(conn: AsyncConnection, changes: Sequence[tuple[str, str]], *,
                    now: datetime) -> None:
    """Send these claimed messages to the patient's new phone: (message id, phone)."""
    if changes:
        await conn.execute(_NEW_PHONE,
                           [{"m_id": i, "m_phone": p, "m_now": now} for i, p in changes])
        await add_history(conn, [(i, Status.SENDING, "patient's new phone", None)
                                 for i, _ in changes], now=now)
