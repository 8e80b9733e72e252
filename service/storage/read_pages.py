"""The read API's paged lists: a clinic's messages and notifications,
newest first, paged by a keyset on `(time, id)` (a row-value comparison, which the indexes on
(clinic_id, time, id) seek straight to)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from service.storage.models import Message, Patient, Treatment
from service.storage.outbox import ATTEMPT, NOTIFICATION

# A notification's row, its columns by name (`row.id`, `row.state`, ...).
NotificationRow = sa.Row[Any]
# A position in a list: the (time, id) of the last row of the page before.
Position = tuple[datetime, str]

N = NOTIFICATION.c
_ATTEMPTS = (
    sa.select(ATTEMPT.c.notification_id, ATTEMPT.c.at, ATTEMPT.c.http_status, ATTEMPT.c.error)
    .where(ATTEMPT.c.notification_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(ATTEMPT.c.id)
)
_NOTIFICATION = sa.select(NOTIFICATION).where(
    N.id == sa.bindparam("notification"), N.clinic_id == sa.bindparam("clinic")
)


def message_page(
    s: Session,
    clinic_id: str,
    *,
    patient_id: int | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: Position | None = None,
    limit: int,
) -> list[tuple[Message, str, str]]:
    """Up to `limit` of the clinic's messages (of the patient, of `status`, sent in
    [since, until)), newest first by (send_at, id), those before `before` when given; each
    with its treatment's and patient's ids as the clinic knows them."""
    send_at = col(Message.send_at)
    where = [col(Message.clinic_id) == clinic_id]
    if patient_id is not None:
        where.append(col(Message.patient_id) == patient_id)
    if status is not None:
        where.append(col(Message.status) == status)
    if since is not None:
        where.append(send_at >= since)
    if until is not None:
        where.append(send_at < until)
    if before is not None:
        where.append(sa.tuple_(send_at, col(Message.id)) < sa.tuple_(*before))
    query = (
        select(Message, Treatment.external_id, Patient.external_id)
        .join(Treatment, col(Treatment.id) == col(Message.treatment_id))
        .join(Patient, col(Patient.id) == col(Message.patient_id))
        .where(*where)
        .order_by(send_at.desc(), col(Message.id).desc())
        .limit(limit)
    )
    return [(m, t, p) for m, t, p in s.exec(query).all()]


def notification_page(
    s: Session, clinic_id: str, *, state: str | None, before: Position | None, limit: int
) -> Sequence[NotificationRow]:
    """Up to `limit` of the clinic's notifications (in `state`), newest first by
    (created_at, id), those before `before` when given."""
    where = [N.clinic_id == clinic_id]
    if state is not None:
        where.append(N.state == state)
    if before is not None:
        where.append(sa.tuple_(N.created_at, N.id) < sa.tuple_(*before))
    statement = (
        sa.select(NOTIFICATION)
        .where(*where)
        .order_by(N.created_at.desc(), N.id.desc())
        .limit(limit)
    )
    return s.connection().execute(statement).all()


def notification(s: Session, clinic_id: str, notification_id: str) -> NotificationRow | None:
    """The clinic's notification `notification_id`, if any."""
    found = s.connection().execute(
        _NOTIFICATION, {"notification": notification_id, "clinic": clinic_id}
    )
    return found.first()


def attempts_of(
    s: Session, notification_ids: Sequence[str]
) -> list[tuple[str, datetime, int | None, str | None]]:
    """The attempts of these notifications, oldest first: (notification id, at, HTTP
    status, error)."""
    if not notification_ids:
        return []
    found = s.connection().execute(_ATTEMPTS, {"ids": list(notification_ids)})
    return [(n, at, status, error) for n, at, status, error in found]
