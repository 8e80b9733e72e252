"""The notifications API's reads (contract §11): a clinic's notifications, newest first, each
with its attempts. Plain functions of a sync Session, run through `Transactions.read`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from service.errors import NotFound
from service.reads.answers import NotificationAttemptView, NotificationPage, NotificationView
from service.reads.paging import Cursor, NotificationQuery, encode_cursor
from service.storage import read_pages
from service.storage.outbox import NotificationState
from service.storage.read_pages import NotificationRow
from service.storage.transactions import Session


def page(s: Session, clinic_id: str, query: NotificationQuery) -> NotificationPage:
    """A page of the clinic's notifications and the cursor of the next page."""
    after = query.after
    rows = read_pages.notification_page(
        s,
        clinic_id,
        state=query.state,
        before=None if after is None else (after.send_at, after.id),
        limit=query.limit + 1,
    )
    shown = rows[: query.limit]
    next_cursor = None
    if len(rows) > query.limit:  # one more than a page: there is a next page
        next_cursor = encode_cursor(Cursor(shown[-1].created_at, shown[-1].id))
    return {"notifications": _views(s, shown), "next_cursor": next_cursor}


def one(s: Session, clinic_id: str, notification_id: str) -> NotificationView:
    """The clinic's notification with its attempts; NotFound otherwise."""
    row = read_pages.notification(s, clinic_id, notification_id)
    if row is None:
        raise NotFound("this clinic has no notification with that id")
    return _views(s, [row])[0]


def _views(s: Session, rows: Sequence[NotificationRow]) -> list[NotificationView]:
    attempts: dict[str, list[NotificationAttemptView]] = {row.id: [] for row in rows}
    for notification_id, at, status, error in read_pages.attempts_of(s, list(attempts)):
        attempts[notification_id].append({"at": at, "http_status": status, "error": error})
    return [_view(row, attempts[row.id]) for row in rows]


def _view(row: NotificationRow, attempts: list[NotificationAttemptView]) -> NotificationView:
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
