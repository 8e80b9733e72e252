"""Twilio's status callbacks written in batches, in Core statements built once (no ORM).

A batch keeps every callback in `provider_status`, looks its sids up in one statement (rows
locked), applies the callbacks to their messages in order of arrival (several for one sid
too: `sent` then `delivered` is two history rows and one UPDATE of the message), and appends
history. Statuses only move forward (`models.can_move`): a repeat or a late `sent` after
`delivered` is kept and changes nothing. A callback whose sid is not recorded yet is kept and
applied by `settle` in the transaction that records it.

On PostgreSQL a callback batch and an outcome batch that records the same sid could each miss
the other (READ COMMITTED: neither sees the other's uncommitted row), so both take a
transaction-scoped advisory lock per sid first (`lock_sids`), in one order.

`record` is the return path's whole transaction for a batch (the callbacks kept, applied and
notified); `delivery.callbacks` reads Twilio's fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

from service.config import Settings
from service.storage import notices
from service.storage.models import Status, can_move, sqlite_text
from service.storage.moves import add_history
from service.storage.rows import insert_rows
from service.storage.tables import MESSAGE
from service.storage.tables import PROVIDER_STATUS as KEPT

M = MESSAGE.c


class Outcome(StrEnum):
    """What became of one callback."""

    APPLIED = "applied"  # its message moved
    STALE = "stale"  # a repeat, or later than what the message says: kept, nothing moved
    EARLY = "early"  # its sid is not recorded (yet): kept, applied once it is
    IGNORED = "ignored"  # queued/accepted/sending: nothing to write


@dataclass(frozen=True, slots=True)
class Callback:
    """One status callback as it arrived."""

    sid: str
    status: Status
    code: int | None
    received_at: datetime


_PART = MESSAGE.alias("part")
_FIND = (
    sa.select(
        M.provider_id,
        M.id,
        M.status,
        sa.exists().where(_PART.c.merged_into == M.id).label("merged"),
    )
    .where(M.provider_id.in_(sa.bindparam("sids", expanding=True)))
    .order_by(M.id)
    .with_for_update()
)
# A merged text's parts (docs/merging.md): its sid is its lead's, and moves them all.
_FIND_PARTS = (
    sa.select(M.merged_into, M.id, M.status)
    .where(M.merged_into.in_(sa.bindparam("leads", expanding=True)))
    .order_by(M.id)
    .with_for_update()
)
_KEPT_FOR = (
    sa.select(KEPT.c.provider_id, KEPT.c.status, KEPT.c.error_code, KEPT.c.received_at)
    .where(KEPT.c.provider_id.in_(sa.bindparam("sids", expanding=True)))
    .order_by(KEPT.c.id)
)
_KEEP = sa.insert(KEPT)
_KEPT_COLUMNS = ("provider_id", "status", "error_code", "received_at")
_NOW = sa.bindparam("m_now", type_=M.updated_at.type)
_SET = (
    sa.update(MESSAGE)
    .where(M.id == sa.bindparam("m_id"))
    .values(status=sa.bindparam("m_to"), updated_at=_NOW)
)
_SET_CODE = _SET.values(error_code=sa.bindparam("m_code"))
# Locks taken in one order (sorted keys), so two batches never wait on each other in a cycle.
_LOCK_SIDS = sa.text(
    "SELECT pg_advisory_xact_lock(k) FROM "
    "(SELECT DISTINCT hashtext(s) AS k FROM unnest(:sids) AS s ORDER BY k) AS keys"
).bindparams(sa.bindparam("sids", type_=ARRAY(sa.String)))


def lock_sids(conn: sa.Connection, sids: Sequence[str]) -> None:
    """PostgreSQL: serialise, per sid, the batches that record a sid and those that apply its
    callbacks (until commit). SQLite has one writer already."""
    if sids and conn.dialect.name == "postgresql":
        conn.execute(_LOCK_SIDS, {"sids": sorted(set(sids))})


def write(conn: sa.Connection, callbacks: Sequence[Callback], *, now: datetime) -> list[Outcome]:
    """Keep `callbacks` (in order of arrival) and apply those whose sid is recorded; what
    became of each."""
    sids = sorted({c.sid for c in callbacks})
    lock_sids(conn, sids)
    _keep(conn, callbacks)
    return _apply(conn, _find(conn, sids), callbacks, now=now)


def record(
    s: Session,
    callbacks: Sequence[Callback],
    *,
    now: datetime,
    settings: Settings,
    audience: notices.Audience,
) -> list[Outcome]:
    """`write` the batch in the transaction of `s`, and notify the messages it moved to a
    status a clinic listens for (undelivered, failed); what became of each callback."""
    conn = s.connection()
    outcomes = write(conn, callbacks, now=now)
    if audience.statuses:
        sids = [
            c.sid
            for c, outcome in zip(callbacks, outcomes, strict=True)
            if outcome is Outcome.APPLIED and c.status in audience.statuses
        ]
        notices.messages_changed(conn, settings, audience, sids=sids, now=now)
    return outcomes


def settle(conn: sa.Connection, sids: Sequence[str], *, now: datetime) -> None:
    """Apply the kept callbacks of sids just recorded, in order of arrival."""
    if not sids:
        return
    rows = conn.execute(_KEPT_FOR, {"sids": list(sids)}).all()
    kept = [Callback(sid, Status(status), code, at) for sid, status, code, at in rows]
    if kept:
        _apply(conn, _find(conn, sorted({c.sid for c in kept})), kept, now=now)


def _keep(conn: sa.Connection, callbacks: Sequence[Callback]) -> None:
    if conn.dialect.name == "sqlite":
        insert_rows(
            conn,
            KEPT.name,
            _KEPT_COLUMNS,
            [(c.sid, str(c.status), c.code, sqlite_text(c.received_at)) for c in callbacks],
        )
        return
    conn.execute(
        _KEEP,
        [
            {
                "provider_id": c.sid,
                "status": c.status,
                "error_code": c.code,
                "received_at": c.received_at,
            }
            for c in callbacks
        ],
    )


def _find(conn: sa.Connection, sids: Sequence[str]) -> dict[str, list[tuple[str, Status]]]:
    """The recorded sids among `sids`: each one's messages (the one it was recorded for, then
    any merged into that one) and their statuses, rows locked."""
    rows = conn.execute(_FIND, {"sids": list(sids)}).all()
    found = {sid: [(message_id, Status(status))] for sid, message_id, status, _ in rows}
    leads = {message_id: sid for sid, message_id, _, merged in rows if merged}
    if leads:
        for lead, message_id, status in conn.execute(_FIND_PARTS, {"leads": sorted(leads)}):
            found[leads[lead]].append((message_id, Status(status)))
    return found


def _apply(
    conn: sa.Connection,
    found: dict[str, list[tuple[str, Status]]],
    callbacks: Sequence[Callback],
    *,
    now: datetime,
) -> list[Outcome]:
    """Move the found messages through `callbacks` in order; one UPDATE per message. A sid's
    callback moves each of its messages (a merged text's lead and parts) that may move."""
    outcomes: list[Outcome] = []
    history: list[tuple[str, str, str | None, int | None]] = []
    final: dict[str, tuple[Status, int | None]] = {}
    for c in callbacks:
        if c.sid not in found:
            outcomes.append(Outcome.EARLY)
            continue
        messages = found[c.sid]
        lead = messages[0][0]
        applied = False
        for index, (message_id, current) in enumerate(messages):
            if not can_move(current, c.status):
                continue
            applied = True
            messages[index] = (message_id, c.status)
            code = c.code or final.get(message_id, (c.status, None))[1]
            final[message_id] = (c.status, code)
            detail = f"twilio: {c.status}" if message_id == lead else f"twilio: {c.status} ({lead})"
            history.append((message_id, c.status, detail, c.code))
        outcomes.append(Outcome.APPLIED if applied else Outcome.STALE)
    _update(conn, final, now=now)
    add_history(conn, history, now=now)
    return outcomes


def _update(
    conn: sa.Connection, final: dict[str, tuple[Status, int | None]], *, now: datetime
) -> None:
    plain = [{"m_id": i, "m_to": st, "m_now": now} for i, (st, code) in final.items() if not code]
    coded = [
        {"m_id": i, "m_to": st, "m_now": now, "m_code": code}
        for i, (st, code) in final.items()
        if code
    ]
    for statement, rows in ((_SET, plain), (_SET_CODE, coded)):
        if rows:
            conn.execute(statement, rows)
