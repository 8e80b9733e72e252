"""Status changes in batches: `Move`s applied by one conditional UPDATE (one message) or a
locked read and one executemany per set of columns (many), each appended to history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from itertools import groupby
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import select

from service.storage.models import Status, sqlite_text
from service.storage.rows import insert_rows
from service.storage.tables import HISTORY, MESSAGE
from service.storage.tables import PROVIDER_STATUS as CALLBACKS


@dataclass(frozen=True)
class Move:
    """One status change of a message, with what must happen alongside it."""

    message_id: str
    to: Status
    detail: str | None = None
    code: int | None = None
    values: dict[str, Any] = field(default_factory=dict)
    allowed_from: tuple[Status, ...] = (Status.SENDING,)
    provider_id: str | None = None  # a send Twilio accepted: apply its early callbacks
    opt_out: tuple[str, str] | None = None  # (clinic, phone) Twilio says unsubscribed
    # The moves of the messages merged into this one, written in the same transaction: a
    # merged text's parts follow its lead (docs/merging.md).
    also: tuple[Move, ...] = ()


# (message id, at, status, detail, error code)
HistoryRow = tuple[str, datetime, str, str | None, int | None]


class Moves(NamedTuple):
    """What `move_many` did."""

    applied: list[bool]  # whether each move applied, in order
    callbacks: bool  # status callbacks may be stored already for a sid a move recorded


def move_many(conn: sa.Connection, moves: Sequence[Move], *, now: datetime) -> Moves:
    """`move` for many messages (each at most once) in a few round trips.

    One move is one conditional UPDATE … RETURNING. Many: the rows are read and locked first
    (SQLite: the transaction holds the write lock), so the updates need no condition of their
    own and run as one executemany per set of columns changed."""
    ids = sorted({m.message_id for m in moves})
    assert len(ids) == len(moves), "one move per message in a batch"
    if len(moves) == 1:
        return _move_one(conn, moves[0], now=now)
    if not moves:
        return Moves([], callbacks=False)
    found = conn.execute(_LOCK, {"ids": ids}).all()
    current: dict[str, str] = {i: st for i, st in found}
    applied = [m for m in moves if current.get(m.message_id, "") in m.allowed_from]
    for keys, group in groupby(sorted(applied, key=_columns), key=_columns):
        rows = [
            {
                "m_id": m.message_id,
                "m_to": m.to,
                "m_now": now,
                **{f"v_{k}": m.values[k] for k in keys},
            }
            for m in group
        ]
        conn.execute(_update(keys), rows)
    add_history(conn, [(m.message_id, m.to, m.detail, m.code) for m in applied], now=now)
    moved = {id(m) for m in applied}
    return Moves([id(m) in moved for m in moves], callbacks=any(m.provider_id for m in applied))


def _move_one(conn: sa.Connection, move: Move, *, now: datetime) -> Moves:
    params = {
        "m_id": move.message_id,
        "m_to": move.to,
        "m_now": now,
        "m_from": list(move.allowed_from),
        "m_sid": move.provider_id,
        **{f"v_{k}": v for k, v in move.values.items()},
    }
    statement = _update_one(_columns(move), move.provider_id is not None)
    row = conn.execute(statement, params).first()
    if row is None:
        return Moves([False], callbacks=False)
    add_history(conn, [(move.message_id, move.to, move.detail, move.code)], now=now)
    return Moves([True], callbacks=bool(row[-1]))


def _columns(move: Move) -> tuple[str, ...]:
    return tuple(sorted(move.values))


_LOCK = (
    select(MESSAGE.c.id, MESSAGE.c.status)
    .where(MESSAGE.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(MESSAGE.c.id)
    .with_for_update()
)
_ADD_HISTORY = sa.insert(HISTORY)
_HISTORY_COLUMNS = ("message_id", "at", "status", "detail", "error_code")


@cache
def _update(keys: tuple[str, ...]) -> sa.Update:
    """The UPDATE for moves that set these columns, built once (see `claims`)."""
    values = {k: sa.bindparam(f"v_{k}", type_=MESSAGE.c[k].type) for k in keys}
    return (
        sa.update(MESSAGE)
        .where(MESSAGE.c.id == sa.bindparam("m_id"))
        .values(
            status=sa.bindparam("m_to"),
            updated_at=sa.bindparam("m_now", type_=MESSAGE.c.updated_at.type),
            **values,
        )
    )


@cache
def _update_one(keys: tuple[str, ...], sid: bool) -> sa.Update:
    """The conditional UPDATE for one move that sets these columns; it answers whether status
    callbacks are stored for the sid it records, if it records one (`sid`)."""
    waiting = (
        sa.exists().where(CALLBACKS.c.provider_id == sa.bindparam("m_sid")) if sid else sa.false()
    )
    return (
        _update(keys)
        .where(MESSAGE.c.status.in_(sa.bindparam("m_from", expanding=True)))
        .returning(MESSAGE.c.id, waiting)
    )


def add_history(
    conn: sa.Connection,
    entries: Sequence[tuple[str, str, str | None, int | None]],
    *,
    now: datetime,
) -> None:
    """Append (message id, status, detail, error code) entries to history, all at `now`."""
    write_history(conn, [(i, now, st, d, c) for i, st, d, c in entries])


def write_history(conn: sa.Connection, rows: Sequence[HistoryRow]) -> None:
    """Append history rows, one statement: the one way history is written."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        text: dict[datetime, str | None] = {}  # a batch's rows share a few instants
        insert_rows(
            conn,
            HISTORY.name,
            _HISTORY_COLUMNS,
            [
                (i, text.get(at) or text.setdefault(at, sqlite_text(at)), str(st), d, c)
                for i, at, st, d, c in rows
            ],
        )
        return
    conn.execute(
        _ADD_HISTORY,
        [
            {"message_id": i, "at": at, "status": st, "detail": d, "error_code": c}
            for i, at, st, d, c in rows
        ],
    )
