"""A clinic asks for a notification again (contract §11): `POST …/notifications/{id}/retry`.

A failed notification is pending again, due now, with a new `give_up_after` window; a pending
one is made due now (unless an attempt is in flight); a delivered one is a 409: the clinic has
it, and its `webhook-id` would be dropped as a repeat by a receiver that de-duplicates.
"""

from __future__ import annotations

from datetime import datetime

from service.config import Settings
from service.errors import Conflict, NotFound
from service.storage import outbox_claims
from service.storage.outbox import NotificationState
from service.storage.transactions import Session, Transactions


async def retry(
    transactions: Transactions,
    settings: Settings,
    clinic_id: str,
    notification_id: str,
    *,
    now: datetime,
) -> None:
    """Make the notification due now; NotFound or Conflict (delivered) otherwise."""
    give_up_after = settings.notifications.give_up_after

    def work(s: Session) -> None:
        before = outbox_claims.retry(
            s, clinic_id, notification_id, now=now, give_up_after=give_up_after
        )
        if before is None:
            raise NotFound("this clinic has no notification with that id")
        if before == NotificationState.DELIVERED:
            raise Conflict("this notification was delivered; it is not sent again")

    await transactions.write(work)
