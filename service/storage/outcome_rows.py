"""Send outcomes written in one transaction: the `Recorder`'s batch of `Move`s, the callbacks
kept for their sids, the STOPs Twilio reported and the notifications, in one call."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection
from sqlmodel import Session

from service.config import Settings
from service.storage import callback_rows, notices, store
from service.storage.moves import Move, move_many


def record(
    s: Session,
    moves: Sequence[Move],
    *,
    now: datetime,
    settings: Settings,
    audience: notices.Audience,
) -> list[bool]:
    """Write `moves` (one a message) in the transaction of `s`; whether each message moved."""
    conn = s.connection()
    # Before the rows: a callback batch for these sids waits for this one (callback_rows).
    callback_rows.lock_sids(conn, [m.provider_id for m in moves if m.provider_id])
    # A merged text's parts (`Move.also`) move with their lead, each by its own status.
    every = [*moves, *(part for m in moves for part in m.also)]
    moved = move_many(conn, every, now=now)
    done = [move for move, ok in zip(every, moved.applied, strict=True) if ok]
    if moved.callbacks:
        callback_rows.settle(conn, [m.provider_id for m in done if m.provider_id], now=now)
    for move in done:
        if move.opt_out:
            store.opt_out(s, *move.opt_out, now=now, source="twilio-21610")
            clinic_id, phone = move.opt_out
            notices.opted_out(conn, settings, clinic_id=clinic_id, phone=phone, now=now)
    _notify(conn, settings, audience, done, settled=moved.callbacks, now=now)
    return moved.applied[: len(moves)]


def _notify(
    conn: Connection,
    settings: Settings,
    audience: notices.Audience,
    done: Sequence[Move],
    *,
    settled: bool,
    now: datetime,
) -> None:
    """The notifications of the messages that moved to a status a clinic listens for:
    failed or expired, or (callbacks kept for an accepted send applied) beyond sent."""
    if not audience.statuses:
        return
    # A merged text's parts (`Move.also`) move with the callbacks of their lead's sid.
    parts = {p.message_id for m in done if m.provider_id for p in m.also} if settled else set()
    ids = [
        m.message_id
        for m in done
        if m.to in audience.statuses or (settled and (m.provider_id or m.message_id in parts))
    ]
    if ids:
        notices.messages_changed(conn, settings, audience, ids=ids, now=now)
