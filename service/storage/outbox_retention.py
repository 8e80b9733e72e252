"""How long the outbox keeps what it delivered: `[notifications] keep_delivered`.

A delivered notification (its attempts with it) older than that is deleted, a batch at a
time, so that each transaction stays short on a busy writer. Pending ones are still owed to a
clinic and failed ones wait for an operator's retry (`POST …/retry`): both are kept. Plain
functions of a sync Session, run through `Transactions`.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from service.storage.outbox import ATTEMPT, NOTIFICATION, NotificationState

N = NOTIFICATION.c
BATCH = 500

# Delivered rows keep the `due_at` of their last claim (about when they were delivered): the
# (state, due_at) index finds them, `finished_at` decides.
_OLD = (
    sa.select(N.id)
    .where(N.state == NotificationState.DELIVERED)
    .where(N.due_at < sa.bindparam("before", type_=N.due_at.type))
    .where(N.finished_at < sa.bindparam("before", type_=N.finished_at.type))
    .order_by(N.id)
    .limit(sa.bindparam("limit"))
)


def prune_delivered(s: Session, *, before: datetime, limit: int = BATCH) -> int:
    """Delete up to `limit` notifications delivered before `before`, with their attempts; how
    many. Replicas pruning at once delete each row once (the second finds it gone)."""
    conn = s.connection()
    ids = list(conn.execute(_OLD, {"before": before, "limit": limit}).scalars())
    if not ids:
        return 0
    conn.execute(sa.delete(ATTEMPT).where(ATTEMPT.c.notification_id.in_(ids)))
    return int(conn.execute(sa.delete(NOTIFICATION).where(N.id.in_(ids))).rowcount)
