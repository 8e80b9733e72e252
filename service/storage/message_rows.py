"""A plan's messages and their first history entries as rows, and their inserts.

PostgreSQL takes them through SQLAlchemy Core (one executemany each). SQLite takes rows made
ahead of the write, each value already as SQLAlchemy would store it (its per-value processing
of some 600 parameters an event was a fifth of ingest's CPU), many rows to a statement
(`sqlite_driver.insert_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from service.planning.planner import NewMessage
from service.storage.models import sqlite_text
from service.storage.sqlite_driver import insert_rows
from service.storage.tables import HISTORY, MESSAGE

Row = tuple[Any, ...]
_MESSAGE_COLUMNS = (
    "id", "clinic_id", "step", "kind", "seq", "phone", "locale", "body", "send_at", "due_at",
    "expires_at", "status", "reason", "attempts", "footer", "updated_at", "treatment_id",
    "patient_id")  # the ids last: they are added to rows made before they existed
_HISTORY_COLUMNS = ("message_id", "at", "status", "detail")
_INSERT_MESSAGE = sa.insert(MESSAGE)
_INSERT_HISTORY = sa.insert(HISTORY)


def sqlite_rows(messages: Sequence[NewMessage]) -> tuple[list[Row], list[Row]]:
    """Messages as SQLite rows (without treatment and patient ids) and their first history
    entries, ready for `insert_sqlite`."""
    rows, history = [], []
    stamped, now = None, None  # a plan's messages share one `updated_at`
    for m in messages:
        if m.updated_at is not stamped:
            stamped, now = m.updated_at, sqlite_text(m.updated_at)
        send_at = sqlite_text(m.send_at)
        rows.append((m.id, m.clinic_id, m.step, m.kind, m.seq, m.phone, m.locale, m.body,
                     send_at, send_at, sqlite_text(m.expires_at), m.status.value, m.reason, 0,
                     0, now))
        history.append((m.id, now, m.status.value, m.reason))
    return rows, history


async def insert_sqlite(conn: AsyncConnection, plans: Sequence[tuple[list[Row], Row]],
                        history: Sequence[Row]) -> None:
    """Insert plans made by `sqlite_rows`, each as (its rows, its (treatment id, patient id)),
    and their history entries."""
    await insert_rows(conn, MESSAGE.name, _MESSAGE_COLUMNS,
                      [row + ids for rows, ids in plans for row in rows])
    await insert_rows(conn, HISTORY.name, _HISTORY_COLUMNS, history)


async def insert(conn: AsyncConnection, plans: Sequence[tuple[list[NewMessage], Row]]) -> None:
    """Insert plans, each as (its messages, its (treatment id, patient id)), with their first
    history entries, through SQLAlchemy."""
    rows = []
    for messages, (treatment_id, patient_id) in plans:
        for m in messages:
            m.treatment_id, m.patient_id = treatment_id, patient_id
            rows.append(m.values())
    await conn.execute(_INSERT_MESSAGE, rows)
    await conn.execute(_INSERT_HISTORY, [
        {"message_id": r["id"], "at": r["updated_at"], "status": r["status"],
         "detail": r["reason"], "error_code": None} for r in rows])
