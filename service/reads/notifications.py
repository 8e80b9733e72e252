"""The notifications API's reads (SPEC §11): a clinic's notifications, newest first, each
with its attempts. Plain functions of a sync Session, run through `Transactions.read`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session

from service.errors import NotFound
from service.reads.answers import NotificationAttemptView, NotificationPage, NotificationView
from service.reads.paging import Cursor, NotificationQuery, encode_cursor
from service.storage.outbox import ATTEMPT, NOTIFICATION, NotificationState

N = NOTIFICATION.c
_ATTEMPTS = (
    sa.select(ATTEMPT.c.notification_id, ATTEMPT.c.at, ATTEMPT.c.http_status, ATTEMPT.c.error)
    .where(ATTEMPT.c.notification_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(ATTEMPT.c.id)
)


def page(s: Session, clinic_id: str, query: NotificationQuery) -> NotificationPage:
    """A page of the clinic's notifications and the cursor of the next page."""
    where = [N.clinic_id == clinic_id]
    if query.state is not None:
        where.append(N.state == query.state)
    if query.after is not None:
        position = sa.tuple_(N.created_at, N.id)
        where.append(position < sa.tuple_(query.after.send_at, query.after.id))
    statement = (
        sa.select(NOTIFICATION)
        .where(*where)
        .order_by(N.created_at.desc(), N.id.desc())
        .limit(query.limit + 1)
    )
    rows = s.connection().execute(statement).all()
    shown = rows[: query.limit]
    next_cursor = None
    if len(rows) > query.limit:  # one more than a page: there is a next page
        next_cursor = encode_cursor(Cursor(shown[-1].created_at, shown[-1].id))
    return {"notifications": _views(s, shown), "next_cursor": next_cursor}


def one(s: Session, clinic_id: str, notification_id: str) -> NotificationView:
    """The clinic's notification with its attempts; NotFound otherwise."""
    statement = sa.select(NOTIFICATION).where(N.id == notification_id, N.clinic_id == clinic_id)
    row = s.connection().execute(statement).first()
    if row is None:
        raise NotFound("this clinic has no notification with that id")
    return _views(s, [row])[0]


def _views(s: Session, rows: Sequence[sa.Row[Any]]) -> list[NotificationView]:
    attempts: dict[str, list[NotificationAttemptView]] = {row.id: [] for row in rows}
    if rows:
        found = s.connection().execute(_ATTEMPTS, {"ids": list(attempts)})
        for notification_id, at, status, error in found:
            attempts[notification_id].append({"at": at, "http_status": status, "error": error})
    return [_view(row, attempts[row.id]) for row in rows]


def _view(row: sa.Row[Any], attempts: list[NotificationAttemptView]) -> NotificationView:
    pending = row.state == NotificationState.PENDING
    return {
        "id": row.id,
        "type": row.type,
        "state": cast(Any, row.state),
        "created_at": row.created_at,
        "due_at": row.due_at if pending else None,
        "give_up_at": row.give_up_at,
        "finished_at": row.finished_at,
        "outcome": row.outcome,
        "last_error": row.last_error,
        "payload": json.loads(row.body),
        "attempts": attempts,
    }
